"""ONNX, torch.export and eject for every zoo spec; clear errors for exports that cannot work."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

import skipgraph
from skipgraph.blocks import BlockParams, register_block
from skipgraph.errors import SpecError
from skipgraph.export import check_onnx, eject_source, export_onnx, export_program, onnx_files
from tests.conftest import SPECS, TINY_SPEC, ZOO, zoo_params
from tests.test_zoo import small


def _model(spec, **extra):
    params = skipgraph.load_spec(spec).params
    switches = {k: True for k in ("ds", "cgm") if k in params}
    return skipgraph.build(spec, seed=0, **small(spec, **switches, **extra)).eval()


def _inputs(model):
    s, c = 2 ** model.ir.max_level, model.ir.in_channels
    return [torch.randn(2, c, 2 * s, 2 * s), torch.randn(2, c, 3 * s, 4 * s)]


@pytest.mark.parametrize("spec", zoo_params({"unet_pp", "unet_sharp", "bionet"}))
def test_onnx_matches_pytorch_on_two_sizes(spec, tmp_path):
    model = _model(spec)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, all_heads=True)
    check_onnx(path)
    session = ort.InferenceSession(str(path))
    for x in _inputs(model):
        with torch.no_grad():
            ref = model.graph_module(training=True)(x)
        ref = list(ref.values()) if isinstance(ref, dict) else [ref]
        got = session.run(None, {"x": x.numpy()})
        assert len(got) == len(ref)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=1e-4)


def test_torch_export_is_dynamic_and_exact(tmp_path):
    model = _model(SPECS / "unet_pp.yaml")
    program = export_program(model, tmp_path / "m.pt2")
    loaded = torch.export.load(str(tmp_path / "m.pt2")).module()
    for x in _inputs(model):
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x))
            torch.testing.assert_close(program.module()(x), model(x))


def test_pruned_and_3d_models_export(tmp_path):
    """The exported pruned 2D and 3D models compute what the modules compute."""
    full = _model(SPECS / "unet_pp.yaml")
    small_model = full.prune("X[0,2]").eval()
    export_onnx(small_model, tmp_path / "p.onnx")
    check_onnx(tmp_path / "p.onnx")
    session = ort.InferenceSession(str(tmp_path / "p.onnx"))
    x = _inputs(small_model)[1]
    with torch.no_grad():
        ref = small_model(x)
    [got] = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-4, rtol=1e-4)
    assert ref.shape == (2, 1, *x.shape[2:])
    model3d = _model(SPECS / "unet.yaml", dims=3, base=2, depth=2)
    program = export_program(model3d, tmp_path / "m3.pt2")
    loaded = torch.export.load(str(tmp_path / "m3.pt2")).module()
    x3 = torch.randn(1, 1, 8, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x3), model3d(x3))
        torch.testing.assert_close(loaded(x3), model3d(x3))


_CHECK_EJECTED = r"""
import importlib.util, json, sys, torch

class Block:  # the ejected files must not need skipgraph
    def find_spec(self, name, *args):
        if name.split(".")[0] == "skipgraph":
            raise ImportError("skipgraph is blocked")
