"""The exact-peer zoo specs against the peer packages: equal outputs given the same weights
(parameter counts are asserted for every zoo spec in tests/test_zoo.py)."""
import pytest
import torch

import skipgraph
from skipgraph.integrations.peers import PEERS, build_peer, load_peer_weights, peer_key_map
from tests.conftest import SPECS

# (spec, params, input size): the defaults (widths as the peers'), 2D in the default run
CASES = [
    pytest.param("monai_basic_unet", {"dims": 2}, 64, id="basic_unet-2d"),
    pytest.param("monai_basic_unetpp", {"dims": 2, "ds": True}, 64, id="basic_unetpp-2d-ds"),
    pytest.param("monai_basic_unetpp", {"dims": 2}, 64, id="basic_unetpp-2d"),
    pytest.param("monai_attention_unet", {"base": 8}, 64, id="attention_unet-2d"),
    pytest.param("monai_attention_unet", {"dims": 3, "depth": 3}, 32, id="attention_unet-3d",
                 marks=pytest.mark.slow),
    # dynamic_network_architectures comes with nnunetv2 (the `nnunet` extra, `make test-slow`)
    pytest.param("nnunet_plain", {}, 64, id="plain_conv_unet-2d-6stages", marks=pytest.mark.slow),
    pytest.param("nnunet_plain", {"ds": False}, 64, id="plain_conv_unet-2d-no-ds",
                 marks=pytest.mark.slow),
    pytest.param("monai_basic_unet", {}, 32, id="basic_unet-3d", marks=pytest.mark.slow),
    pytest.param("monai_basic_unetpp", {"ds": True}, 32, id="basic_unetpp-3d-ds",
                 marks=pytest.mark.slow),
    pytest.param("nnunet_plain", {"dims": 3, "stages": 4, "max_width": 320, "classes": 3,
                                  "in_channels": 2}, 32, id="plain_conv_unet-3d",
                 marks=pytest.mark.slow),
    pytest.param("nnunet_resenc", {}, 64, id="residual_encoder_unet-2d-6stages",
                 marks=pytest.mark.slow),
    pytest.param("nnunet_resenc", {"ds": False, "blocks": [1, 2, 2, 2, 2, 2]}, 64,
                 id="residual_encoder_unet-2d-no-ds", marks=pytest.mark.slow),
    pytest.param("nnunet_resenc", {"dims": 3, "stages": 4, "max_width": 320,
                                   "blocks": [1, 3, 2, 6]},
                 32, id="residual_encoder_unet-3d", marks=pytest.mark.slow),
    # smp imports torchvision: skipgraph.blocks.backbone makes that work beside a CPU torch
    pytest.param("resnet_unet", {}, 64, id="smp_unet_resnet34", marks=pytest.mark.slow),
    pytest.param("resnet_unet", {"decoder": "unet_pp", "encoder": "resnet18"}, 64,
                 id="smp_unetpp_resnet18", marks=pytest.mark.slow),
]


def _pair(spec: str, params: dict):
    if spec == "resnet_unet":  # smp imports torchvision, which needs this beside a CPU torch
        pytest.importorskip("skipgraph.blocks.backbone")  # before timm imports torchvision
    pytest.importorskip(PEERS[spec].package)
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, **params)
    peer = build_peer(spec, model.ir.params)
    return model, peer


def _as_list(out) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("spec, params, size", CASES)
def test_equal_outputs_given_the_peers_weights(spec, params, size):
    model, peer = _pair(spec, params)
    load_peer_weights(model, peer, spec)
    x = torch.randn(2, model.ir.in_channels, *[size] * model.ir.dims)
    for training in (True, False):
        model.train(training), peer.train(training)
        with torch.no_grad():
            raw_ours, raw_theirs = model(x), peer(x)
        ours, theirs = _as_list(raw_ours), _as_list(raw_theirs)
        if not training:  # the specs list every head as the peers do (output: list), in order
            assert isinstance(raw_ours, list) == isinstance(raw_theirs, list)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["nnunet_plain", "nnunet_resenc"])
