"""docs/architecture.md's head and loss recipes, run: a user module (tests/data/user_head_loss.py)
loaded with ``--import`` adds a pixel-wise head type and a loss with keyword arguments, and
each trains one step through ``skipgraph train`` on a tiny folder this test writes."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from skipgraph.checkpoint import read_checkpoint
from skipgraph.cli import main
from skipgraph.heads import HEADS
from skipgraph.loss_registry import LOSSES
from tests.conftest import TINY_SPEC
from tests.test_train import make_folder

MODULE = "tests.data.user_head_loss"
SEG = '  seg: {on: "X[0,j]", if: "j == depth or (ds and j >= 1)", out: classes, act: sigmoid}\n'


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"), size=32)


@pytest.fixture
def user_module():
    """The module as `--import` loads it; its entries are removed afterwards (the JSON Schema
    lists whatever is registered)."""
    yield lambda: sys.modules[MODULE]
    HEADS.unregister("scaled")
    LOSSES.unregister("tversky")
    sys.modules.pop(MODULE, None)


def _train(spec, folder, out, capsys) -> str:
    capsys.readouterr()
    code = main(["--import", MODULE, "train", str(spec), "--data", str(folder), "--out",
                 str(out), "--epochs", "1", "--steps", "1", "--batch", "2", "--crop", "16",
                 "--binary"])
    err = capsys.readouterr()
    assert code == 0, err.err
    return err.out


def test_a_user_pixelwise_head_trains_one_step_through_the_cli(folder, tmp_path, capsys,
                                                               user_module):
    spec = tmp_path / "scaled.yaml"
    spec.write_text(TINY_SPEC.replace(SEG, '  seg: {type: scaled, on: "X[0,2]", init: 0.5}\n'
                                      '  low: {type: scaled, on: "X[1,1]"}\n'))
    log = _train(spec, folder, tmp_path / "run", capsys)
    assert "first step: loss" in log and "epoch 1/1" in log
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    state = ckpt["state_dict"]
    assert {"head_X0_2.scale", "head_X1_1.scale"} <= set(state)
    # one Adam step moved the scale off its initial value
    assert not torch.equal(state["head_X0_2.scale"], torch.full_like(state["head_X0_2.scale"], 0.5))
    history = json.loads((tmp_path / "run" / "log.json").read_text())
    assert history[0]["steps"] == 1 and history[0]["loss"] > 0


def test_a_user_loss_with_keywords_trains_one_step_through_the_cli(folder, tmp_path, capsys,
                                                                   user_module):
    spec = tmp_path / "tversky.yaml"  # logits (act: none): the loss must be given probabilities
    spec.write_text(TINY_SPEC.replace("act: sigmoid", "act: none") + "loss: {seg: tversky}\n")
    log = _train(spec, folder, tmp_path / "run", capsys)
    assert "first step: loss" in log
    calls = user_module().CALLS
    assert calls, "the user loss was never called"
    p_min, p_max, alpha, beta, smooth = calls[0]
    assert (alpha, beta, smooth) == (0.3, 0.7, 1.0)  # registered keywords, its own default
    assert 0.0 <= p_min and p_max <= 1.0  # probabilities, not logits
    history = json.loads((tmp_path / "run" / "log.json").read_text())
    assert history[0]["steps"] == 1
