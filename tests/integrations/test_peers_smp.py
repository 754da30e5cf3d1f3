"""segmentation_models_pytorch's decoders over the spec's ResNet-34 against smp itself: equal
outputs given the same weights, in train and eval mode (parameter counts: tests/test_zoo.py),
and the same specs built and run in 3D (smp has no 3D)."""
import pytest
import torch

import skipgraph
from skipgraph.graph.contract import total_stride
from skipgraph.integrations.peers import PEERS, build_peer, load_peer_weights, peer_key_map
from tests.conftest import SPECS

# (spec, params, input size); smp's defaults otherwise (resnet34, 3 -> 1 channels)
CASES = [
    pytest.param("smp_linknet", {}, 64, id="linknet"),
    pytest.param("smp_fpn", {}, 64, id="fpn"),
    pytest.param("smp_deeplabv3plus", {}, 64, id="deeplabv3plus"),
    pytest.param("smp_manet", {}, 64, id="manet"),
    pytest.param("smp_manet", {"pab_channels": 16}, 96, id="manet-pab16-3x3",
                 marks=pytest.mark.slow),
    pytest.param("smp_upernet", {}, 64, id="upernet"),
    pytest.param("smp_deeplabv3plus", {"output_stride": 8, "rates": [6, 12, 18]}, 64,
                 id="deeplabv3plus-os8", marks=pytest.mark.slow),
    pytest.param("smp_pan", {}, 128, id="pan"),  # FPA's pyramid: 1/128 at output stride 16
    pytest.param("smp_pan", {"output_stride": 32}, 256, id="pan-os32", marks=pytest.mark.slow),
]
# every spec of this file, in 3D at a small width (smp has no 3D: they build and train):
# (spec, params, input side); PAN's pyramid reaches 1/128, a 1-level one 1/32
SPECS_3D = [pytest.param(spec, {}, 32, id=spec)
            for spec in ("smp_linknet", "smp_fpn", "smp_deeplabv3plus", "smp_manet",
                         "smp_upernet")] + [
    pytest.param("smp_pan", {"kernels": [3]}, 32, id="smp_pan-1-level"),
    pytest.param("smp_pan", {}, 128, id="smp_pan", marks=pytest.mark.slow)]


def _pair(spec: str, params: dict):
    pytest.importorskip("skipgraph.blocks.backbone")  # before timm/smp import torchvision
    pytest.importorskip(PEERS[spec].package)
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, **params)
    return model, build_peer(spec, model.ir.params)


def _run(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)  # the same dropout masks in both (train mode)
    with torch.no_grad():
        return module(x)


@pytest.mark.parametrize("spec, params, size", CASES)
def test_equal_outputs_given_smps_weights(spec, params, size):
    model, peer = _pair(spec, params)
    load_peer_weights(model, peer, spec)
    x = torch.randn(2, 3, size, size)
    for training in (True, False):
        model.train(training), peer.train(training)
        ours, theirs = _run(model, x), _run(peer, x)
        assert ours.shape == theirs.shape == (2, 1, size, size)
        assert (ours - theirs).abs().max().item() <= 1e-5, ("train" if training else "eval")


@pytest.mark.parametrize("spec", list(dict.fromkeys(c.values[0] for c in CASES)))
def test_every_smp_tensor_is_mapped_once(spec):
    model, peer = _pair(spec, {})
    mapped = [v for v in peer_key_map(spec, peer).values() if v is not None]
    assert sorted(mapped) == sorted(model.state_dict())


@pytest.mark.parametrize("spec, params, size", SPECS_3D)
def test_the_smp_specs_build_and_train_in_3d(spec, params, size):
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, dims=3, base=8, classes=2, **params)
    x = torch.randn(2, 3, size, size, size)
    model.train()
    y = model(x)
    assert y.shape == (2, 2, size, size, size)
    y.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="2D"):
        build_peer(spec, model.ir.params)


@pytest.mark.parametrize("spec, size", [("smp_manet", 64), ("smp_pan", 128)])
def test_an_smp_checkpoint_imports_as_its_spec(spec, size, tmp_path):
    """`skipgraph import --peer smp` picks the spec by the checkpoint's key layout."""
    _, peer = _pair(spec, {})
    path = tmp_path / "model.pth"
    torch.save(peer.state_dict(), path)
    model = skipgraph.import_peer(path, "smp")
    assert model.ir.name == skipgraph.load_spec(SPECS / f"{spec}.yaml").spec.name
    x = torch.randn(1, 3, size, size)
    model.eval(), peer.eval()
    assert (_run(model, x) - _run(peer, x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("params, stride, level", [({}, 128, 4), ({"output_stride": 32}, 256, 5),
                                                   ({"kernels": [3]}, 32, 4)])
def test_pans_inputs_are_multiples_of_its_pyramids_deepest_level(params, stride, level):
    """smp resizes FPA's pyramid to E[5]'s size // 4 and // 2; the spec's levels up-sample by
    2, which agrees where the pyramid's deepest level divides the input (the header's rule)."""
    ir = skipgraph.load_ir(SPECS / "smp_pan.yaml", **params)
    assert total_stride(ir) == stride
    assert ir.node("FA").level == ir.node("E[5]").level == level
