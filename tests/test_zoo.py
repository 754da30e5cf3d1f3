"""Every zoo spec: exact parameter counts against its paper, and build/forward/backward/compile."""
import pytest
import torch

import skipgraph
from skipgraph.compile.summary import count_params
from tests.conftest import CORE, SPECS, ZOO, zoo_params

# nnU-Net's ResEnc M / L presets (blocks 1, 3, 4, 6, 6, 6, 6, ...; one decoder conv per stage)
RESENC_ML_3D = {"dims": 3, "stages": 6, "max_width": 320, "blocks": [1, 3, 4, 6, 6, 6]}
RESENC_L_2D = {"stages": 7, "blocks": [1, 3, 4, 6, 6, 6, 6]}

# (spec, overrides, exact count, the paper's figure in millions or None, source)
COUNTS = [
    ("unet", {}, 7_759_521, 7.8, "UNet++ paper Tab. I/III"),
    ("unet", {"depth": 1}, 100_961, 0.1, "UNet++ paper Tab. I, U-Net L1"),
    ("unet", {"depth": 2}, 465_953, 0.5, "UNet++ paper Tab. I, U-Net L2"),
    ("unet", {"depth": 3}, 1_925_025, 1.9, "UNet++ paper Tab. I, U-Net L3"),
    # wide U-Net: the paper's 9.1M contradicts its own widths (docs/conventions.md §2)
    ("unet", {"base": 35}, 9_282_246, None, "UNet++ paper Tab. III (9.1M, inconsistent)"),
    ("unet", {"dims": 3}, 22_575_329, 22.6, "UNet++ paper Tab. III, V-Net"),
    ("unet", {"dims": 3, "base": 35}, 27_006_176, 27.0, "UNet++ paper Tab. III, wide V-Net"),
    ("unet", {"norm": "batch", "up": "bilinear", "in_channels": 3}, 7_852_545, 7.9,
     "UNet# paper baseline (docs/conventions.md §3)"),
    ("unet_plus", {}, 8_728_257, 8.7, "UNet++ paper Tab. III, UNet+"),
    ("unet_plus", {"dims": 3}, 25_258_241, 25.3, "UNet++ paper Tab. III, VNet+"),
    ("unet_e", {}, 8_728_356, 8.7, "UNet++ paper Tab. I, U-Net^e"),
    ("unet_pp", {}, 9_041_601, 9.0, "UNet++ paper Tab. III"),
    ("unet_pp", {"ds": True}, 9_041_700, 9.0, "UNet++ paper Tab. I (DS)"),
    ("unet_pp", {"dims": 3}, 26_198_273, 26.2, "UNet++ paper Tab. III, VNet++"),
    ("unet_pp", {"norm": "batch", "up": "bilinear", "in_channels": 3}, 9_163_329, 9.2,
     "UNet# paper baseline UNet2+ (docs/conventions.md §3)"),
    ("unet_pp", {"norm": "batch", "up": "bilinear", "in_channels": 3, "ds": True}, 9_163_428,
     9.2, "UNet# paper baseline UNet2+ with DS"),
    # derived term by term in tests/test_fullscale.py; the UNet3+ paper reports 26.97M
    ("unet3p", {}, 26_971_777, 27.0, "UNet3+ authors' conventions"),
    # the paper's 9.71M cannot be reproduced from its text (see the spec): no rounding check
    ("unet_sharp", {}, 9_661_473, None, "UNet# with fs=16, docs/conventions.md §3"),
    # BiO-Net: 14,954,305 conv parameters + 2 BN values per channel per iteration
    # (tests/test_loops.py checks the conv count and the paper's Keras-style table)
    ("bionet", {}, 14_974_145, 15.0, "BiO-Net paper Tab. 1 (t=2)"),
    ("bio_linknet", {}, 11_054_945, None, "BiO-LinkNet-style fusion over BiO-Net's encoder"),
    # public-code conventions, derived term by term in tests/test_recurrent.py
    ("r2unet", {}, 39_091_393, None, "R2U-Net, public implementation"),
    ("runet", {}, 39_091_393, None, "RU-Net, public implementation"),
    ("resunet", {}, 39_091_393, None, "ResU-Net, public implementation"),
    ("attention_unet", {}, 34_878_573, None, "Attention U-Net, public implementation"),
    # the peers' own counts (equal outputs given the same weights: tests/integrations/test_peers.py)
    ("monai_basic_unet", {}, 5_749_410, None, "MONAI BasicUNet() (3D)"),
    ("monai_basic_unet", {"dims": 2}, 1_978_466, None, "MONAI BasicUNet(spatial_dims=2)"),
    ("monai_basic_unetpp", {"ds": True}, 6_979_976, None, "MONAI BasicUNetPlusPlus() (3D)"),
    ("monai_basic_unetpp", {}, 6_979_778, None, "MONAI's minus its 3 heads unused without DS"),
    ("monai_basic_unetpp", {"dims": 2, "ds": True}, 2_410_312, None,
     "MONAI BasicUNetPlusPlus(spatial_dims=2)"),
    ("nnunet_plain", {}, 20_619_082, None, "nnU-Net PlainConvUNet, 2D, 6 stages 32..512"),
    ("nnunet_plain", {"ds": False}, 20_617_154, None, "the same without its 4 unused heads"),
    ("nnunet_plain", {"dims": 3, "stages": 4, "max_width": 320, "classes": 3}, 5_603_177, None,
     "nnU-Net 3d_fullres plans of MSD hippocampus (tests/integrations/test_nnunet.py)"),
    ("nnunet_plain", {"dims": 3, "max_width": 320,
                      "strides": [[1, 2, 2], [1, 2, 2], 2, 2, [1, 2, 2]],
                      "kernels": [[1, 3, 3], [1, 3, 3], 3, 3, 3, 3]}, 30_338_954, None,
     "nnU-Net PlainConvUNet, 3D anisotropic (tests/integrations/test_peers.py)"),
    ("nnunet_resenc", {}, 71_816_586, None,
     "nnU-Net ResidualEncoderUNet, 2D, 6 stages 32..512, blocks (1, 3, 4, 6, 6, 6)"),
    ("nnunet_resenc", {"ds": False}, 71_814_658, None, "the same without its 4 unused heads"),
    ("nnunet_resenc", {"dims": 3, "max_width": 320, "blocks": [1, 3, 4, 6, 6, 6],
                       "strides": [[1, 2, 2], [1, 2, 2], 2, 2, [1, 2, 2]],
                       "kernels": [[1, 3, 3], [1, 3, 3], 3, 3, 3, 3]}, 101_271_946, None,
     "nnU-Net ResidualEncoderUNet, 3D anisotropic (tests/integrations/test_peers.py)"),
    # the ResNet encoder written in the spec; smp's counts (timm_unet.yaml: the same with timm)
    ("resnet_unet", {}, 24_436_369, None, 'smp Unet("resnet34", encoder_weights=None)'),
    ("resnet_unet", {"decoder": "unet_pp"}, 26_078_609, None,
     'smp UnetPlusPlus("resnet34", encoder_weights=None)'),
    ("resnet_unet", {"encoder": "resnet18"}, 14_328_209, None, 'smp Unet("resnet18")'),
    ("resnet_unet", {"encoder": "resnet18", "decoder": "unet_pp"}, 15_970_449, None,
     'smp UnetPlusPlus("resnet18")'),
    ("resnet_unet", {"dims": 3}, 72_964_657, None, "ResNet-34 U-Net in 3D (3x3x3 kernels)"),
    # smp's other decoders over the spec's ResNet-34 (PEER_COUNTS: computed from smp itself)
    ("smp_linknet", {}, 21_771_937, None, 'smp Linknet("resnet34", encoder_weights=None)'),
    ("smp_fpn", {}, 23_155_393, None, 'smp FPN("resnet34", encoder_weights=None)'),
    ("smp_deeplabv3plus", {}, 22_437_457, None,
     'smp DeepLabV3Plus("resnet34", encoder_weights=None)'),
    ("smp_manet", {}, 31_783_633, None, 'smp MAnet("resnet34", encoder_weights=None)'),
    ("smp_pan", {}, 21_475_816, None, 'smp PAN("resnet34", encoder_weights=None)'),
    ("smp_pan", {"output_stride": 32}, 21_475_816, None,
     'smp PAN("resnet34", encoder_weights=None, encoder_output_stride=32)'),
    ("smp_upernet", {}, 29_599_681, None, 'smp UPerNet("resnet34", encoder_weights=None)'),
    ("nnunet_resunet", {}, 75_662_570, None,
     "nnU-Net ResidualUNet (residual decoder), 2D, 6 stages 32..512"),
    # nnU-Net's ResEnc M / L presets as their planners plan them (tests/integrations/
    # test_peers_nnunet_more.py runs the planners): 3d_fullres of an isotropic dataset (M and L:
    # the same network, L with larger patches) and L's 2d configuration
    ("nnunet_resenc", RESENC_ML_3D, 102_349_770, None,
     "nnUNetResEncUNetM/LPlans 3d_fullres, 6 stages 32..320"),
    ("nnunet_resenc", RESENC_L_2D, 105_916_812, None,
     "nnUNetResEncUNetLPlans 2d, 7 stages 32..512"),
    # MONAI's parameters that its forward uses (test_transformer_peer_counts checks them)
    ("monai_unetr", {}, 92_783_842, None, "MONAI UNETR(img_size=96) (3D)"),
    ("monai_unetr", {"dims": 2}, 87_146_434, None, "MONAI UNETR(spatial_dims=2)"),
    ("monai_swin_unetr", {}, 15_703_004, None, "MONAI SwinUNETR() (3D, feature_size 24)"),
    ("monai_swin_unetr", {"dims": 2}, 6_302_228, None, "MONAI SwinUNETR(spatial_dims=2)"),
    ("monai_attention_unet", {}, 1_987_434, None,
     "MONAI AttentionUnet(2, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2))"),
    ("monai_attention_unet", {"dims": 3}, 5_909_130, None, "MONAI AttentionUnet, the same in 3D"),
    ("monai_attention_unet", {"base": 32, "in_channels": 3, "classes": 1}, 7_940_321, None,
     "MONAI AttentionUnet(2, 3, 1, channels=(32, ..., 512))"),
]
# MONAI's conv networks: the literal here, and the package's own count in
# test_monai_counts_are_the_packages (outputs: tests/integrations/test_peers_monai.py)
MONAI_COUNTS = [
    ("monai_unet", {}, 4_806_481, None, "MONAI UNet(3, 1, 2, (16..256), (2,)*4, num_res_units=2)"),
    ("monai_unet", {"dims": 2}, 1_625_161, None, "MONAI UNet 2D, num_res_units=2"),
    ("monai_unet", {"res_units": 0}, 1_979_610, None, "MONAI UNet 3D, num_res_units=0"),
    ("monai_unet", {"res_units": 0, "dims": 2}, 660_282, None, "MONAI UNet 2D, num_res_units=0"),
    ("monai_dynunet", {}, 16_543_650, None, "MONAI DynUNet 3D, 5 stages 32..320"),
    ("monai_dynunet", {"res_block": True}, 16_670_210, None, "MONAI DynUNet 3D, res_block"),
    ("monai_dynunet", {"ds": True, "ds_num": 2}, 16_544_038, None,
     "MONAI DynUNet 3D, deep_supervision, deep_supr_num=2"),
    ("monai_dynunet", {"dims": 2}, 7_762_018, None, "MONAI DynUNet 2D, 5 stages 32..512"),
    ("monai_dynunet", {"res_block": True, "ds": True, "ds_num": 2,
                       "strides": [[1, 2, 2], [1, 2, 2], 2, 2],
                       "kernels": [[1, 3, 3], [1, 3, 3], 3, 3, 3]}, 16_444_742, None,
     "MONAI DynUNet 3D anisotropic, res_block, deep supervision"),
    ("monai_segresnet", {}, 1_176_186, None, "MONAI SegResNet() (3D, init_filters 8)"),
    ("monai_segresnet", {"dims": 2}, 394_986, None, "MONAI SegResNet(spatial_dims=2)"),
    ("monai_segresnet_ds", {}, 19_914_146, None, "MONAI SegResNetDS() (3D, init_filters 32)"),
    ("monai_segresnet_ds", {"dsdepth": 3}, 19_914_534, None, "MONAI SegResNetDS(dsdepth=3)"),
    ("monai_segresnet_ds", {"dims": 2}, 6_642_530, None, "MONAI SegResNetDS(spatial_dims=2)"),
    ("monai_vnet", {}, 45_593_892, None, "MONAI VNet() (3D)"),
    ("monai_vnet", {"dims": 2}, 9_357_924, None, "MONAI VNet(spatial_dims=2)"),
]
COUNTS += MONAI_COUNTS
# MONAI's FlexibleUNet (its encoders through the `monai` backbone provider): the parameters its
# forward uses, taken from MONAI in test_flexible_unet_counts_are_monais (MONAI's EfficientNet
# encoder also builds a classification head, 1,693,160 parameters, that FlexibleUNet never runs)
FLEXIBLE_COUNTS = [
    ("monai_flexible_unet", {}, 5_367_262, None,
     'MONAI FlexibleUNet(3, 2, "efficientnet-b0") (7,060,422, 5,367,262 used)'),
    ("monai_flexible_unet", {"encoder": "resnet34"}, 23_653_890, None,
     'MONAI FlexibleUNet(3, 2, "resnet34")'),
    ("monai_flexible_unet", {"encoder": "resnet18"}, 13_545_730, None,
     'MONAI FlexibleUNet(3, 2, "resnet18")'),
    ("monai_flexible_unet", {"dims": 3}, 9_400_414, None,
     'MONAI FlexibleUNet(3, 2, "efficientnet-b0", spatial_dims=3) (11,093,574, 9,400,414 used)'),
]
COUNTS += FLEXIBLE_COUNTS
# (spec, overrides) whose count the test also takes from the peer package itself
PEER_COUNTS = [("smp_linknet", {}), ("smp_fpn", {}), ("smp_deeplabv3plus", {}), ("smp_manet", {}),
               ("smp_pan", {}), ("smp_pan", {"output_stride": 32}),
               ("smp_upernet", {}),
               ("nnunet_resunet", {}), ("nnunet_resenc", RESENC_ML_3D),
               ("nnunet_resenc", RESENC_L_2D)]

