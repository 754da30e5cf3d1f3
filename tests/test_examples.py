"""Every script in examples/ runs at tiny sizes and does what its docstring says."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skipgraph.cli import main as cli_main
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"


@pytest.fixture
def example(monkeypatch):
    """Load ``examples/<name>.py`` as its own script would run: its folder on ``sys.path``."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    torch.set_num_threads(1)  # tiny models: threads cost more than they give

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


def test_every_example_has_a_test():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")} - {"toy_data", "se_block"}
    tested = {"plain_pytorch", "monai_sliding_window", "user_block", "prune_export_onnx",
              "tutorial"}
    assert scripts == tested


@pytest.mark.slow  # 30 training steps
def test_plain_pytorch_loop_trains_every_head(example):
    result = example("plain_pytorch").main(["--steps", "30", "--base", "4", "--size", "32"])
    assert result["heads"] == ["X[0,1]", "X[0,2]", "X[0,3]", "X[0,4]"]
    losses = result["losses"]
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]  # the summed loss of the 4 heads falls
    model = result["model"]
    x = torch.randn(1, 1, 32, 32)
    model.eval()
    with torch.no_grad():  # eval output = the mean of the heads the training loss trained
        heads = model.graph_module(training=True)(x)
        assert torch.allclose(model(x), torch.stack(list(heads.values())).mean(0), atol=1e-6)
    # the disks are easy: 30 steps already segment them (about 0.9 on this seeded run)
    assert result["dice_ensemble"] > 0.6 and result["dice_pruned_L2"] > 0.6


@pytest.mark.slow  # importing MONAI alone takes seconds
def test_monai_sliding_window_over_a_larger_image(example):
    pytest.importorskip("monai", reason='pip install "skipgraph[monai]"')
    result = example("monai_sliding_window").main(["--steps", "40", "--base", "4", "--depth",
                                                   "2", "--crop", "16"])
    assert result["logits_shape"] == (1, 2, 64, 64)  # 4x the 16x16 training crop
    losses = result["losses"]
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0]
    # windows stitched back into a whole-image segmentation (about 0.95 on this seeded run)
    assert result["dice"] > 0.7


def test_user_block_adds_exactly_the_se_parameters(example, capsys):
    result = example("user_block").main(["--base", "4", "--depth", "2"])
    assert result["params"] == result["expected"] and result["output_shape"] == (2, 1, 16, 16)
    model = result["model"]
    assert type(model.get_submodule("X0_0")).__name__ == "SEConv"
    # the command line loads the same module with --import
    assert cli_main(["--import", "se_block", "build", str(EXAMPLES / "se_unet.yaml"), "--json",
                     "--set", "base=4", "--set", "depth=2"]) == 0
    assert f'"params": {result["params"]}' in capsys.readouterr().out


def test_user_block_prints_a_command_that_runs_where_it_is_printed(example, monkeypatch):
    """The printed line, run by a shell from the repository root, builds the same model."""
    monkeypatch.chdir(ROOT)
    result = example("user_block").main(["--base", "4", "--depth", "2"])
    command = result["command"]
    assert command.startswith("PYTHONPATH=examples ") and " examples/se_unet.yaml " in command
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run(["bash", "-c", command.replace("PYTHONPATH=examples",
                                                        f"PYTHONPATH=examples:{ROOT}")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"{result['params']:,}" in run.stdout


@pytest.mark.slow
def test_prune_export_onnx_runs_in_onnxruntime(example, tmp_path):
    pytest.importorskip("onnxruntime", reason='pip install "skipgraph[export]"')
    result = example("prune_export_onnx").main(["--out", str(tmp_path), "--base", "2",
                                                "--steps", "2"])
    assert result["onnx_shape"] == (2, 1, 48, 48) and result["max_abs_diff"] < 1e-4
    small, full = result["small"], result["full"]
    assert small.heads == ["X[0,2]"]
    shared = dict(full.named_parameters())
    assert all(p is shared[n] for n, p in small.named_parameters())  # pruning shares weights


def test_tutorial_spec_matches_its_hand_count(example):
    result = example("tutorial").main(["--size", "16"])
    assert result["params"] == result["hand_count"] == 117_427
    assert result["output"].shape == (2, 3, 16, 16)
    assert torch.allclose(result["output"].sum(dim=1), torch.ones(2, 16, 16), atol=1e-5)
    assert sorted(result["ir"].graph.nodes) == ["D[0]", "D[1]", "E[0]", "E[1]", "E[2]", "input"]


def test_example_specs_validate(capsys):
    for spec in ("unet_logits", "tutorial"):
        assert cli_main(["check", str(EXAMPLES / f"{spec}.yaml")]) == 0
