"""Atrous (dilated) convs, depthwise-separable convs (`sepconv`), global and pyramid image
pooling (`image_pool`, `bins`), dropout on a merged input (`dropout`), seg heads resized with aligned corners
and the drawing's `row`: structure, counts, behaviour against hand-written torch, and errors
at their positions (the smp zoo specs that use them: tests/integrations/test_peers_smp.py)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from skipgraph.blocks.builtin import ConvParams, ResBlockParams
from skipgraph.blocks.context import DropoutBlock, ImagePool, SepConvStack
from skipgraph.blocks.context_params import DropoutParams, ImagePoolParams, SepConvParams
from skipgraph.blocks.conv import ConvStack
from skipgraph.blocks.resnet import ResBlock
from skipgraph.compile.module import compile_ir
from skipgraph.compile.summary import count_params
from skipgraph.errors import SpecError
from skipgraph.graph import build_ir
from skipgraph.render.draw import node_position
from skipgraph.spec import load_spec_text

# an encoder whose last level dilates instead of striding, three parallel branches (atrous
# separable, image pooling, 1x1) concatenated, a spatial dropout and a resized head
SPEC = """\
skipgraph: 1
name: context
params: {rate: 2, branch: sepconv}
input: {channels: 1}
defaults:
  block: {type: conv, convs: 1, bias: false, norm: batch, act: relu}
nodes:
  E: {for: {i: 0..2}, level: "min(i, 1)", width: 8, column: 0,
      block: {stride: "2 if i == 1 else 1", dilation: "rate if i == 2 else 1"}}
  A: {level: 1, column: 1, row: 2, width: 8, block: {type: "${branch}", dilation: 3}}
  P: {level: 1, column: 1, row: -2, width: 8, block: {type: image_pool}}
  C: {level: 1, column: 1, width: 8, block: {kernel: 1}}
  M: {level: 1, column: 2, width: 24, block: {type: dropout, rate: 0.5, spatial: true}}
edges:
  stem: {from: input, to: "E[0]"}
  enc:  {from: "E[i-1]", to: "E[i]"}
  a:    {from: "E[2]", to: A, kind: skip}
  p:    {from: "E[2]", to: P, kind: skip}
  c:    {from: "E[2]", to: C, kind: skip}
  ma:   {from: A, to: M}
  mp:   {from: P, to: M}
  mc:   {from: C, to: M}
heads:
  seg: {on: M, out: 2, resize: full, align_corners: true}
"""


def _ir(text=SPEC, **params):
    return build_ir(load_spec_text(text, params, file="spec.yaml"))


def _errors(text, **params):
    with pytest.raises(SpecError) as info:
        _ir(text, **params)
    return [(d.code, d.span.line if d.span else None, d.message)
            for d in info.value.diagnostics]


def _line(text, needle):
    return next(k for k, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_dilated_conv_keeps_the_size_and_the_count():
    x = torch.randn(2, 4, 15, 17)
    plain, atrous = (ConvStack(2, 4, 6, ConvParams(convs=2, kernel=3, dilation=d))
                     for d in (1, 3))
    assert atrous(x).shape == plain(x).shape == (2, 6, 15, 17)
    assert count_params(atrous) == count_params(plain)
    assert atrous.conv1.dilation == (3, 3) and atrous.conv1.padding == (3, 3)
    atrous.conv1.load_state_dict(plain.conv1.state_dict())
    expected = F.conv2d(x, plain.conv1.weight, plain.conv1.bias, padding=3, dilation=3)
    assert torch.allclose(atrous.conv1(x), expected, atol=1e-6)


def test_a_dilated_resblock_dilates_every_conv_the_1x1_shortcut_too():
    """As smp's make_dilated: a 1x1 conv computes the same dilated or not, but the dilated one
    runs the same kernel as smp's (bitwise equal encoders, specs/smp_pan.yaml)."""
    block = ResBlock(3, 4, 8, ResBlockParams(units=2, dilation=2, kernel=3))
    convs = [m for n, m in block.named_modules() if isinstance(m, nn.Conv3d)]
    assert [c.dilation for c in convs] == [(2, 2, 2)] * 5
    assert [c.padding for c in convs] == [(2, 2, 2)] * 2 + [(0, 0, 0)] + [(2, 2, 2)] * 2
    x = torch.randn(1, 4, 6, 6, 6)
    assert block(x).shape == (1, 8, 6, 6, 6)
    shortcut = block.unit1.shortcut.conv
    assert torch.allclose(shortcut(x), F.conv3d(x, shortcut.weight), atol=1e-6)


