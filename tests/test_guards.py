"""Each resource guard and input check: a clear error, raised before anything is allocated."""
import subprocess
import sys

import pytest
import torch

import skipgraph
from skipgraph.compile.module import InputShapeError
from skipgraph.errors import SpecError
from skipgraph.graph.estimate import Budget, check_budget, estimate_activation_bytes
from tests.conftest import ROOT, SPECS, TINY_SPEC

_NO_TORCH = """
import sys, skipgraph
try:
    skipgraph.build({path!r}, **{kw!r})
except skipgraph.SpecError as exc:
    print(exc.codes[0], 'torch' in sys.modules)
"""


@pytest.mark.parametrize("spec, kw", [
    ("unet_pp.yaml", {"depth": 40}),
    ("bionet.yaml", {"t": 10000}),
    ("unet.yaml", {"base": 10**9}),
])
def test_absurd_sizes_fail_before_torch_is_imported(spec, kw):
    out = subprocess.run([sys.executable, "-c", _NO_TORCH.format(path=str(SPECS / spec), kw=kw)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["resource-limit", "False"], out.stderr


def test_billion_laughs_fails_fast(write_spec):
    lol = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for k in range(1, 9):
        prev, cur = chr(96 + k), chr(97 + k)
        lol.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = write_spec("\n".join(lol) + "\n" + TINY_SPEC)
    with pytest.raises(SpecError) as info:
        skipgraph.load_spec(path)
    assert info.value.codes == ["resource-limit"]


def test_recursive_alias(write_spec):
    with pytest.raises(SpecError) as info:
        skipgraph.load_spec(write_spec("x: &a [1, *a]\n" + TINY_SPEC))
    assert "refers to itself" in str(info.value)


def test_parameter_budget_is_configurable():
    ir = skipgraph.load_ir(SPECS / "unet_pp.yaml")
    check_budget(ir)
    with pytest.raises(SpecError, match="parameters"):
        check_budget(ir, Budget(params=1e6))
    from skipgraph.compile import compile_ir
    with pytest.raises(SpecError):
        compile_ir(ir, budget=Budget(params=1e6))


def test_activation_budget_for_an_input():
    ir = skipgraph.load_ir(SPECS / "unet_pp.yaml")
    shape = (64, 1, 1024, 1024)
    assert estimate_activation_bytes(ir, shape) > 5e10  # about 64 GB
    with pytest.raises(SpecError, match="activations"):
        check_budget(ir, Budget(activation_bytes=1e9), input_shape=shape)


def test_build_cli_refuses_a_huge_input(capsys):
    from skipgraph.cli import main
    assert main(["build", "unet_pp", "--input", "512x1x4096x4096"]) == 2
    assert "activations" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model():
    return skipgraph.build(SPECS / "unet.yaml", base=2, depth=2).eval()


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 32, 32), "expected 1 input channels, got 3"),
    ((1, 1, 32), "expected a 4-d input"),
    ((1, 1, 8, 8, 8), "expected a 4-d input"),
    ((1, 1, 30, 32), "not a multiple of the total stride 4"),
])
def test_wrong_inputs_at_run_time(tiny_model, shape, message):
    with pytest.raises(InputShapeError, match=message):
        tiny_model(torch.randn(*shape))


def test_pad_mode_pads_and_crops_back(write_spec):
    path = write_spec(TINY_SPEC.replace("nodes:", "input: {channels: in_channels, pad: true}\n"
                                        "nodes:").replace("ds: false", "ds: true"))
    model = skipgraph.build(path, seed=0).eval()
    x = torch.randn(1, 1, 30, 27)
    with torch.no_grad():
        y = model(x)
        padded = torch.nn.functional.pad(x, (0, 1, 0, 2))
        assert y.shape == (1, 1, 30, 27)
        torch.testing.assert_close(y, model(padded)[..., :30, :27])
    model.train()
    assert all(v.shape[-2:] == (30, 27) for v in model(x).values())


def test_plugins_only_by_explicit_import(write_spec, capsys):
    from skipgraph.cli import main
    path = write_spec(TINY_SPEC.replace("nodes:", "defaults: {block: {type: tests.evil:Block}}\n"
                                        "nodes:"))
    assert main(["check", str(path)]) == 2
    assert "unknown block type" in capsys.readouterr().err
    assert "tests.evil" not in sys.modules
