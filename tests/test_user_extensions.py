"""The recipes of docs/architecture.md, run from a user's module: tests/data/user_extensions.py
registers a normalisation (`rms`), an activation (`squareplus`) and a block type (`dwsep`) and
is loaded with `skipgraph --import user_extensions`; each is trained one step through the
command line on tiny images this test makes, and is found in the saved model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import skipgraph
from skipgraph.cli import main
from skipgraph.registry import RegistryError
from tests.test_train import make_folder

DATA = Path(__file__).resolve().parent / "data"

SPEC = """\
skipgraph: 1
name: user_{name}
params: {{depth: 2, base: 4, in_channels: 1, classes: 1}}
defaults:
  block: {block}
nodes:
  X: {{for: {{i: 0..depth, j: 0..depth-i}}, if: "j == 0 or i + j == depth", width: base * 2**i}}
edges:
  stem:    {{from: input, to: "X[0,0]"}}
  encoder: {{from: "X[i-1,0]", to: "X[i,0]"}}
  skip:    {{from: "X[i,0]", to: "X[i,j]", if: "j > 0"}}
  up:      {{from: "X[i+1,j-1]", to: "X[i,j]"}}
heads:
  seg: {{on: "X[0,j]", if: "j == depth", out: classes, act: sigmoid}}
"""

CASES = {  # what the spec's block says -> the user class the trained model must hold
    "norm": ("{type: conv, norm: {type: rms, eps: 1.0e-5}, act: relu}", "RMSNorm"),
    "act": ("{type: conv, norm: batch, act: {type: squareplus, b: 2.0}}", "Squareplus"),
    "block": ("{type: dwsep, convs: 2, kernel: 3, norm: instance, act: relu}", "DWSep"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"), n=6, size=32)


@pytest.fixture(autouse=True)
def user_module_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))


@pytest.mark.parametrize("what", list(CASES))
def test_a_user_extension_trains_one_step_through_the_cli(what, folder, tmp_path):
    block, cls = CASES[what]
    spec = tmp_path / f"{what}.yaml"
    spec.write_text(SPEC.format(name=what, block=block))
    out = tmp_path / "run"
    assert main(["--import", "user_extensions", "train", str(spec), "--data", str(folder),
                 "--binary", "--epochs", "1", "--steps", "1", "--batch", "2", "--crop", "32",
                 "--out", str(out)]) == 0
    log = json.loads((out / "log.json").read_text())
    assert len(log) == 1 and math.isfinite(log[0]["loss"])
    model = skipgraph.load_checkpoint(out / "last.pt")
    used = [m for m in model.modules() if type(m).__name__ == cls]
    assert used and all(type(m).__module__ == "user_extensions" for m in used)
    if what == "norm":
        assert used[0].eps == 1e-5 and used[0].gain.shape == (1, 4, 1, 1)
    if what == "act":
        assert used[0].b == 2.0
        x = torch.tensor([-3.0, 0.0, 3.0])
        assert torch.allclose(used[0](x), (x + torch.sqrt(x * x + 2.0)) / 2)
    if what == "block":  # per node: 2 x (depthwise 3x3 + pointwise 1x1), no other conv
        x00 = model.get_submodule(model.ir.node("X[0,0]").module_name)
        assert isinstance(x00, type(used[0]))
        assert [tuple(p.shape) for p in x00.parameters()][:4] == [
            (1, 1, 3, 3), (1,), (4, 1, 1, 1), (4,)]


def test_user_names_are_checked_with_positions(tmp_path, capsys):
    text = SPEC.format(name="typo", block="{type: dwsepp}").replace(
        "defaults:\n", "defaults:\n  up: {op: transpose, norm: rmss, act: squarepluss}\n")
    spec = tmp_path / "typo.yaml"
    spec.write_text(text)
    line = next(k for k, t in enumerate(text.splitlines(), 1) if "rmss" in t)
    column = text.splitlines()[line - 1].index("rmss") + 1
    assert main(["--import", "user_extensions", "check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "unknown block type `dwsepp`" in err and "did you mean `dwsep`?" in err
    assert f"{spec}:{line}:{column}: error: unknown normalisation `rmss`; did you mean `rms`?" \
        in err
    assert "unknown activation `squarepluss`; did you mean `squareplus`?" in err
    assert "Traceback" not in err


def test_a_user_block_is_in_the_json_schema_and_registries_are_one_type(monkeypatch):
    import user_extensions  # noqa: F401  (registers its entries)
    from skipgraph.blocks.options import register_norm
    from skipgraph.blocks.registry import register_block
    from skipgraph.spec.json_schema import spec_json_schema
    schema = json.dumps(spec_json_schema())
    assert '"dwsep"' in schema and "Units in the stack." in schema and '"rms"' in schema
    with pytest.raises(RegistryError, match="already registered"):
        register_block("dwsep", user_extensions.DWSepParams, "elsewhere:Block")
    with pytest.raises(RegistryError, match="already registered"):
        register_norm("rms", user_extensions.RMSOptions, "elsewhere:Norm")


BACKBONE_SPEC = """\
skipgraph: 1
name: user_backbone
params: {in_channels: 1, classes: 1}
defaults:
  block: {type: conv, convs: 1, kernel: 3, norm: none, act: relu}
  up: {op: nearest}
nodes:
  E: {backbone: {provider: strided, name: strided2}}
  D: {for: {i: 0..1}, width: 4}
edges:
  bottom: {from: "E[i+1]", to: "D[i]", kind: up}
  skip:   {from: "E[i]", to: "D[i]"}
  up:     {from: "D[i+1]", to: "D[i]"}
heads:
  seg: {on: "D[0]", out: classes, act: sigmoid}
"""


def test_a_user_backbone_provider_builds_its_encoder(tmp_path, capsys):
    """`strided2`: E[1] = conv 1->8 /2 (80 params), E[2] = conv 8->16 /2 (1,168); the decoder
    D[1] = conv(E[2] up + E[1] skip: 16 + 8 -> 4), D[0] = conv(E[1] up + D[1] up: 8 + 4 -> 4)
    (no skip at level 0: E starts at level 1); head 4 -> 1."""
    import user_extensions  # noqa: F401
    spec = tmp_path / "bb.yaml"
    spec.write_text(BACKBONE_SPEC)
    model = skipgraph.build(spec, seed=0).eval()
    by_hand = (9 * 1 * 8 + 8) + (9 * 8 * 16 + 16) + (9 * 24 * 4 + 4) + (9 * 12 * 4 + 4) + (4 + 1)
    assert sum(p.numel() for p in model.parameters()) == by_hand
    stage = model.get_submodule(model.ir.node("E[2]").module_name)
    assert type(stage).__name__ == "Sequential" and stage[0].stride == (2, 2)
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    spec.write_text(BACKBONE_SPEC.replace("strided2", "strided9"))
    assert main(["--import", "user_extensions", "check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "strided cannot make `strided9`" in err and "names are strided1 ... strided6" in err
    spec.write_text(BACKBONE_SPEC.replace("provider: strided", "provider: strided_x"))
    assert main(["--import", "user_extensions", "check", str(spec)]) == 2
    assert "unknown backbone provider `strided_x`" in capsys.readouterr().err