_MONAI_SMALL = {"dims": 2, "f0": 4, "f1": 4, "f2": 8, "f3": 16, "f4": 32, "f5": 4}
SMALL = {"bionet": {"base": 2, "l": 3}, "bio_linknet": {"base": 2, "l": 3},
         "monai_basic_unet": _MONAI_SMALL, "monai_basic_unetpp": _MONAI_SMALL,
         "nnunet_plain": {"base": 4, "stages": 4, "ds": False},  # low-resolution heads
         "nnunet_resenc": {"base": 4, "stages": 4, "ds": False},
         "nnunet_resunet": {"base": 4, "stages": 4, "ds": False},
         "resnet_unet": {"encoder": "resnet18", "base": 4, "decoder_base": 2},
         "smp_linknet": {"encoder": "resnet18", "base": 4},
         "smp_fpn": {"encoder": "resnet18", "base": 4, "pyramid": 8, "segmentation": 32},
         "smp_deeplabv3plus": {"encoder": "resnet18", "base": 4, "channels": 8, "highres": 4},
         "smp_manet": {"encoder": "resnet18", "base": 4, "decoder_base": 2, "pab_channels": 4},
         "smp_pan": {"encoder": "resnet18", "base": 4, "channels": 8, "kernels": [3]},
         "smp_upernet": {"encoder": "resnet18", "base": 4, "channels": 8}}


