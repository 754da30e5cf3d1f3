"""timm backbones as spec nodes: counts and outputs against segmentation_models_pytorch, local
weights, frozen stages, the input contract and every backend (render, summary, prune,
checkpoints, eject, compile, export). Needs the `backbones` extra; smp comes with `test`."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from skipgraph.extras import pip_install
import torch

import skipgraph
from skipgraph.cli import main
from skipgraph.errors import SpecError
from tests.conftest import SPECS

HAS_TIMM = importlib.util.find_spec("timm") is not None
needs_timm = pytest.mark.skipif(not HAS_TIMM, reason='needs timm: pip install "skipgraph[backbones]"')
UNET = SPECS / "timm_unet.yaml"
UNET3P = SPECS / "timm_unet3p.yaml"
RESNET34 = [9_536, 221_952, 1_116_416, 6_822_400, 13_114_368]  # conv1+bn1, layer1..layer4


def _stage_params(model) -> list[int]:
    return [sum(p.numel() for p in getattr(model, f"E{k}").parameters()) for k in range(1, 6)]


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@needs_timm
@pytest.mark.parametrize("decoder, expected", [("unet", 24_436_369), ("unet_pp", 26_078_609)])
def test_resnet34_counts_are_smps(decoder, expected):
    """smp 0.6: Unet("resnet34") / UnetPlusPlus("resnet34"), 3 -> 1 channels."""
    model = skipgraph.build(UNET, decoder=decoder)
    assert _count(model) == expected
    assert _stage_params(model) == RESNET34
    # the same count from the IR alone (the resource guard reads it without building)
    from skipgraph.graph.estimate import estimate_params
    assert sum(n.block.params for n in model.ir.nodes() if n.family == "E") == sum(RESNET34)
    assert estimate_params(model.ir) > 0


@needs_timm
def test_unet3p_over_resnet34_count_term_by_term():
    model = skipgraph.build(UNET3P)
    enc = {1: 64, 2: 64, 3: 128, 4: 256, 5: 512}
    fused = 5 * 64

    def conv_bn(cin: int, cout: int) -> int:  # 3x3 conv with bias -> BN
        return 9 * cin * cout + cout + 2 * cout
    decoder = 0
    for i in range(5):
        sources = [enc[k] for k in range(1, i + 1)] + [fused] * (4 - i) + [enc[5]]
        assert len(sources) == 5
        decoder += sum(conv_bn(c, 64) for c in sources) + conv_bn(fused, fused)
    head = 9 * fused + 1
    assert _count(model) == sum(RESNET34) + decoder + head == 29_775_873


def _smp_state(ours, theirs, decoder: str) -> dict:
    """smp's weights under our names: encoder.<k> -> E<n>.<k>; decoder blocks tensor by tensor
    (Unet block b = D[4-b,b+1]; UnetPlusPlus x_d_L = D[4-L,L+1-d]); segmentation_head.0 -> head."""
    sd = theirs.state_dict()
    out = {}
    for key in ours.state_dict():
        if key.startswith("E"):
            out[key] = sd["encoder." + key.split(".", 1)[1]]
        elif key.startswith("head_"):
            out[key] = sd["segmentation_head.0." + key.split(".", 1)[1]]
    blocks = {f"decoder.blocks.{b}.": f"D{4 - b}_{b + 1}." for b in range(5)} if decoder == "unet" \
        else {f"decoder.blocks.x_{d}_{L}.": f"D{4 - L}_{L + 1 - d}." for L in range(5)
              for d in range(L + 1) if L < 4 or d == 0}
    for src, dst in blocks.items():
        mine = [k for k in ours.state_dict() if k.startswith(dst)]
        theirs_keys = [k for k in sd if k.startswith(src)]
        assert len(mine) == len(theirs_keys), (src, dst)
        for a, b in zip(mine, theirs_keys):
            assert ours.state_dict()[a].shape == sd[b].shape, (a, b)
            out[a] = sd[b]
    return out


@needs_timm
@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["unet", "unet_pp"])
def test_outputs_equal_smp_given_the_same_weights(decoder):
    import skipgraph.blocks.backbone  # noqa: F401  (imports timm and torchvision first)
    smp = pytest.importorskip("segmentation_models_pytorch")
    cls = smp.Unet if decoder == "unet" else smp.UnetPlusPlus
    torch.manual_seed(0)
    theirs = cls("resnet34", encoder_weights=None, in_channels=3, classes=1,
                 activation="sigmoid")
    theirs.train()
    with torch.no_grad():  # move the BN statistics away from their initial values
        theirs(torch.randn(2, 3, 64, 64))
    theirs.eval()
    ours = skipgraph.build(UNET, decoder=decoder).eval()
    assert _count(ours) == _count(theirs)
    ours.load_state_dict(_smp_state(ours, theirs, decoder), strict=True)
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)


def _timm_weights(tmp_path, name: str = "resnet18", suffix: str = ".safetensors"):
    import skipgraph.blocks.backbone  # noqa: F401  (first: makes torchvision importable)
    import timm
    torch.manual_seed(1)
    net = timm.create_model(name, pretrained=False)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), path)
    return net.eval(), path


def _encoder(model, x):
    for node in sorted((n for n in model.ir.nodes() if n.family == "E"), key=lambda n: n.level):
        x = getattr(model, node.name)(x)
    return x


@needs_timm
@pytest.mark.parametrize("suffix", [".safetensors", pytest.param(".pt", marks=pytest.mark.slow)])
def test_weights_file_round_trip(tmp_path, suffix):
    """A timm state_dict saved to a local file, loaded through the spec: same encoder output as
    timm's model, whatever the seed of the rest."""
    net, path = _timm_weights(tmp_path, suffix=suffix)
    a = skipgraph.build(UNET, encoder="resnet18", weights=str(path), seed=0).eval()
    b = skipgraph.build(UNET, encoder="resnet18", weights=str(path), seed=5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = net.forward_features(x)
        torch.testing.assert_close(_encoder(a, x), ref, atol=0, rtol=0)
        torch.testing.assert_close(_encoder(b, x), ref, atol=0, rtol=0)


@needs_timm
def test_first_conv_adapted_to_one_channel_as_timm_does(tmp_path):
    net, path = _timm_weights(tmp_path)
    model = skipgraph.build(UNET, encoder="resnet18", weights=str(path), in_channels=1).eval()
    torch.testing.assert_close(model.E1.conv1.weight, net.conv1.weight.sum(1, keepdim=True))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)


