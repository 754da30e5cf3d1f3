"""`input: {pad: true}` is one rule everywhere: the module, the losses' targets of low-resolution
heads, `build --input`, training crops, ONNX and torch.export all take any size the module
takes, and a head on level L is ceil(size / 2**L) pixels wide."""
import json

import pytest
import torch

import skipgraph
from skipgraph.cli import main
from skipgraph.errors import SpecError
from skipgraph.graph import build_ir, check_input_shape
from skipgraph.graph.contract import head_size, padded_shape
from skipgraph.losses import loss_for, resize_target
from skipgraph.spec import load_spec_text
from tests.conftest import TINY_SPEC

# a head on level 1 (deep supervision), target max-pooled, and padding
PAD_SPEC = TINY_SPEC.replace("name: tiny", "name: padnet\ninput: {channels: in_channels, pad: "
                             "true}").replace("ds: false", "ds: true").replace("output:", """\
  low: {on: "X[1,j]", if: "ds and j == 1", out: classes, act: sigmoid, target: maxpool}
output:""")


@pytest.fixture
def pad_spec(write_spec):
    return write_spec(PAD_SPEC, "pad.yaml")


def test_head_size_rule():
    assert [head_size(s, 2) for s in (8, 9, 10, 17)] == [4, 5, 5, 9]
    assert head_size(33, 4) == 9 and head_size(32, 1) == 32


@pytest.mark.parametrize("size", [(9, 9), (8, 9), (17, 16), (5, 12), (1, 3)])
def test_low_resolution_heads_and_their_targets_agree(pad_spec, size):
    model = skipgraph.build(pad_spec, seed=0).train()
    x, y = torch.randn(2, 1, *size), (torch.rand(2, 1, *size) > 0.5).float()
    out = model(x)
    assert out["X[1,1]"].shape[2:] == tuple(head_size(s, 2) for s in size)
    assert out["X[0,2]"].shape[2:] == size
    loss = loss_for(model)(out, y)
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("rule", ["maxpool", "avgpool", "nearest"])
def test_every_target_rule_gives_the_head_size(rule):
    y = torch.zeros(1, 1, 9, 7)
    y[..., 8, 6] = 1  # only the last pixel: its partial window must still see it
    small = resize_target(y, 2, rule, 2)
    assert small.shape[2:] == (5, 4)
    if rule != "nearest":
        assert small[..., 4, 3].item() > 0


def test_training_a_pad_spec_on_crops_the_stride_does_not_divide(pad_spec, tmp_path):
    from tests.test_train_setup import make_images
    data = make_images(tmp_path / "d", [(21, 30), (40, 33)])
    assert main(["train", str(pad_spec), "--data", str(data), "--crop", "9", "--batch", "2",
                 "--epochs", "1", "--steps", "1", "--out", str(tmp_path / "r")]) == 0


@pytest.mark.slow
def test_unet_sharp_ds_trains_on_90x101_images(tmp_path):
    from tests.test_train_setup import make_images
    data = make_images(tmp_path / "d", [(90, 101)] * 2, channels=3)
    assert main(["train", "unet_sharp", "--set", "ds=true", "--set", "base=2", "--data",
                 str(data), "--batch", "2", "--epochs", "1", "--steps", "1",
                 "--out", str(tmp_path / "r")]) == 0


def test_build_input_takes_what_the_module_takes(pad_spec, capsys):
    assert main(["build", str(pad_spec), "--input", "1x1x17x16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output_shapes"]["output"] == [1, 1, 17, 16]
    assert summary["output_shapes"]["X[1,1]"] == [1, 1, 9, 8]
    ir = build_ir(load_spec_text(PAD_SPEC))
    check_input_shape(ir, [1, 1, 17, 16])
    assert padded_shape(ir, [1, 1, 17, 16]) == [1, 1, 20, 16]


def test_input_errors_give_the_stride_hint_only_for_sizes(capsys):
    assert main(["build", "unet", "--input", "1x3x64x64"]) == 2
    err = capsys.readouterr().err
    assert "expected 1 input channels, got 3" in err and "multiples" not in err
    assert main(["build", "unet", "--input", "1x1x64"]) == 2
    err = capsys.readouterr().err
    assert "expected a 4-d input" in err and "multiples" not in err
    assert main(["build", "unet", "--input", "1x1x60x64"]) == 2
    err = capsys.readouterr().err
    assert "set `input: {pad: true}`" in err and "hint: use sizes that are multiples of 16" in err


@pytest.mark.parametrize("size", [(33, 32), (50, 70)])
def test_torch_export_of_a_pad_spec(pad_spec, size):
    from skipgraph.export import export_program
    model = skipgraph.build(pad_spec, seed=0).eval()
    program = export_program(model, all_heads=True)
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        got = program.module()(x)
        want = model.run_graph(x, training=True)
    low = tuple(head_size(s, 2) for s in size)
    assert [tuple(t.shape[2:]) for t in got] == [low if h == "X[1,1]" else size
                                                 for h in model.heads]
    for g, h in zip(got, model.heads):
        assert torch.allclose(g, want[h], atol=1e-5)


def test_onnx_export_of_a_pad_spec(pad_spec, tmp_path, capsys):
    import onnxruntime as ort
    path = tmp_path / "pad.onnx"
    assert main(["export", str(pad_spec), "--onnx", str(path)]) == 0
    assert "sizes, from 8 px on" in capsys.readouterr().out
    model = skipgraph.build(pad_spec, seed=0).eval()
    session = ort.InferenceSession(str(path))
    for size in [(33, 32), (50, 70), (8, 8)]:
        x = torch.randn(1, 1, *size)
        got = session.run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            assert abs(got - model(x).numpy()).max() < 1e-5


def test_sizes_without_pad_still_refused(write_spec):
    ir = build_ir(load_spec_text(TINY_SPEC))
    with pytest.raises(SpecError, match="is not a multiple of the total stride 4"):
        check_input_shape(ir, [1, 1, 17, 16])