SMALL.update(monai_unet={"dims": 2, "channels": [4, 8, 16, 32]},
             monai_dynunet={"dims": 2, "base": 4, "stages": 4},
             monai_segresnet={"dims": 2, "init_filters": 8, "blocks_down": [1, 1, 1],
                              "blocks_up": [1, 1]},
             monai_segresnet_ds={"dims": 2, "init_filters": 4, "blocks_down": [1, 1, 1],
                                 "blocks_up": [1, 1]},
             monai_vnet={"dims": 2})  # VNet's widths are fixed (16..256)
SMALL.update(monai_unetr={"dims": 2, "img_size": 32, "feature_size": 4, "hidden_size": 16,
                          "mlp_dim": 32, "num_heads": 2},
             monai_swin_unetr={"dims": 2, "img_size": 64, "feature_size": 12,
                               "num_heads": [1, 2, 2, 4], "window_size": 4,
                               "norm": "batch"})  # 32 px inputs: 1 x 1 at level 5


def small(spec, **extra):
    """A small, fast configuration of a zoo spec."""
    return {**SMALL.get(spec.stem, {"base": 4, "depth": 3}), **extra}


def _needs_backbone_package(name: str) -> None:
    """Skip a backbone spec whose provider's package is not installed."""
    from skipgraph.backbone_registry import BACKBONE_PROVIDERS
    for family in skipgraph.load_spec(SPECS / f"{name}.yaml").spec.nodes.values():
        if family.backbone is not None:
            pytest.importorskip(BACKBONE_PROVIDERS.get(family.backbone.provider).params.package)