@needs_timm
def test_weights_that_do_not_fit_are_named(tmp_path, capsys):
    from safetensors.torch import save_file
    net, _ = _timm_weights(tmp_path)
    state = {k: v for k, v in net.state_dict().items() if k != "layer4.1.bn2.running_var"}
    state["extra.weight"] = torch.zeros(1)
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(ValueError) as info:
        skipgraph.build(UNET, encoder="resnet18", weights=str(bad))
    msg = str(info.value)
    assert "missing keys: layer4.1.bn2.running_var" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "wrong shapes: layer1.0.conv1.weight (3, 3, 3, 3) (expected (64, 64, 3, 3))" in msg
    # a classifier's keys may be absent: the encoder does not use them
    headless = tmp_path / "headless.safetensors"
    save_file({k: v for k, v in net.state_dict().items() if not k.startswith("fc.")},
              str(headless))
    skipgraph.build(UNET, encoder="resnet18", weights=str(headless))
    # through the CLI: exit 2, no traceback; a missing file and a pickle are errors too
    for weights, words in ((bad, "missing keys"), (tmp_path / "nope.pt", "not found")):
        assert main(["build", str(UNET), "--set", "encoder=resnet18",
                     "--set", f"weights={weights}"]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
    evil = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "x": object()}, evil)
    with pytest.raises(ValueError, match="cannot read backbone weights"):
        skipgraph.build(UNET, encoder="resnet18", weights=str(evil))


@needs_timm
def test_frozen_stages_keep_weights_and_statistics():
    model = skipgraph.build(UNET, encoder="resnet18", frozen=2, seed=0)
    assert [all(not p.requires_grad for p in getattr(model, f"E{k}").parameters())
            for k in range(1, 6)] == [True, True, False, False, False]
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("E1.", "E2."))}
    model.train()
    assert not model.E2.layer1[0].bn1.training and model.E3.layer2[0].bn1.training
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 32, 32)).mean().backward()
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not torch.equal(model.E3.layer2[0].bn1.running_mean, torch.zeros(128))
    everything = skipgraph.load_ir(UNET, encoder="resnet18", frozen=99)  # more than it has
    assert all(n.block.frozen for n in everything.nodes() if n.family == "E")