def test_the_spec_dilates_per_node_and_its_levels_follow_the_strides():
    ir = _ir()
    assert [ir.node(f"E[{i}]").block.dilation for i in range(3)] == [1, 1, 2]
    assert ir.node("E[2]").level == ir.node("E[2]").in_level == 1  # dilated, not strided
    model = compile_ir(ir)
    assert model.E2.conv1.dilation == (2, 2) and model.A.dw1.dilation == (3, 3)
    model.train()
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 2, 16, 16)


def test_sepconv_is_a_depthwise_then_a_pointwise_conv():
    p = SepConvParams(convs=2, kernel=3, stride=2, bias=False, norm="batch")
    block = SepConvStack(2, 4, 6, p)
    assert block.dw1.groups == 4 and block.dw1.stride == (2, 2) and block.dw1.bias is None
    assert block.dw2.groups == 6 and block.pw1.kernel_size == (1, 1) and block.pw1.bias is None
    assert count_params(block) == (9 * 4 + 4 * 6 + 12) + (9 * 6 + 6 * 6 + 12)
    block.eval()
    x = torch.randn(1, 4, 8, 8)
    h = block.act1(block.norm1(block.pw1(F.conv2d(x, block.dw1.weight, stride=2, padding=1,
                                                     groups=4))))
    assert torch.allclose(block(x), block.act2(block.norm2(block.pw2(block.dw2(h)))))


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_image_pool_spreads_one_pooled_vector_over_the_map(pool):
    block = ImagePool(2, 3, 5, ImagePoolParams(pool=pool, act="none"))
    x = torch.randn(2, 3, 7, 9)
    y = block(x)
    assert y.shape == (2, 5, 7, 9) and y.is_contiguous()
    pooled = x.amax(dim=(2, 3)) if pool == "max" else x.mean(dim=(2, 3))
    expected = pooled @ block.conv.weight[:, :, 0, 0].T + block.conv.bias
    assert torch.allclose(y, expected[:, :, None, None].expand_as(y), atol=1e-6)


@pytest.mark.parametrize("dims, pool", [(2, "avg"), (2, "max"), (3, "avg")])
def test_image_pool_bins_pool_to_cells_and_resize_back_linearly(dims, pool):
    # a level of PSPNet's pyramid: adaptive pooling to bins^d cells, 1x1 conv, norm, act,
    # (bi/tri)linear resize to the input's size with align_corners false
    block = ImagePool(dims, 3, 5, ImagePoolParams(pool=pool, bins=3, norm="batch")).eval()
    x = torch.randn(2, 3, *[7] * dims)
    adaptive = {(2, "avg"): F.adaptive_avg_pool2d, (2, "max"): F.adaptive_max_pool2d,
                (3, "avg"): F.adaptive_avg_pool3d}[dims, pool]
    h = block.act(block.norm(block.conv(adaptive(x, 3))))
    mode = "bilinear" if dims == 2 else "trilinear"
    expected = F.interpolate(h, size=x.shape[2:], mode=mode, align_corners=False)
    with torch.no_grad():
        y = block(x)
        assert y.shape == (2, 5, *[7] * dims)
        torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
        assert block.pooled(x).shape == (2, 3, *[3] * dims)


def test_image_pool_bins_with_an_se_bottleneck():
    block = ImagePool(2, 8, 6, ImagePoolParams(bins=2, reduction=4, act="sigmoid")).eval()
    x = torch.randn(2, 8, 6, 6)
    h = block.act(block.conv(block.reduce_act(block.reduce(F.adaptive_avg_pool2d(x, 2)))))
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.interpolate(h, size=(6, 6), mode="bilinear",
                                                           align_corners=False))


@pytest.mark.parametrize("dims, pool", [(2, "avg"), (2, "max"), (3, "avg"), (3, "max")])
def test_image_pool_cells_equal_adaptive_pooling_at_any_size(dims, pool):
    # the form exports trace (sizes known at run time only): torch's adaptive pooling cells
    adaptive = getattr(F, f"adaptive_{pool}_pool{dims}d")
    for bins in (2, 3, 6):
        block = ImagePool(dims, 3, 4, ImagePoolParams(pool=pool, bins=bins))
        for side in (1, 2, 5, 7, 13):
            x = torch.randn(2, 3, *[side + k for k in range(dims)])
            torch.testing.assert_close(block.cells(x), adaptive(x, bins), rtol=0, atol=1e-6)


def _bins_model():
    text = SPEC.replace("block: {type: image_pool}", "block: {type: image_pool, bins: 3}")
    return compile_ir(_ir(text), seed=0).eval()


# sizes an exported bins model runs at: the cells of the traced size must not stay fixed
EXPORT_SIZES = [(16, 16), (24, 40)]


