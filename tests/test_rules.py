"""One function per rule: memory format by dims, AMP dtypes, the input contract, the total
stride, model from checkpoint, `recompute` (activation checkpointing) and its old name; and the
stages' import direction."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import skipgraph
from skipgraph.cli import main
from skipgraph.compile.speed import amp_dtype, memory_format
from skipgraph.errors import SpecError
from skipgraph.graph.contract import InputContract, InputShapeError, total_stride
from skipgraph.graph.validate import check_input_shape
from skipgraph.losses import loss_for
from skipgraph.train.loop import TrainConfig, _train_epoch, place
from tests.conftest import SPECS

PKG = Path(__file__).resolve().parent.parent / "skipgraph"


def test_memory_format_and_amp_dtype_by_name():
    assert memory_format(2) == torch.channels_last
    assert memory_format(3) == torch.channels_last_3d
    with pytest.raises(ValueError, match="dims"):
        memory_format(1)
    assert amp_dtype("bf16") == torch.bfloat16 and amp_dtype(None) is None
    with pytest.raises(ValueError, match="amp must be one of"):
        amp_dtype("fp8")


def test_training_step_with_channels_last_on_a_3d_spec():
    """`train --channels-last` asked for channels_last (4-d only) on 5-d tensors: every 3D spec
    failed. The training loop's `place` (what `train` calls) now takes the format for the
    spec's dims; the format is read from there (the test does not compute it itself), and the
    weights and every training input are checked to be in it."""
    model = skipgraph.build(SPECS / "unet.yaml", dims=3, depth=2, base=2, seed=0)
    assert place(model, TrainConfig(channels_last=False))[1] is None
    cfg = TrainConfig(channels_last=True, steps=2)
    device, fmt = place(model, cfg)  # the old code: RuntimeError on the 5-d weights
    assert fmt == torch.channels_last_3d
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(w.is_contiguous(memory_format=fmt) for w in weights)
    assert any(not w.is_contiguous() for w in weights)  # not merely contiguous
    seen = []
    model.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous(memory_format=fmt)))
    data = TensorDataset(torch.randn(4, 1, 8, 8, 8), (torch.rand(4, 1, 8, 8, 8) > 0.5).float())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = next(model.parameters()).detach().clone()
    total, steps, _ = _train_epoch(model, loss_for(model), optimizer, DataLoader(data, batch_size=2),
                                   device, cfg, print, 0, fmt=fmt)
    assert steps == 2 and total > 0 and seen == [True, True]
    assert not torch.equal(before, next(model.parameters()))


def test_input_contract_is_the_one_check():
    ir = skipgraph.load_ir(SPECS / "unet.yaml", depth=2)
    contract = InputContract.of(ir)
    assert contract.stride == total_stride(ir) == 4 and contract.channels == 1
    assert contract.check((1, 1, 32, 32)) == [0, 0]  # no padding
    for shape, message in [((1, 1, 30, 32), "not a multiple of the total stride 4"),
                           ((1, 3, 32, 32), "expected 1 input channels"),
                           ((1, 1, 32), "expected a 4-d input")]:
        with pytest.raises(InputShapeError, match=message):
            contract.check(shape)
        with pytest.raises(SpecError, match=message):  # build --input / summary: same words
            check_input_shape(ir, shape)
    padded = InputContract.of(skipgraph.load_ir(SPECS / "unet.yaml", depth=2)).__class__(
        "t", 2, 1, 4, pad=True)
    assert padded.check((1, 1, 30, 32)) == [2, 0]


def test_recompute_and_its_deprecated_name():
    spec = SPECS / "bionet.yaml"
    new = skipgraph.build(spec, base=2, l=2, recompute=("iterations",))
    with pytest.warns(DeprecationWarning, match="use `recompute=`"):
        old = skipgraph.build(spec, base=2, l=2, checkpoint=("iterations",))
    assert new.recompute == old.recompute == old.checkpoint == {"iterations"}
    assert new.train_code == old.train_code
    with pytest.warns(DeprecationWarning):
        assert TrainConfig(checkpoint=("X",)).recompute == ("X",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrainConfig(recompute=("X",)).checkpoint is None


def test_cli_recompute_and_deprecated_checkpoint_option(capsys):
    args = ["build", "unet", "--set", "depth=2", "--set", "base=4", "--code"]
    assert main(args + ["--recompute", "X"]) == 0
    out, err = capsys.readouterr()
    assert "checkpointed" in out and "deprecated" not in err
    assert main(args + ["--checkpoint", "X"]) == 0
    out2, err = capsys.readouterr()
    assert out2 == out and "warning: --checkpoint is deprecated" in err and "--recompute" in err
    assert main(args + ["--recompute", "Y"]) == 2
    assert "recompute: `Y` is neither a node family nor a loop" in capsys.readouterr().err


# IPython's display hooks on the spec, IR and module classes: the one place an earlier stage
# reaches a later one (the view stage draws them), lazily, inside these methods only
DISPLAY_HOOKS = ("_repr_svg_", "_repr_html_")


def _imports(path: Path) -> list[str]:
    """Absolute module names a file of the package imports (relative ones resolved), leaving
    out the display hooks' imports of ``skipgraph.view.notebook``."""
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    hooks = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
             and f.name in DISPLAY_HOOKS for n in ast.walk(f)
             if isinstance(n, ast.ImportFrom) and n.module == "view.notebook"}
    out = []
    for node in ast.walk(tree):
        if id(node) in hooks:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            out += [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_stages_never_import_commands_or_each_other_sideways():
    sideways = {"render": ("compile", "export", "train", "view", "commands", "cli"),
                "view": ("compile", "export", "train", "commands", "cli"),
                "export": ("render", "train", "view", "commands", "cli"),
                "compile": ("render", "export", "train", "view", "commands", "cli"),
                "graph": ("compile", "render", "export", "train", "view", "commands", "cli"),
                "spec": ("graph", "compile", "render", "export", "train", "view", "commands",
                         "cli"),
                "train": ("render", "export", "view", "commands", "cli")}
    offences = []
    for stage, banned in sideways.items():
        for f in sorted((PKG / stage).rglob("*.py")):
            for name in _imports(f):
                parts = name.split(".")
                if parts[0] == "skipgraph" and len(parts) > 1 and parts[1] in banned:
                    offences.append(f"{f.relative_to(PKG)} imports {name}")
                if parts[0] == "skipgraph" and any(p.startswith("_") and not p.startswith("__")
                                                   for p in parts[2:]) and parts[1] != stage:
                    offences.append(f"{f.relative_to(PKG)} imports private {name}")
    assert not offences, "\n".join(offences)
    assert not (PKG / "render" / "cli.py").exists()