@pytest.mark.parametrize("name, overrides, expected, paper, source", COUNTS,
                         ids=[f"{c[0]}-{c[1]}" for c in COUNTS])
def test_parameter_counts(name, overrides, expected, paper, source):
    _needs_backbone_package(name)
    model = skipgraph.build(SPECS / f"{name}.yaml", **overrides)
    n = count_params(model)
    assert n == expected, source
    if paper is not None:
        assert round(n / 1e6, 1) == paper, source


@pytest.mark.parametrize("name, overrides, expected, paper, source", MONAI_COUNTS,
                         ids=[f"{c[0]}-{c[1]}" for c in MONAI_COUNTS])
def test_monai_counts_are_the_packages(name, overrides, expected, paper, source, capsys):
    pytest.importorskip("monai")
    from skipgraph.integrations.peers import PEERS, build_peer
    model = skipgraph.build(SPECS / f"{name}.yaml", **overrides)
    peer = sum(p.numel() for p in build_peer(name, model.ir.params).parameters())
    with capsys.disabled():
        print(f"\n{name} {overrides}: skipgraph {count_params(model):,}, "
              f"{PEERS[name].label} {peer:,}")
    assert count_params(model) == peer == expected, source
@pytest.mark.parametrize("name, overrides, expected, paper, source", [
    pytest.param(*c, id=f"{c[0]}-{c[1]}", marks=[pytest.mark.slow] if c[1].get("dims") == 3 else [])
    for c in FLEXIBLE_COUNTS])
