"""MONAI's conv networks (UNet, DynUNet, SegResNet, SegResNetDS) against their zoo specs: equal
outputs given the same weights, every head, eval and train mode (parameter counts:
tests/test_zoo.py). 2D cases run by default, 3D under `slow`."""
import pytest
import torch

import skipgraph
from skipgraph.integrations.peers import PEERS, build_peer, load_peer_weights, peer_key_map
from skipgraph.integrations.peers_monai import peer_outputs
from tests.conftest import SPECS

pytest.importorskip("monai")

slow = pytest.mark.slow
# (spec, params, input size)
CASES = [
    pytest.param("monai_unet", {"dims": 2}, 64, id="unet-2d-res2"),
    pytest.param("monai_unet", {"dims": 2, "res_units": 0}, 64, id="unet-2d-res0"),
    pytest.param("monai_unet", {"dims": 2, "res_units": 1, "kernel": 5, "up_kernel": 5,
                                "channels": [8, 16, 32]}, 32, id="unet-2d-res1-k5-3levels"),
    pytest.param("monai_dynunet", {"dims": 2}, 64, id="dynunet-2d"),
    pytest.param("monai_dynunet", {"dims": 2, "res_block": True, "ds": True, "ds_num": 2,
                                   "trans_bias": True}, 64, id="dynunet-2d-res-ds2"),
    pytest.param("monai_dynunet", {"dims": 2, "stages": 4, "strides": [[1, 2], 2, [2, 1]],
                                   "kernels": [[1, 3], 3, 3, [3, 1]], "res_block": True,
                                   "ds": True}, 32, id="dynunet-2d-anisotropic-res-ds"),
    pytest.param("monai_segresnet", {"dims": 2}, 64, id="segresnet-2d"),
    pytest.param("monai_segresnet", {"dims": 2, "blocks_down": [1, 2, 2], "blocks_up": [2, 1],
                                     "groups": 4}, 32, id="segresnet-2d-3levels"),
    pytest.param("monai_segresnet_ds", {"dims": 2, "dsdepth": 3}, 64, id="segresnet_ds-2d-ds3"),
    pytest.param("monai_segresnet_ds", {"dims": 2, "norm": "instance", "blocks_up": [2, 1, 1]},
                 32, id="segresnet_ds-2d-instance"),
    pytest.param("monai_unet", {}, 32, id="unet-3d-res2", marks=slow),
    pytest.param("monai_segresnet", {}, 32, id="segresnet-3d", marks=slow),
    pytest.param("monai_segresnet_ds", {"dsdepth": 2}, 32, id="segresnet_ds-3d-ds2", marks=slow),
    pytest.param("monai_dynunet", {}, 32, id="dynunet-3d", marks=slow),
    pytest.param("monai_dynunet", {"res_block": True, "ds": True, "ds_num": 2,
                                   "strides": [[1, 2, 2], [1, 2, 2], 2, 2],
                                   "kernels": [[1, 3, 3], [1, 3, 3], 3, 3, 3]}, 32,
                 id="dynunet-3d-anisotropic-res-ds", marks=slow),
    pytest.param("monai_unet", {"res_units": 0}, 32, id="unet-3d-res0", marks=slow),
]


def _pair(spec: str, params: dict):
    pytest.importorskip(PEERS[spec].package)
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, **params)
    peer = build_peer(spec, model.ir.params)
    load_peer_weights(model, peer, spec)
    return model, peer


def _compare(model, peer, spec: str, x: torch.Tensor, training: bool, seed: int = 0) -> None:
    model.train(training), peer.train(training)
    with torch.no_grad():
        torch.manual_seed(seed)
        ours = model(x)
        torch.manual_seed(seed)
        theirs = peer(x)
    ours, theirs = peer_outputs(spec, model, ours), peer_outputs(spec, model, theirs, peer=True)
    assert len(ours) == len(theirs) >= 1
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("spec, params, size", CASES)
def test_equal_outputs_given_the_peers_weights(spec, params, size):
    model, peer = _pair(spec, params)
    x = torch.randn(2, model.ir.in_channels, *[size] * model.ir.dims)
    for training in (True, False):
        _compare(model, peer, spec, x, training)


