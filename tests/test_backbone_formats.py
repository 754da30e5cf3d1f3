"""timm encoders whose features are channels-last (Swin: ``output_fmt == "NHWC"``) or whose
construction has no meta kernel (RegNet), and models fixed to one input size (issue 25, case 9).
Models are made without pretrained weights; inputs are small."""
from __future__ import annotations

import importlib.util

import pytest
import torch

import skipgraph
from skipgraph.cli import main
from tests.conftest import SPECS

HAS_TIMM = importlib.util.find_spec("timm") is not None
pytestmark = pytest.mark.skipif(not HAS_TIMM,
                                reason='needs timm: pip install "skipgraph[backbones]"')
UNET = SPECS / "timm_unet.yaml"
SWIN = "swin_tiny_patch4_window7_224"


def _decoder_params(ir) -> int:
    """The timm_unet decoder's count from the IR's widths alone: every D node is 2 x (3x3 conv
    without bias -> BN), its input the concat of its sources; the head a 3x3 conv with bias."""
    total = 0
    for node in ir.nodes():
        if node.family != "D":
            continue
        cin = sum(e.out_channels for e in ir.in_edges(node.id))
        w = node.width
        total += 9 * cin * w + 2 * w + 9 * w * w + 2 * w
    head, = ir.heads.values()
    return total + 9 * head.in_channels * head.out_channels + head.out_channels


def _timm_feature_params(name: str, **kwargs) -> int:
    import timm
    net = timm.create_model(name, pretrained=False, features_only=True, **kwargs)
    return sum(p.numel() for p in net.parameters())


@pytest.fixture(scope="module")
def swin():
    return skipgraph.build(UNET, encoder=SWIN, seed=0)


def test_swin_stages_are_nchw_and_counts_are_timms_plus_the_decoder(swin):
    from skipgraph.blocks.backbone import BackboneStage
    stages = [m for m in swin.children() if isinstance(m, BackboneStage)]
    assert stages and all(s.channels_last for s in stages)
    assert [n.level for n in swin.ir.nodes() if n.family == "E"] == [2, 3, 4, 5]
    timm_count = _timm_feature_params(SWIN, strict_img_size=False)
    assert sum(sum(p.numel() for p in s.parameters()) for s in stages) == timm_count
    assert sum(p.numel() for p in swin.parameters()) == timm_count + _decoder_params(swin.ir)
    # every encoder feature reaches the decoder as (N, C, H, W) at its reduction
    x = torch.randn(1, 3, 64, 96)
    feature = x
    with torch.no_grad():
        for node, stage in zip((n for n in swin.ir.nodes() if n.family == "E"), stages):
            feature = stage.eval()(feature)
            r = 2 ** node.level
            assert tuple(feature.shape) == (1, node.width, 64 // r, 96 // r), node.id
        assert tuple(swin.eval()(x).shape) == (1, 1, 64, 96)


def test_swin_unet_trains_a_step(swin):
    from skipgraph.losses import loss_for
    x, y = torch.randn(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    opt = torch.optim.SGD(swin.parameters(), lr=1e-3)
    swin.train()
    before = swin.E2[0].proj.weight.detach().clone()
    loss = loss_for(swin)(swin(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, swin.E2[0].proj.weight)  # the encoder learns through it
    swin.eval()


def test_swin_eject_loads_strictly_and_matches(swin, tmp_path):
    from skipgraph.export import eject_source
    src = eject_source(swin)
    assert f"_timm_stages({SWIN!r}, 3, strict_img_size=False)[3]" in src
    (tmp_path / "ejected_swin.py").write_text(src)
    spec = importlib.util.spec_from_file_location("ejected_swin", tmp_path / "ejected_swin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    standalone = module.Timm_unet().eval()
    standalone.load_state_dict(swin.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(standalone(x), swin.eval()(x))


def test_regnet_passes_the_meta_probe_and_builds():
    """RegNet's constructor calls torch.unique, which has no meta kernel: the probe falls back
    to the CPU instead of refusing the model."""
    import timm
    ir = skipgraph.load_ir(UNET, encoder="regnetx_002")
    ref = timm.create_model("regnetx_002", pretrained=False, features_only=True)
    enc = [n for n in ir.nodes() if n.family == "E"]
    assert [n.width for n in enc] == ref.feature_info.channels()
    assert [2 ** n.level for n in enc] == ref.feature_info.reduction()
    model = skipgraph.build(UNET, encoder="regnetx_002", seed=0).eval()
    assert sum(n.block.params for n in enc) == _timm_feature_params("regnetx_002")
    assert sum(p.numel() for p in model.parameters()) == (
        _timm_feature_params("regnetx_002") + _decoder_params(model.ir))
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, 64, 64)).shape) == (1, 1, 64, 64)


def test_a_model_fixed_to_one_input_size_is_refused_at_check(monkeypatch, capsys):
    """Where timm cannot make a fixed-size model take other sizes, `check` names the size."""
    from skipgraph.blocks import backbone
    backbone.describe.cache_clear()
    # as if timm had no way to lift Swin's size check: the rebuilt model is still fixed
    monkeypatch.setattr(backbone, "FIXED_SIZE_KWARGS", (("strict_img_size", True),))
    try:
        assert main(["check", str(UNET), "--set", f"encoder={SWIN}"]) == 2
    finally:
        backbone.describe.cache_clear()
    err = capsys.readouterr().err
    assert "timm_unet.yaml:37:" in err and "takes only 224x224 inputs" in err, err
    assert "Traceback" not in err


def test_swin_made_for_any_size_takes_timms_weights_and_equals_it_at_its_size(tmp_path):
    """strict_img_size=False changes no weight: a state_dict of timm's own (fixed-size) Swin
    loads, and at 224x224 the stages give its intermediate features, permuted to NCHW."""
    import timm
    from skipgraph.blocks.backbone import BackboneStage
    ref = timm.create_model(SWIN, pretrained=False).eval()
    torch.save(ref.state_dict(), tmp_path / "swin.pt")
    model = skipgraph.build(UNET, encoder=SWIN, weights=str(tmp_path / "swin.pt")).eval()
    stages = [m for m in model.children() if isinstance(m, BackboneStage)]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = ref.forward_intermediates(x, intermediates_only=True)
        feature = x
        for stage, expected in zip(stages, want, strict=True):
            feature = stage(feature)
            torch.testing.assert_close(feature, expected, atol=1e-5, rtol=1e-5)


def test_a_model_built_for_a_window_grid_is_refused_at_check_with_the_reason(capsys):
    """MaxViT partitions 1/32-size features into 7x7 windows: a 64x96 input (a multiple of
    its total reduction, which the U-Net accepts) fails, so `check` refuses it, positioned."""
    assert main(["check", str(UNET), "--set", "encoder=maxvit_tiny_tf_224"]) == 2
    err = capsys.readouterr().err
    assert "timm_unet.yaml:37:" in err and "a 64x96 input fails" in err, err
    assert "must be divisible by window (7)" in err and "Traceback" not in err
    assert "timm.list_models" not in err  # the name is right: no list of names is offered