def test_flexible_unet_counts_are_monais(name, overrides, expected, paper, source, capsys):
    """MONAI's own total and the part its forward reaches (a gradient after one backward)."""
    pytest.importorskip("monai")
    from skipgraph.integrations.peers import build_peer
    model = skipgraph.build(SPECS / f"{name}.yaml", **overrides)
    peer = build_peer(name, model.ir.params)
    size = [64] * model.ir.dims if model.ir.dims == 2 else [32] * 3
    used = _used_parameter_names(peer, torch.randn(2, model.ir.in_channels, *size))
    total = sum(p.numel() for p in peer.parameters())
    peer_used = sum(p.numel() for n, p in peer.named_parameters() if n in used)
    with capsys.disabled():
        print(f"\n{name} {overrides}: skipgraph {count_params(model):,}, MONAI FlexibleUNet "
              f"{total:,} ({peer_used:,} used)")
    assert count_params(model) == peer_used == expected, source


@pytest.mark.parametrize("name, overrides", PEER_COUNTS,
                         ids=[f"{c[0]}-{c[1]}" for c in PEER_COUNTS])
def test_parameter_counts_equal_the_peer_packages(name, overrides):
    from skipgraph.integrations.peers import PEERS, build_peer
    if name.startswith("smp_"):
        pytest.importorskip("skipgraph.blocks.backbone")  # before smp imports torchvision
    pytest.importorskip(PEERS[name].package)
    model = skipgraph.build(SPECS / f"{name}.yaml", **overrides)
    peer = sum(p.numel() for p in build_peer(name, model.ir.params).parameters())
    print(f"{name} {overrides}: {PEERS[name].label} has {peer:,} parameters")
    expected = next(c[2] for c in COUNTS if c[0] == name and c[1] == overrides)
    assert count_params(model) == peer == expected