@needs_timm
def test_input_contract_follows_the_total_reduction(write_spec):
    from skipgraph.compile.module import InputShapeError
    model = skipgraph.build(UNET, encoder="resnet18").eval()
    with pytest.raises(InputShapeError, match="total stride 32"):
        model(torch.randn(1, 3, 48, 48))
    padded = write_spec(f"extends: {UNET}\ninput: {{channels: in_channels, pad: true}}\n", "p.yaml")
    model = skipgraph.build(padded, encoder="resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 50, 70)).shape == (1, 1, 50, 70)


@needs_timm
def test_render_names_the_encoder_and_summary_gives_each_stage(capsys):
    from skipgraph.render.draw import draw
    src = draw(skipgraph.load_ir(UNET, decoder="unet_pp")).source
    assert src.count("resnet34") == 5
    assert main(["build", str(UNET), "--json"]) == 0
    import json
    rows = {r["id"]: r["params"] for r in json.loads(capsys.readouterr().out)["nodes"]}
    assert [rows[f"E[{k}]"] for k in range(1, 6)] == RESNET34


@needs_timm
def test_spec_errors_around_backbones(write_spec, capsys):
    base = f"extends: {UNET}\n"
    cases = {
        "edges:\n  into: {from: input, to: \"E[i]\"}\n": "a stage of backbone `E`",
        "nodes:\n  E: {backbone: {name: resnet18}, width: 3}\n": "drop `width`",
        "params: {encoder: 'no such net'}\n": "not a timm model name",
        "params: {encoder: resnet_nope}\n": "Unknown model (resnet_nope)",
        "dims: 3\n": "timm backbones are 2D",
        "params: {depth: \"${width('E', 1)}\"}\n": "`width()` is not available here",
        "nodes:\n  D: {for: {i: 0..4}, width: \"width('Q', i)\"}\n": "no node Q[0]",
    }
    for extra, words in cases.items():
        with pytest.raises(SpecError) as info:
            skipgraph.load_ir(write_spec(base + extra, "x.yaml"))
        assert words in info.value.format(), (extra, info.value.format())
    stage_by_hand = """skipgraph: 1
name: t
nodes:
  X: {for: {i: 0..1}, width: 8,
      block: {type: backbone, model: resnet18, stage: 0, stages: 1, reduction: 2}}
edges:
  stem: {from: input, to: "X[0]"}
  down: {from: "X[i-1]", to: "X[i]"}
  up: {from: "X[1]", to: "X[0]"}
heads:
  seg: {on: "X[0]"}
"""
    with pytest.raises(SpecError, match="block type `backbone` is a stage of a timm encoder"):
        skipgraph.load_ir(write_spec(stage_by_hand, "y.yaml"))


def test_missing_timm_is_an_error_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)
    monkeypatch.delitem(sys.modules, "skipgraph.blocks.backbone", raising=False)
    assert main(["check", str(UNET)]) == 2
    err = capsys.readouterr().err
    assert pip_install("backbones") in err and "Traceback" not in err
    assert main(["check", "unet_pp"]) == 0  # the core needs no timm


@needs_timm
@pytest.mark.slow
def test_prune_checkpoint_and_eject(tmp_path):
    net, path = _timm_weights(tmp_path)
    model = skipgraph.build(UNET3P, encoder="resnet18", weights=str(path), ds=True, cat=4,
                            seed=0)
    model.train()
    model(torch.randn(2, 3, 64, 64))  # BN statistics
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    small = model.prune("D[2]")
    assert {n.id for n in small.ir.nodes()} >= {"E[1]", "E[5]"} and "D[0]" not in small.ir.graph
    assert small.E1 is model.E1
    with torch.no_grad():
        torch.testing.assert_close(small(x), model.graph_module(True)(x)["D[2]"])
    skipgraph.save_checkpoint(model, tmp_path / "m.pt")
    path.unlink()  # the checkpoint holds the weights; the file is not read again
    loaded = skipgraph.load_checkpoint(tmp_path / "m.pt").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    from skipgraph.export import eject_source
    src = eject_source(model)
    assert "import timm" in src and "_timm_stages('resnet18', 3)[4]" in src
    (tmp_path / "ejected_tu3p.py").write_text(src)
    spec = importlib.util.spec_from_file_location("ejected_tu3p", tmp_path / "ejected_tu3p.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    standalone = module.Timm_unet3P().eval()
    standalone.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(standalone(x), model(x))


@needs_timm
@pytest.mark.parametrize("encoder, levels, channels", [
    ("efficientnet_b0", [1, 2, 3, 4, 5], [16, 24, 40, 112, 320]),
    ("convnext_tiny", [2, 3, 4, 5], [96, 192, 384, 768])])
def test_levels_and_channels_come_from_feature_info(encoder, levels, channels):
    ir = skipgraph.load_ir(UNET, encoder=encoder, decoder="unet_pp")  # timm on the meta device
    enc = [n for n in ir.nodes() if n.family == "E"]
    assert [n.level for n in enc] == levels and [n.width for n in enc] == channels
    assert [ir.node(f"D[{i},1]").width for i in range(1, 4)] == [
        dict(zip(levels, channels)).get(i, 16 * 2**i) for i in range(1, 4)]


@needs_timm
@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["efficientnet_b0", "convnext_tiny"])
def test_other_encoders_build_and_train_a_step(encoder):
    model = skipgraph.build(UNET, encoder=encoder, decoder="unet_pp", seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    model.train()
    from skipgraph.losses import loss_for
    loss = loss_for(model)(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    levels = [n.level for n in model.ir.nodes() if n.family == "E"]
    assert levels == ([1, 2, 3, 4, 5] if encoder == "efficientnet_b0" else [2, 3, 4, 5])


@needs_timm
@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet_b0", "convnext_tiny"])
def test_other_encoders_compile_fullgraph_and_export(encoder, tmp_path):
    import numpy as np
    import onnxruntime as ort
    import torch._dynamo

    from skipgraph.export import check_onnx, export_onnx, export_program
    model = skipgraph.build(UNET, encoder=encoder, seed=0).eval()
    x = torch.randn(1, 3, 64, 64)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(compiled(x), ref, atol=1e-5, rtol=1e-5)
    export_onnx(model, tmp_path / "m.onnx")
    check_onnx(tmp_path / "m.onnx")
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-4, rtol=1e-4)
    program = export_program(model, tmp_path / "m.pt2")
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), ref, atol=1e-5, rtol=1e-5)
