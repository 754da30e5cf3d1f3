"""nnU-Net's ResidualUNet (residual decoder) against ``specs/nnunet_resunet.yaml``, and the
ResEnc M / L presets of nnU-Net's plans against ``specs/nnunet_resenc.yaml``: equal parameter
counts and outputs given the same weights, in train and eval mode, every head. The presets are
taken from nnU-Net's own planners (``nnUNetPlannerResEncM`` / ``...L``, which write
``nnUNetResEncUNetMPlans`` / ``...LPlans``) run on synthetic dataset fingerprints, mapped onto
the spec by ``skipgraph nnunet plans``' mapping and compared with the network nnU-Net builds
from the same plans."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import skipgraph
from skipgraph.compile.summary import count_params
from skipgraph.integrations.peers import build_peer, load_peer_weights
from tests.conftest import SPECS

pytest.importorskip("dynamic_network_architectures")  # the `nnunet` extra


def _outputs(out) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _assert_equal(model, peer, x) -> None:
    for training in (True, False):
        model.train(training), peer.train(training)
        with torch.no_grad():
            ours, theirs = _outputs(model(x)), _outputs(peer(x))
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() <= 1e-5, ("train" if training else "eval")


@pytest.mark.parametrize("params, size", [
    pytest.param({"base": 8, "stages": 4, "max_width": 32}, 32, id="2d-small"),
    pytest.param({"base": 8, "stages": 4, "ds": False, "decoder_convs": 2,
                  "blocks": [1, 2, 2, 2]}, 32, id="2d-small-no-ds-2-units"),
    pytest.param({}, 64, id="2d-6-stages", marks=pytest.mark.slow),
    pytest.param({"dims": 3, "stages": 4, "max_width": 320, "blocks": [1, 3, 4, 6]}, 32,
                 id="3d-4-stages", marks=pytest.mark.slow),
])
def test_residual_unet_is_exact(params, size):
    model = skipgraph.build(SPECS / "nnunet_resunet.yaml", seed=0, **params)
    peer = build_peer("nnunet_resunet", model.ir.params)
    print(f"ResidualUNet {params}: {sum(p.numel() for p in peer.parameters()):,} parameters")
    # without deep supervision the spec leaves out the heads the package builds but never runs
    unused = 0 if model.ir.params["ds"] else sum(
        p.numel() for p in peer.decoder.seg_layers[:-1].parameters())
    assert count_params(model) == sum(p.numel() for p in peer.parameters()) - unused
    load_peer_weights(model, peer, "nnunet_resunet")
    _assert_equal(model, peer, torch.randn(2, 1, *[size] * model.ir.dims))


def _planned(planner: str, shape: str, spacing: str) -> dict:
    script = Path(__file__).with_name("resenc_planner.py")
    done = subprocess.run([sys.executable, str(script), planner, shape, spacing],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _nnunet_network(config: dict) -> torch.nn.Module:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    arch = config["architecture"]
    return get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"],
                                  arch["_kw_requires_import"], 1, 2, allow_init=True,
                                  deep_supervision=True)


# (planner, dataset shape, spacing, configuration, input size): an isotropic CT-like dataset
# (M: 128^3 patches, L: 192^3; both 6 stages 32..320, blocks 1,3,4,6,6,6), the 2D
# configuration (7 stages 32..512), and thick slices (anisotropic strides and kernels)
PRESETS = [
    ("nnUNetPlannerResEncM", "256x256x256", "1x1x1", "3d_fullres", (64, 64, 64)),
    ("nnUNetPlannerResEncL", "256x256x256", "1x1x1", "3d_fullres", (64, 64, 64)),
    ("nnUNetPlannerResEncL", "256x256x256", "1x1x1", "2d", (128, 128)),
    ("nnUNetPlannerResEncL", "60x512x512", "4x0.8x0.8", "3d_fullres", (16, 128, 128)),
]


@pytest.mark.slow
@pytest.mark.parametrize("planner, shape, spacing, configuration, size", PRESETS,
                         ids=[f"{p[0][-1]}-{p[3]}-{p[1]}" for p in PRESETS])
def test_resenc_presets_of_nnunets_planners_are_exact(planner, shape, spacing, configuration,
                                                      size):
    pytest.importorskip("nnunetv2")
    from skipgraph.integrations.nnunet.plans import map_configuration
    config = _planned(planner, shape, spacing)[configuration]
    declared = set(skipgraph.load_ir(SPECS / "nnunet_resenc.yaml").params)
    params = map_configuration(config, declared)
    model = skipgraph.build(SPECS / "nnunet_resenc.yaml", seed=0, in_channels=1, classes=2,
                            **params)
    peer = _nnunet_network(config)
    n = sum(p.numel() for p in peer.parameters())
    print(f"{planner} {configuration} (patch {config['patch_size']}): {params} -> {n:,}")
    assert count_params(model) == n
    load_peer_weights(model, peer, "nnunet_resenc")
    _assert_equal(model, peer, torch.randn(1, 1, *size))