def _used_parameter_names(peer_small: torch.nn.Module, x: torch.Tensor) -> set[str]:
    """Names of the parameters a peer's forward reaches (a gradient after one backward)."""
    peer_small.train()
    peer_small(x).mean().backward()
    return {n for n, p in peer_small.named_parameters() if p.grad is not None}


# transformer peers allocate layers their forward never calls (MONAI's TransformerBlock keeps
# a `norm_cross_attn` LayerNorm without cross-attention): the spec has the used ones, which
# the count below takes from the peer itself (names from a small instance, sizes at the
# configuration); tests/integrations/test_peers_transformers.py checks the outputs
@pytest.mark.parametrize("name, overrides, expected", [
    pytest.param("monai_unetr", {"dims": 2}, 87_146_434, id="unetr-2d"),
    pytest.param("monai_unetr", {"dims": 3}, 92_783_842, id="unetr-3d", marks=pytest.mark.slow),
    pytest.param("monai_swin_unetr", {"dims": 2}, 6_302_228, id="swin_unetr-2d"),
    pytest.param("monai_swin_unetr", {"dims": 3}, 15_703_004, id="swin_unetr-3d",
                 marks=pytest.mark.slow),
])
def test_transformer_peer_counts(name, overrides, expected):
    pytest.importorskip("monai")
    from skipgraph.integrations.peers import build_peer
    tiny = skipgraph.build(SPECS / f"{name}.yaml", **{**SMALL[name], **overrides})
    used = _used_parameter_names(build_peer(name, tiny.ir.params),
                                 torch.randn(2, 1, *[tiny.ir.params["img_size"]] * tiny.ir.dims))
    model = skipgraph.build(SPECS / f"{name}.yaml", **overrides)
    peer = build_peer(name, model.ir.params)
    total = sum(p.numel() for p in peer.parameters())
    peer_used = sum(p.numel() for n, p in peer.named_parameters() if n in used)
    print(f"{name} {overrides}: the peer has {total:,} parameters, {peer_used:,} used")
    assert count_params(model) == peer_used == expected


def test_every_zoo_spec_has_a_count():
    assert {p.stem for p in ZOO} <= {c[0] for c in COUNTS}