sys.meta_path.insert(0, Block())
for item in json.loads(sys.argv[1]):
    spec = importlib.util.spec_from_file_location("ejected", item["file"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = getattr(mod, item["cls"])()
    model.load_state_dict(torch.load(item["weights"], weights_only=True), strict=True)
    model.eval()
    data = torch.load(item["io"], weights_only=True)
    with torch.no_grad():
        # equal up to float reassociation (a conv's algorithm may differ between processes)
        got, want = model(data["x"]), data["y"]
        got, want = (got, want) if isinstance(want, list) else ([got], [want])  # output: list
        assert len(got) == len(want), item["file"]
        assert all(torch.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in zip(got, want)), \
            item["file"]
    model.train()
    out = model(data["x"])
    assert set(out) == set(item["heads"]) if isinstance(out, dict) else len(item["heads"]) == 1
print("ok", len(json.loads(sys.argv[1])))
"""


def test_ejected_files_load_weights_strictly_and_match(tmp_path):
    from skipgraph.compile.module import class_name
    items = []
    for spec in ZOO:
        model = _model(spec)
        model.train()  # move BN statistics away from their defaults
        model(_inputs(model)[0])
        model.eval()
        stem = tmp_path / spec.stem
        (stem.with_suffix(".py")).write_text(eject_source(model))
        torch.save(model.state_dict(), stem.with_suffix(".pt"))
        x = _inputs(model)[1]
        with torch.no_grad():
            torch.save({"x": x, "y": model(x)}, stem.with_suffix(".io"))
        items.append({"file": str(stem.with_suffix(".py")), "weights": str(stem.with_suffix(".pt")),
                      "io": str(stem.with_suffix(".io")), "cls": class_name(model.ir.name),
                      "heads": model.heads})
    proc = subprocess.run([sys.executable, "-c", _CHECK_EJECTED, json.dumps(items)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"ok {len(ZOO)}"


def test_ejected_source_keeps_tied_weights_shared():
    model = skipgraph.build(SPECS / "bionet.yaml", base=2, l=2, t=3)
    src = eject_source(model)
    assert "shared_E0_conv1 = nn.Conv2d(" in src
    assert src.count("shared_E0_conv1),") == 3
    assert "import skipgraph" not in src and "from skipgraph" not in src
    # built with activation checkpointing: the same file (checkpointing is a build option)
    checkpointed = skipgraph.build(SPECS / "bionet.yaml", base=2, l=2, t=3,
                                   checkpoint=("iterations",))
    assert eject_source(checkpointed) == src


def test_bionet_up_is_transpose_relu_bn():
    """The authors' UP: 3x3 stride-2 transposed conv -> ReLU -> BN (`order: can`)."""
    model = skipgraph.build(SPECS / "bionet.yaml", base=2, l=2)
    assert list(model.up_mid_M_D1._modules) == ["resample", "act", "norm"]
    # the default order: Attention U-Net's up-convolution -> BN -> ReLU
    attention = skipgraph.build(SPECS / "attention_unet.yaml", base=2, depth=2)
    assert list(attention.up_X1_1_X0_2._modules) == ["resample", "norm", "act"]


class DataDependentParams(BlockParams):
    type: str = "data_dependent"


class DataDependent(torch.nn.Module):
    """A block torch.export cannot trace: Python control flow on tensor values."""

    def __init__(self, dims, in_channels, out_channels, params):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        if x.sum().item() > 0:
            return self.conv(x)
        return -self.conv(x)


def test_export_that_cannot_work_names_the_node(write_spec):
    register_block("data_dependent", DataDependentParams, DataDependent, replace=True)
    text = TINY_SPEC.replace("width: base * 2**i}", "width: base * 2**i, if: \"i < 2 or j > 0\"}")
    text = text.replace("nodes:", "nodes:\n  B: {level: 2, column: 0, width: 16, "
                        "block: {type: data_dependent}}")
    text = text.replace('  up:      {from: "X[i+1,j-1]", to: "X[i,j]"}',
                        '  up:      {from: "X[i+1,j-1]", to: "X[i,j]"}\n'
                        '  tob:     {from: "X[1,0]", to: B}\n  fromb:   {from: B, to: "X[1,1]"}')
    model = skipgraph.build(write_spec(text)).eval()
    with pytest.raises(SpecError) as info:
        export_program(model)
    d = info.value.diagnostics[0]
    assert d.code == "export-failed" and "node B" in d.message and "DataDependent" in d.message


def test_onnx_export_writes_one_file_and_names_every_file(tmp_path, capsys):
    from skipgraph.cli import main
    assert main(["export", "unet", "--set", "depth=1", "--set", "base=4",
                 "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # weights inside
    assert "weights in" not in capsys.readouterr().out
    model = _model(SPECS / "unet.yaml", depth=1, base=4)
    export_onnx(model, tmp_path / "big.onnx", external_data=True)  # as for a model over 2 GiB
    assert onnx_files(tmp_path / "big.onnx") == [str(tmp_path / "big.onnx"),
                                                 str(tmp_path / "big.onnx.data")]
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        ref = model.eval()(x)
    got = ort.InferenceSession(str(tmp_path / "big.onnx")).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


def _load_ejected(path, cls):
    spec = importlib.util.spec_from_file_location(f"ejected_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, cls)()


@pytest.mark.parametrize("base, params, sizes", [
    ("unet", {"depth": 2, "base": 4}, (33, 47)),
    ("unet_pp", {"depth": 2, "base": 4, "ds": True}, (33, 47)),       # dict / ensemble
    ("monai_basic_unetpp", {"dims": 2, "ds": True}, (19, 30)),        # output: list
    ("unet", {"depth": 2, "base": 2, "dims": 3}, (9, 17, 12)),
])
def test_ejected_pad_spec_pads_and_crops_as_the_compiled_module(tmp_path, base, params, sizes):
    """`input: {pad: true}`: any size goes in, every output is cropped back (train and eval)."""
    from skipgraph.compile.module import class_name
    spec = tmp_path / "padded.yaml"
    spec.write_text(f"skipgraph: 1\nname: padded\nextends: {base}\n"
                    "input: {channels: in_channels, pad: true}\n")
    model = skipgraph.build(spec, seed=0, **params)
    (tmp_path / "m.py").write_text(eject_source(model))
    ejected = _load_ejected(tmp_path / "m.py", class_name(model.ir.name))
    ejected.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, model.ir.in_channels, *sizes)
    for training in (True, False):
        model.train(training), ejected.train(training)
        with torch.no_grad():
            want, got = model(x), ejected(x)
        if isinstance(want, dict):
            assert list(got) == list(want)
            want, got = list(want.values()), list(got.values())
        want, got = (want, got) if isinstance(want, list) else ([want], [got])
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and torch.allclose(g, w, atol=1e-6)
    assert tuple(got[0].shape[2:]) == sizes  # cropped back to the input size


def test_ejected_module_checks_its_input_as_the_compiled_one(tmp_path):
    from skipgraph.compile.module import class_name
    model = skipgraph.build("unet", depth=2, base=4, seed=0)
    (tmp_path / "m.py").write_text(eject_source(model))
    ejected = _load_ejected(tmp_path / "m.py", class_name(model.ir.name))
    with pytest.raises(ValueError, match="not a multiple of the total stride"):
        ejected(torch.randn(1, 1, 33, 47))
    with pytest.raises(ValueError, match=r"expected an input \(N, 1, \*spatial\)"):
        ejected(torch.randn(1, 3, 32, 32))


def test_a_program_specialised_to_the_example_size_is_refused_saying_so(monkeypatch, tmp_path):
    """torch.export may keep the sizes symbolic yet guard one derived size at run time (0/1
    specialisation); the export runs the program at another size and says what it is fixed
    to, instead of saving it as a dynamic program."""
    model = _model(SPECS / "unet_pp.yaml")
    real = torch.export.export

    class Fixed:  # a program that only runs at the example's size, as a guarded one does
        def __init__(self, program, size):
            self.program, self.size = program, size

        def module(self):
            inner = self.program.module()

            def run(x):
                if tuple(x.shape[2:]) != self.size:
                    raise AssertionError("Guard failed: x.size()[2] // 16 == 1")
                return inner(x)
            return run

    def fixed_export(target, args, **kw):
        return Fixed(real(target, args, **kw), tuple(args[0].shape[2:]))
    monkeypatch.setattr(torch.export, "export", fixed_export)
    with pytest.raises(SpecError) as info:
        export_program(model, tmp_path / "m.pt2")
    message = str(info.value)
    assert "specialised the program to the example's spatial size 16x16" in message
    assert "fails at 24x24" in message and "Guard failed" in message
    assert not (tmp_path / "m.pt2").exists()


def test_exports_trace_swin_models_at_two_windows_per_axis():
    """A Swin layer's windows per axis must not be 1 in the traced example (torch.export
    would fix them to 1): the example grows until every Swin node has two windows."""
    from skipgraph.export.shapes import example_blocks, example_input
    assert example_blocks(skipgraph.load_ir(SPECS / "unet_pp.yaml")) == 2
    for img_size, blocks in ((64, 3), (128, 4)):  # level-4 windows of 4 and 7 tokens
        ir = skipgraph.load_ir(SPECS / "monai_swin_unetr.yaml", dims=2, img_size=img_size)
        assert example_blocks(ir) == blocks
        assert tuple(example_input(ir).shape) == (2, 1, 32 * blocks, 32 * blocks)


@pytest.mark.slow
def test_swin_unetr_export_says_it_would_be_specialised_to_the_example_size():
    """MONAI SwinUNETR (2D, small): torch.export keeps the sizes symbolic but guards the crop
    of the padded windows back to the map (padding zero or not at the example's size), so the
    program would run at the traced size only; the export says so (about a minute)."""
    model = skipgraph.build(SPECS / "monai_swin_unetr.yaml", seed=0, dims=2, img_size=64,
                            feature_size=12, num_heads=[1, 2, 2, 4]).eval()
    with pytest.raises(SpecError) as info:
        export_program(model)
    message = str(info.value)
    assert "specialised the program to the example's spatial size 96x96" in message
    assert "fails at 128x128" in message