def test_image_pool_bins_torch_export_with_dynamic_sizes():
    from skipgraph.export import export_program
    model = _bins_model()
    program = export_program(model).module()
    with torch.no_grad():
        for size in EXPORT_SIZES:
            x = torch.randn(2, 1, *size)
            torch.testing.assert_close(program(x), model(x), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_image_pool_bins_onnx_with_dynamic_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skipgraph.export import export_onnx
    model = _bins_model()
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    with torch.no_grad():
        for size in EXPORT_SIZES:
            x = torch.randn(2, 1, *size)
            [got] = session.run(None, {"x": x.numpy()})
            torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=0, atol=1e-5)


def test_image_pool_bins_per_node_and_the_drawing_note():
    text = SPEC.replace("block: {type: image_pool}", 'block: {type: image_pool, bins: "nbins"}')
    text = text.replace("params: {rate: 2, branch: sepconv}",
                        "params: {rate: 2, branch: sepconv, nbins: 1}")
    assert _ir(text).node("P").block.note() == "global avg"  # bins 1: today's global pooling
    ir = _ir(text, nbins=2)
    assert ir.node("P").block.bins == 2 and ir.node("P").block.note() == "avg 2 bins"
    model = compile_ir(ir)
    assert model.P.bins == 2
    model.train()
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 2, 16, 16)
    assert count_params(model) == count_params(compile_ir(_ir(text)))  # bins add no weights
    line = _line(text, "bins: \"nbins\"")
    assert ("bad-value", line, "expected an integer >= 1, `nbins` gives 0") in _errors(text,
                                                                                     nbins=0)
    assert any("`bins` must be from 1 to 256, not 300" in m and at == line
               for _, at, m in _errors(text, nbins=300))


def test_dropout_drops_whole_channels_in_training_only():
    block = DropoutBlock(3, 8, 8, DropoutParams(rate=0.5, spatial=True))
    x = torch.ones(4, 8, 3, 3, 3)
    assert isinstance(block.drop, nn.Dropout3d)
    block.eval()
    assert torch.equal(block(x), x)
    block.train()
    torch.manual_seed(0)
    y = block(x).flatten(2)
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert (y.amin(dim=2) == y.amax(dim=2)).all()  # one value per channel
    assert isinstance(DropoutBlock(2, 8, 8, DropoutParams()).drop, nn.Dropout)


def test_a_dropout_node_keeps_its_width():
    text = SPEC.replace("width: 24, block: {type: dropout", "width: 16, block: {type: dropout")
    assert any("keeps its 24 input channels" in m for _, _, m in _errors(text))


def test_the_head_resizes_with_aligned_corners():
    model = compile_ir(_ir())
    model.eval()
    seen = {}
    model.M.register_forward_hook(lambda m, i, o: seen.setdefault("M", o))
    y = model(torch.randn(2, 1, 16, 16))
    expected = F.interpolate(model.head_M(seen["M"]), scale_factor=2, mode="bilinear",
                             align_corners=True)
    assert torch.allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize("old, new, needle, message", [
    ("resize: full, align_corners: true", "align_corners: true", "align_corners",
     "applies to `resize: full` only"),
    ('dilation: "rate if i == 2 else 1"', "dilation: 0", "dilation", "`dilation` must be"),
    ("rate: 0.5", "rate: 1.5", "rate: 1.5", "less than 1"),
    ("type: image_pool}", "type: image_pool, pool: min}", "pool: min", "'avg' or 'max'"),
    ("type: image_pool}", "type: image_pool, norm: instance}", "norm: instance",
     "the pooled map has one"),
    ("type: image_pool}", "type: image_pool, bins: 0}", "bins: 0", "`bins` must be from 1"),
    ("type: image_pool}", "type: image_pool, bins: 2.5}", "bins: 2.5", "expected an integer >= 1"),
])
def test_bad_settings_are_errors_at_their_position(old, new, needle, message):
    text = SPEC.replace(old, new)
    errors = _errors(text)
    assert any(message in m and line == _line(text, needle) for _, line, m in errors), errors


def test_a_dilation_expression_below_1_is_an_error_at_the_block():
    errors = _errors(SPEC, rate=0)
    assert any("`rate if i == 2 else 1` gives 0" in m and line == _line(SPEC, "dilation")
               for _, line, m in errors), errors


def test_rows_move_the_drawing_only():
    ir = _ir()
    (xa, ya), (xp, yp), (xc, yc) = (node_position(ir.node(n)) for n in "APC")
    assert xa == xp == xc and ya > yc > yp
    flat = _ir(SPEC.replace("row: 2, ", "").replace("row: -2, ", ""))
    assert count_params(compile_ir(flat)) == count_params(compile_ir(ir))


def test_a_conv_branch_in_place_of_sepconv_has_the_dense_count():
    sep, dense = (count_params(compile_ir(_ir(branch=b))) for b in ("sepconv", "conv"))
    assert dense - sep == (9 * 8 * 8) - (9 * 8 + 8 * 8)