def test_batch_norm_statistics_are_buffers_not_params():
    model = skipgraph.build(SPECS / "unet.yaml", norm="batch")
    buffers = sum(b.numel() for b in model.buffers())
    bn_channels = sum(m.num_features for m in model.modules()
                      if isinstance(m, torch.nn.BatchNorm2d))
    assert buffers == 2 * bn_channels + sum(1 for m in model.modules()
                                            if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("spec", zoo_params())
@pytest.mark.parametrize("dims, size", [(2, 32), (3, 16)])
def test_forward_backward_small(spec, dims, size):
    model = skipgraph.build(spec, seed=0, **small(spec, dims=dims, classes=2))
    size = max(size, 2 ** (model.ir.max_level + 1))  # instance norm needs 2+ values per map
    x = torch.randn(2, model.ir.in_channels, *([size] * dims))
    model.train()
    out = model(x)
    outs = out if isinstance(out, dict) else {model.heads[0]: out}
    assert list(outs) == model.heads
    for y in outs.values():
        assert y.shape == (2, 2, *([size] * dims))
    sum(y.mean() for y in outs.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():  # the scored head (`output: list` returns every head)
        assert model.main_output(model(x)).shape == (2, 2, *([size] * dims))


@pytest.mark.parametrize("spec", zoo_params({"unet_pp", "bionet", "unet3p"}))
def test_torch_compile_fullgraph_has_no_graph_break(spec):
    import torch._dynamo
    params = skipgraph.load_spec(spec).params
    switches = {k: True for k in ("ds", "cgm") if k in params}
    model = skipgraph.build(spec, seed=0, **small(spec, **switches))
    x = torch.randn(2, model.ir.in_channels, 32, 32)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    for training in (True, False):
        model.train(training)
        torch.manual_seed(0)  # the same dropout masks for both runs
        ref = model(x)
        torch.manual_seed(0)
        got = compiled(x)
        ref = ref if isinstance(ref, dict) else {"out": ref}
        got = got if isinstance(got, dict) else {"out": got}
        for k in ref:
            torch.testing.assert_close(got[k], ref[k])
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0


@pytest.mark.slow
def test_inductor_compile_matches_eager():
    import torch._dynamo
    torch._dynamo.reset()
    model = skipgraph.build(SPECS / "unet_pp.yaml", seed=0, base=4, depth=2).eval()
    x = torch.randn(1, 1, 16, 16)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", zoo_params(CORE - {"unet3p"}))  # unet3p: 176 px, slow
@pytest.mark.parametrize("classes", [1, 3])
def test_one_training_step_reaches_every_head_pixel(spec, classes):
    """The spec's loss takes what each head gives (logits or probabilities): in one step of the
    spec's own loss, every element of every head's logits (its conv output) has a gradient; a
    loss reading logits as probabilities left most of them at exactly zero. (A CGM's gate cuts
    the heads of the images it calls empty by design, so CGMs stay off here.)"""
    from skipgraph.losses import loss_for
    switches = {"ds": True} if "ds" in skipgraph.load_spec(spec).params else {}
    model = skipgraph.build(spec, seed=0, **small(spec, classes=classes, **switches)).train()
    logits = {}
    for head in model.ir.heads.values():
        if head.type in ("seg", "identity"):  # identity: the node's output is the logits
            model.get_submodule(head.name).register_forward_hook(
                lambda mod, args, out, h=head.id: logits.__setitem__(h, out))
    size = 176 if spec.stem == "unet3p" else 32  # its MS-SSIM term needs > 160 px
    x = torch.randn(2, model.ir.in_channels, size, size)
    labels = (torch.rand(2, 1, size, size) * classes * 1.5).long().clamp(max=classes - 1)
    y = torch.cat([labels == c for c in range(classes)], 1).float() if classes > 1 else \
        (labels > 0).float()
    loss = loss_for(model)(model(x), y)
    grads = torch.autograd.grad(loss, list(logits.values()), retain_graph=True)
    for head, g in zip(logits, grads):
        assert (g != 0).all(), f"{head}: {(g == 0).float().mean():.0%} of its logits get no gradient"
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
