"""The transformer-encoder zoo specs against their peers: equal outputs given the same weights,
eval and training mode, and the weight mapping (counts: tests/test_zoo.py)."""
import pytest
import torch

import skipgraph
from skipgraph.integrations.peers import build_peer, load_peer_weights, peer_key_map
from tests.conftest import SPECS

pytest.importorskip("monai")

# small widths (MONAI's structure: 12 layers, 16^d patches); 2D in the default run
UNETR_SMALL = {"img_size": 32, "feature_size": 4, "hidden_size": 32, "mlp_dim": 64,
               "num_heads": 4}
SWIN_SMALL = {"img_size": 64, "feature_size": 12, "num_heads": [1, 2, 2, 4]}
CASES = [
    pytest.param("monai_unetr", {**UNETR_SMALL, "dims": 2}, 32, id="unetr-2d"),
    pytest.param("monai_unetr", {**UNETR_SMALL, "dims": 2, "res_block": False, "norm": "batch",
                                 "qkv_bias": True, "in_channels": 3, "classes": 3}, 32,
                 id="unetr-2d-basic-blocks-batch-norm"),
    pytest.param("monai_unetr", {**UNETR_SMALL, "dims": 3}, 32, id="unetr-3d",
                 marks=pytest.mark.slow),
    pytest.param("monai_unetr", {**UNETR_SMALL, "dims": 3, "img_size": 64, "feature_size": 8,
                                 "hidden_size": 48, "num_heads": 6}, 64, id="unetr-3d-64",
                 marks=pytest.mark.slow),
    # window 7 at 64 px: stage 3 padded (8 -> 14 tokens) and shifted, stage 4 one 4^d window
    pytest.param("monai_swin_unetr", {**SWIN_SMALL, "dims": 2}, 64, id="swin_unetr-2d"),
    pytest.param("monai_swin_unetr", {**SWIN_SMALL, "dims": 2, "img_size": 96, "norm": "batch",
                                      "in_channels": 2, "depths": [2, 2, 1, 2]}, 96,
                 id="swin_unetr-2d-96-batch-norm"),
    pytest.param("monai_swin_unetr", {**SWIN_SMALL, "dims": 3}, 64, id="swin_unetr-3d",
                 marks=pytest.mark.slow),
    pytest.param("monai_swin_unetr", {**SWIN_SMALL, "dims": 3, "merge": "mergingv2"}, 64,
                 id="swin_unetr-3d-mergingv2", marks=pytest.mark.slow),
]


def _pair(spec: str, params: dict):
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, **params)
    peer = build_peer(spec, model.ir.params)
    load_peer_weights(model, peer, spec)
    return model, peer


@pytest.mark.parametrize("spec, params, size", CASES)
def test_equal_outputs_given_the_peers_weights(spec, params, size):
    model, peer = _pair(spec, params)
    x = torch.randn(2, model.ir.in_channels, *[size] * model.ir.dims)
    for training in (True, False):  # batch norm: batch statistics, then running ones
        model.train(training), peer.train(training)
        with torch.no_grad():
            ours, theirs = model(x), peer(x)
        assert ours.shape == theirs.shape == (2, model.ir.params["classes"], *[size] * model.ir.dims)
        assert (ours - theirs).abs().max().item() <= 1e-5


def test_gradients_equal_the_peers():
    """A training step reaches the same weights with the same gradients (names mapped)."""
    spec = "monai_unetr"
    model, peer = _pair(spec, {**UNETR_SMALL, "dims": 2})
    x = torch.randn(2, 1, 32, 32)
    model.train(), peer.train()
    model(x).square().mean().backward()
    peer(x).square().mean().backward()
    ours = dict(model.named_parameters())
    for key, name in peer_key_map(spec, peer).items():
        if name is None or key not in dict(peer.named_parameters()):
            continue
        grad = peer.get_parameter(key).grad
        assert torch.allclose(ours[name].grad, grad, atol=1e-5, rtol=1e-4), key


def test_every_peer_tensor_is_mapped_once_but_the_unused_norms():
    spec = "monai_unetr"
    model, peer = _pair(spec, {**UNETR_SMALL, "dims": 2, "norm": "batch"})
    mapping = peer_key_map(spec, peer)
    skipped = sorted(k for k, v in mapping.items() if v is None)
    assert skipped == sorted(f"vit.blocks.{k}.norm_cross_attn.{p}" for k in range(12)
                             for p in ("weight", "bias"))
    mapped = [v for v in mapping.values() if v is not None]
    assert sorted(mapped) == sorted(model.state_dict())  # batch norm buffers included


def test_weights_of_another_configuration_are_refused():
    model = skipgraph.build(SPECS / "monai_unetr.yaml", **UNETR_SMALL, dims=2)
    other = build_peer("monai_unetr", {**model.ir.params, "hidden_size": 16})
    with pytest.raises(ValueError, match="do not fit"):
        load_peer_weights(model, other, "monai_unetr")


def test_the_drawing_reads_like_the_papers_figure():
    """UNETR's Fig. 2: the transformer's layers in a row, taps after layers 4, 7, 10 and the
    normed 12th (MONAI's) going up by transposed convs, the decoder column beside them."""
    from skipgraph.graph import build_ir
    from skipgraph.spec import load_spec
    ir = build_ir(load_spec(SPECS / "monai_unetr.yaml"))
    row = sorted((n.column, n.id) for n in ir.nodes() if not n.is_input and n.level == 4)
    assert [i for _, i in row] == ["P"] + [f"T[{k}]" for k in range(1, 13)] + ["Z"]
    taps = sorted(e.src for e in ir.edges() if e.family in ("tap", "bottom"))
    assert taps == ["T[10]", "T[4]", "T[7]", "Z"]
    assert {ir.node(f"D[{i}]").column for i in range(4)} == {14}


def test_swin_unetr_maps_every_tensor_once():
    spec = "monai_swin_unetr"
    model, peer = _pair(spec, {**SWIN_SMALL, "dims": 2})
    mapped = list(peer_key_map(spec, peer).values())
    assert None not in mapped and sorted(mapped) == sorted(model.state_dict())
