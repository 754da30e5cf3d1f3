"""MONAI's FlexibleUNet against specs/monai_flexible_unet.yaml, and the `monai` backbone
provider behind its encoder: equal outputs given MONAI's weights (eval and train mode, the same
drop-connect draws), every peer tensor mapped once, the provider's levels, weights files,
frozen stages, errors, eject and render (parameter counts: tests/test_zoo.py)."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

import skipgraph
from skipgraph.cli import main
from skipgraph.errors import SpecError
from skipgraph.extras import pip_install
from tests.conftest import SPECS

pytest.importorskip("monai")

SPEC = SPECS / "monai_flexible_unet.yaml"
NAME = "monai_flexible_unet"
slow = pytest.mark.slow


def _pair(**params):
    from skipgraph.integrations.peers import build_peer, load_peer_weights
    model = skipgraph.build(SPEC, seed=0, **params)
    peer = build_peer(NAME, model.ir.params)
    load_peer_weights(model, peer, NAME)
    return model, peer


def _max_diff(model, peer, x: torch.Tensor, training: bool, seed: int) -> float:
    model.train(training), peer.train(training)
    with torch.no_grad():
        torch.manual_seed(seed)  # EfficientNet's drop-connect draws one mask per MBConv skip
        ours = model(x)
        torch.manual_seed(seed)
        theirs = peer(x)
    assert ours.shape == theirs.shape == (x.shape[0], 2, *x.shape[2:])
    return (ours - theirs).abs().max().item()


@pytest.mark.parametrize("params, size", [
    pytest.param({"encoder": "efficientnet-b0"}, (64, 96), id="efficientnet-b0-2d"),
    pytest.param({"encoder": "resnet34"}, (64, 64), id="resnet34-2d"),
    pytest.param({"encoder": "efficientnet-b0", "dims": 3}, (32, 32, 64),
                 id="efficientnet-b0-3d", marks=slow),
    pytest.param({"encoder": "resnet18", "dims": 3, "in_channels": 1}, (32, 32, 32),
                 id="resnet18-3d", marks=slow),
])
def test_equal_outputs_given_monais_weights(params, size, capsys):
    model, peer = _pair(**params)
    x = torch.randn(2, model.ir.in_channels, *size)
    diffs = {(training, seed): _max_diff(model, peer, x, training, seed)
             for training in (True, False) for seed in (0, 1)}  # train first: BN statistics move
    with capsys.disabled():
        print(f"\n{params}: max |diff| train {max(diffs[True, s] for s in (0, 1)):.2e}, "
              f"eval {max(diffs[False, s] for s in (0, 1)):.2e}")
    assert max(diffs.values()) <= 1e-5


def test_drop_connect_makes_efficientnet_training_stochastic_and_the_seed_fixes_it():
    """Without the same seed the two differ in train mode (MONAI's drop-connect is live), so
    the equality above is a check of the same draws, not of a deterministic network."""
    model, peer = _pair()
    x = torch.randn(2, 3, 64, 64)
    model.train(), peer.train()
    with torch.no_grad():
        torch.manual_seed(0)
        ours = model(x)
        torch.manual_seed(1)
        theirs = peer(x)
    assert (ours - theirs).abs().max().item() > 1e-3


@pytest.mark.parametrize("encoder", ["efficientnet-b0", "resnet34"])
def test_every_peer_tensor_is_mapped_once(encoder):
    from skipgraph.integrations.peers import peer_key_map
    model, peer = _pair(encoder=encoder)
    mapping = peer_key_map(NAME, peer)
    names = [v for v in mapping.values() if v is not None]
    assert len(names) == len(set(names))
    assert set(names) == set(model.state_dict())
    skipped = {k.split(".")[1] for k, v in mapping.items() if v is None}
    assert skipped == ({"_conv_head", "_bn1", "_fc"} if encoder.startswith("eff") else set())


@pytest.mark.parametrize("encoder, channels", [
    ("efficientnet-b0", (16, 24, 40, 112, 320)), ("resnet34", (64, 64, 128, 256, 512)),
    ("efficientnet-b3", (24, 32, 48, 136, 384)), ("resnet50", (64, 256, 512, 1024, 2048)),
])
def test_provider_levels_are_monais_feature_channels(encoder, channels):
    from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
    from skipgraph.blocks.backbone_monai import describe
    stages = describe(encoder, 3, 2)
    assert tuple(s.channels for s in stages) == channels \
        == tuple(FLEXUNET_BACKBONE.register_dict[encoder]["feature_channel"])
    assert [s.reduction for s in stages] == [2, 4, 8, 16, 32]
    ir = skipgraph.load_ir(SPEC, encoder=encoder)
    assert [ir.node(f"E[{k}]").block.params for k in range(1, 6)] == [s.params for s in stages]


@pytest.mark.parametrize("dims", [2, 3])
def test_levels_are_read_on_the_meta_device(dims):
    """describe() allocates nothing: MONAI's encoders build and run on the meta device."""
    from skipgraph.blocks.backbone_monai import _encoder, _probe, split
    for name in ("efficientnet-b0", "resnet34"):
        groups = split(_encoder(name, 3, dims, device="meta"))
        assert all(p.is_meta for g in groups for _, m in g for p in m.parameters())
        assert [r for _, r in _probe(groups, 3, dims)] == [2, 4, 8, 16, 32]


def test_stages_are_monais_modules_and_omit_the_unused_classifier():
    model = skipgraph.build(SPEC)
    assert list(model.E1._modules) == ["_conv_stem_padding", "_conv_stem", "_bn0", "_swish",
                                       "_blocks_0"]
    assert list(model.E4._modules) == ["_blocks_3", "_blocks_4"]
    assert not any(n.endswith(("_conv_head.weight", "_fc.weight"))
                   for n in model.state_dict())
    resnet = skipgraph.build(SPEC, encoder="resnet18")
    assert list(resnet.E2._modules) == ["maxpool", "layer1"]


def test_dims_keyword_goes_only_to_providers_that_make_3d():
    from skipgraph.backbone_registry import MonaiProvider, TimmProvider, dims_keyword
    assert dims_keyword(TimmProvider(), 2) == {}
    assert dims_keyword(MonaiProvider(), 3) == {"dims": 3}


def test_weights_file_round_trip_and_a_flexibleunet_state_dict(tmp_path):
    from monai.networks.nets import FlexibleUNet
    net = FlexibleUNet(3, 2, "resnet18", pretrained=False)
    torch.save(net.encoder.state_dict(), tmp_path / "enc.pt")
    torch.save(net.state_dict(), tmp_path / "whole.pt")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = net.encoder.eval()(x)[-1]
        for name in ("enc.pt", "whole.pt"):
            model = skipgraph.build(SPEC, encoder="resnet18", weights=str(tmp_path / name))
            feats = x
            for k in range(1, 6):
                feats = getattr(model, f"E{k}").eval()(feats)
            torch.testing.assert_close(feats, ref, atol=0, rtol=0)


def test_weights_that_do_not_fit_are_named(tmp_path, capsys):
    state = {"conv1.weight": torch.zeros(64, 3, 7, 7), "extra.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="missing keys: bn1.weight.*unexpected keys: extra"):
        skipgraph.build(SPEC, encoder="resnet18", weights=str(tmp_path / "bad.pt"))


def test_frozen_stages_keep_weights_and_statistics():
    model = skipgraph.build(SPEC, encoder="resnet18", frozen=2, seed=0)
    assert not any(p.requires_grad for p in model.E1.parameters())
    assert not any(p.requires_grad for p in model.E2.parameters())
    assert all(p.requires_grad for p in model.E3.parameters())
    before = model.E1.bn1.running_mean.clone()
    model.train()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(model.E1.bn1.running_mean, before)
    assert not torch.equal(model.E3.layer2[0].bn1.running_mean,
                           torch.zeros_like(model.E3.layer2[0].bn1.running_mean))


def test_bad_encoders_are_positioned_errors_with_the_names():
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(SPEC, encoder="efficientnet-b99")
    text = info.value.format()
    assert "monai_flexible_unet.yaml:" in text and "no encoder `efficientnet-b99`" in text
    assert "FLEXUNET_BACKBONE" in text  # the hint: where the names are


def test_missing_monai_is_an_error_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "monai", None)
    monkeypatch.delitem(sys.modules, "skipgraph.blocks.backbone_monai", raising=False)
    assert main(["check", str(SPEC)]) == 2
    err = capsys.readouterr().err
    assert pip_install("monai") in err and "Traceback" not in err


def test_check_passes_and_render_names_the_encoder(capsys):
    from skipgraph.render.draw import draw
    assert main(["check", str(SPEC)]) == 0
    src = draw(skipgraph.load_ir(SPEC)).source
    assert src.count("efficientnet-b0") == 5


@pytest.mark.parametrize("encoder", ["efficientnet-b0", pytest.param("resnet18", marks=slow)])
def test_ejected_file_rebuilds_monais_stages(encoder, tmp_path):
    from skipgraph.export import eject_source
    model = skipgraph.build(SPEC, encoder=encoder, seed=0)
    model.train()
    model(torch.randn(2, 3, 64, 64))  # BN statistics
    model.eval()
    src = eject_source(model)
    assert "from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE" in src
    assert f"_monai_stages({encoder!r}, 3, 2)[4]" in src and "import timm" not in src
    path = tmp_path / "ejected_flex.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ejected_flex", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    standalone = module.Monai_flexible_unet().eval()
    standalone.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(standalone(x), model(x), atol=0, rtol=0)