def test_unet_dropout_masks_match_in_training():
    """MONAI's dropout sits between norm and act (NDA); the same seed gives the same masks."""
    model, peer = _pair("monai_unet", {"dims": 2, "dropout": 0.3})
    x = torch.randn(2, 1, 32, 32)
    _compare(model, peer, "monai_unet", x, training=True, seed=3)
    model.train()
    torch.manual_seed(3)
    a = model(x)
    torch.manual_seed(4)
    assert (a - model(x)).abs().max() > 0  # the dropout is live: the comparison means something


@pytest.mark.parametrize("spec, params", [
    ("monai_unet", {"dims": 2}), ("monai_unet", {"dims": 2, "res_units": 0}),
    ("monai_dynunet", {"dims": 2, "res_block": True, "ds": True, "ds_num": 3}),
    ("monai_segresnet", {"dims": 2}), ("monai_segresnet_ds", {"dims": 2, "dsdepth": 3}),
])
def test_every_peer_tensor_is_mapped_once(spec, params):
    model, peer = _pair(spec, params)
    mapping = [v for v in peer_key_map(spec, peer).values() if v is not None]
    assert sorted(mapping) == sorted(model.state_dict())


def test_dynunet_training_heads_are_the_specs_low_resolution_heads():
    """DynUNet stacks [out, up(h1), up(h2)] in training; the spec returns h1, h2 at 1/2, 1/4."""
    model, peer = _pair("monai_dynunet", {"dims": 2, "ds": True, "ds_num": 2})
    x = torch.randn(1, 1, 32, 32)
    model.train(), peer.train()
    with torch.no_grad():
        heads = model(x)
        stacked = peer(x)
    assert [tuple(h.shape[2:]) for h in heads.values()] == [(32, 32), (16, 16), (8, 8)]
    assert stacked.shape == (1, 3, 2, 32, 32)
    assert (heads["D[2]"] - stacked[:, 2, :, ::4, ::4]).abs().max() <= 1e-5


@pytest.mark.parametrize("dims, size", [(2, 32), pytest.param(3, 32, marks=slow)])
def test_vnet_is_equal_in_eval_and_in_training_with_monais_dropout(dims, size):
    """MONAI's VNet drops channels inside down_tr128 / down_tr256 (the residual bypasses it),
    before up_tr256's / up_tr128's transposed convs and on every up transition's skip input
    (p = 0.5 hard-coded in up_tr64 / up_tr32): the spec's input and edge dropouts draw the
    same masks in the same order under one seed."""
    model, peer = _pair("monai_vnet", {"dims": dims})
    x = torch.randn(2, 1, *[size] * dims)
    _compare(model, peer, "monai_vnet", x, training=False)
    drops = [m for m in peer.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    assert len(drops) == 8 and {m.p for m in drops} == {0.5}
    assert len([m for m in model.modules() if isinstance(m, torch.nn.Dropout3d if dims == 3
                                                         else torch.nn.Dropout2d)]) == 8
    for seed in (0, 1):
        _compare(model, peer, "monai_vnet", x, training=True, seed=seed)
    _compare(model, peer, "monai_vnet", x, training=False)  # after training-mode BN updates
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        assert (a - model(x)).abs().max() > 1e-3  # the dropout is live: the comparison matters


def test_vnet_with_other_dropout_rates_and_element_wise_dropout():
    """The spec's rates reach MONAI's dropout_prob_down / dropout_prob_up (0 = None), and
    `spatial_dropout: false` is MONAI's dropout_dim=1."""
    params = {"dims": 2, "dropout_down": 0.0, "dropout_up": 0.3, "dropout_skip": 0.2,
              "spatial_dropout": False}
    model, peer = _pair("monai_vnet", params)
    x = torch.randn(2, 1, 32, 32)
    assert sorted(m.p for m in peer.modules() if isinstance(m, torch.nn.Dropout)) == \
        sorted(m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)) == \
        [0.2, 0.2, 0.3, 0.3, 0.5, 0.5]
    _compare(model, peer, "monai_vnet", x, training=True, seed=5)


def test_vnet_every_peer_tensor_is_mapped_once():
    model, peer = _pair("monai_vnet", {"dims": 2})
    mapping = [v for v in peer_key_map("monai_vnet", peer).values() if v is not None]
    assert sorted(mapping) == sorted(model.state_dict())
