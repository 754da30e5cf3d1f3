"""``op: pixelshuffle`` (sub-pixel convolution): equal to MONAI's SubpixelUpsample given the
same weights, in 2D and 3D, and usable from a spec like any other up-sampling op."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F

import skipgraph
from skipgraph.errors import SpecError
from skipgraph.export import eject_source
from skipgraph.resampling import get_resample
from skipgraph.resampling.pixelshuffle_modules import SubpixelUp
from tests.conftest import TINY_SPEC

PS_SPEC = TINY_SPEC.replace("nodes:", "defaults:\n  up: {op: pixelshuffle}\nnodes:")


def _settings(**kw):
    return get_resample("pixelshuffle").params(op="pixelshuffle", **kw)


def test_shuffle_is_torchs_pixel_shuffle_in_2d():
    m = SubpixelUp(2, 3, 5, 2, _settings(pad_pool=False))
    x = torch.randn(2, 5 * 4, 6, 7)
    assert torch.equal(m.shuffle(x), F.pixel_shuffle(x, 2))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("pad_pool", [True, False])
@pytest.mark.parametrize("factor", [2, 4])
def test_equal_to_monai_subpixel_upsample(dims, pad_pool, factor):
    monai = pytest.importorskip("monai.networks.blocks")
    torch.manual_seed(0)
    ours = SubpixelUp(dims, 4, 3, factor, _settings(pad_pool=pad_pool))
    theirs = monai.SubpixelUpsample(dims, 4, 3, scale_factor=factor, apply_pad_pool=pad_pool)
    theirs.conv_block.load_state_dict(ours.conv.state_dict())
    x = torch.randn(2, 4, *[5] * dims)
    y = ours(x)
    assert y.shape == (2, 3, *[5 * factor] * dims)
    torch.testing.assert_close(y, theirs(x))


def test_icnr_starts_as_nearest_neighbour_upsampling():
    m = SubpixelUp(2, 2, 3, 2, _settings(pad_pool=False))
    torch.nn.init.zeros_(m.conv.bias)
    y = m(torch.randn(1, 2, 4, 4))
    cells = y.unfold(2, 2, 2).unfold(3, 2, 2)  # every 2x2 cell holds one value
    assert torch.allclose(cells, cells[..., :1, :1].expand_as(cells))


def test_spec_with_pixelshuffle_builds_with_exact_parameter_count(write_spec):
    model = skipgraph.build(write_spec(PS_SPEC), seed=0)
    # up edges into X[1,1] (16 -> 8), X[0,1] and X[0,2] (8 -> 4): (9 C_in + 1) C_out 4 each
    ps = (9 * 16 + 1) * 8 * 4 + 2 * (9 * 8 + 1) * 4 * 4
    transpose = skipgraph.build(write_spec(TINY_SPEC), seed=0)
    tr = (16 * 4 + 1) * 8 + 2 * (8 * 4 + 1) * 4
    count = sum(p.numel() for p in model.parameters())
    assert count - sum(p.numel() for p in transpose.parameters()) == ps - tr
    assert count == 14_305
    assert "pixelshuffle(x2, X[1,1])" in str(model.ir)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_pixelshuffle_in_3d(write_spec):
    model = skipgraph.build(write_spec(PS_SPEC), dims=3, seed=0).eval()
    assert model(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)


def test_even_kernel_is_a_positioned_error(write_spec):
    text = PS_SPEC.replace("{op: pixelshuffle}", "{op: pixelshuffle, kernel: 2}")
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    [d] = info.value.diagnostics
    assert "odd kernel" in d.message and d.span.line == 5  # the `up:` line


def test_unknown_op_has_did_you_mean(write_spec):
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(PS_SPEC.replace("op: pixelshuffle", "op: pixelshufle")))
    [d] = info.value.diagnostics
    assert d.code == "unknown-name" and d.hint == "did you mean `pixelshuffle`?"


def test_ejected_file_matches(write_spec, tmp_path):
    model = skipgraph.build(write_spec(PS_SPEC), seed=0).eval()
    path = tmp_path / "ps_model.py"
    path.write_text(eject_source(model))
    spec = importlib.util.spec_from_file_location("ps_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ps_model"] = module
    spec.loader.exec_module(module)
    ejected = module.Tiny().eval()
    ejected.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ejected(x), model(x))