def test_every_peer_tensor_is_mapped_once(spec):
    pytest.importorskip("dynamic_network_architectures")
    model, peer = _pair(spec, {"stages": 4, "base": 4})
    mapping = {k: v for k, v in peer_key_map(spec, peer).items() if v is not None}
    assert sorted(mapping.values()) == sorted(model.state_dict())
    assert all(".all_modules." not in k and not k.startswith("decoder.encoder.")
               for k in mapping)


def test_weights_of_another_configuration_are_refused():
    model, _ = _pair("monai_basic_unet", {"dims": 2})
    other = build_peer("monai_basic_unet", {**model.ir.params, "f4": 128})
    with pytest.raises(ValueError, match=r"up_X4_0_X3_1|X4_0"):
        load_peer_weights(model, other, "monai_basic_unet")


def test_a_peer_head_the_spec_lacks_is_skipped_but_a_missing_weight_is_not():
    model, peer = _pair("monai_basic_unetpp", {"dims": 2, "f0": 4, "f1": 4, "f2": 8, "f3": 8,
                                               "f4": 8, "f5": 4})
    load_peer_weights(model, peer, "monai_basic_unetpp")  # peer has 4 heads, the spec 1
    with_ds = skipgraph.build(SPECS / "monai_basic_unetpp.yaml", **{**model.ir.params,
                                                                     "ds": True})
    small_peer = build_peer("monai_basic_unet", {**model.ir.params})
    with pytest.raises(ValueError, match="no rule|gets no peer weight"):
        load_peer_weights(with_ds, small_peer, "monai_basic_unetpp")


# nnU-Net's 3D plans for thick-slice volumes (20 slices of 160 x 128): per-axis strides and
# kernels, as a plans file's arch_kwargs give them (strides without stage 0's)
ANISOTROPIC_3D = {"dims": 3, "max_width": 320, "strides": [[1, 2, 2], [1, 2, 2], 2, 2, [1, 2, 2]],
                  "kernels": [[1, 3, 3], [1, 3, 3], 3, 3, 3, 3]}
ANISOTROPIC_3D_PARAMS = 30_338_954
ANISOTROPIC_3D_RESENC_PARAMS = 101_271_946  # ResidualEncoderUNet, blocks (1, 3, 4, 6, 6, 6)


@pytest.mark.slow
@pytest.mark.parametrize("spec, params, count", [
    ("nnunet_plain", ANISOTROPIC_3D, ANISOTROPIC_3D_PARAMS),
    ("nnunet_resenc", {**ANISOTROPIC_3D, "blocks": [1, 3, 4, 6, 6, 6]},
     ANISOTROPIC_3D_RESENC_PARAMS)])
def test_anisotropic_3d_nnunet_is_exact(spec, params, count):
    from skipgraph.compile.summary import count_params
    model, peer = _pair(spec, params)
    assert count_params(model) == sum(p.numel() for p in peer.parameters()) == count
    load_peer_weights(model, peer, spec)
    x = torch.randn(1, 1, 20, 160, 128)  # no padding: the total stride is 4 x 32 x 32
    assert model.contract.stride == (4, 32, 32)
    model.train(), peer.train()
    with torch.no_grad():
        ours, theirs = model(x), peer(x)
    shapes = [(1, 2, 20, 160, 128), (1, 2, 20, 80, 64), (1, 2, 20, 40, 32), (1, 2, 10, 20, 16),
              (1, 2, 5, 10, 8)]
    assert [tuple(t.shape) for t in theirs] == shapes  # nnU-Net's heads, highest first
    assert [tuple(ours[f"D[{k}]"].shape) for k in range(5)] == shapes
    for k, b in enumerate(theirs):
        assert (ours[f"D[{k}]"] - b).abs().max().item() <= 1e-5
