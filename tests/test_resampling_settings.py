"""Resampling settings: pooling windows other than the factor (ResNet's 3x3 / stride 2 / pad 1
max-pool), align_corners, settings a parameter-free op does not use, and the layer rules
`check` enforces so that what it accepts, `build` builds (group norm groups, PReLU
parameters, transposed kernels vs factor)."""
from __future__ import annotations

import pytest

import skipgraph
from skipgraph.errors import SpecError

SPEC = """\
skipgraph: 1
name: t
params: {in_channels: 1}
defaults:
  block: {type: conv, convs: 1, kernel: 3}
  DEFAULTS
nodes:
  X: {for: {i: 0..2}, width: 4 * 2**i}
  D: {for: {i: 0..1}, width: WIDTH}
edges:
  stem: {from: input, to: "X[0]"}
  enc:  {from: "X[i-1]", to: "X[i]"}
  up:   {from: "X[i+1]", to: "D[i]", if: "i == 1"}
  up2:  {from: "D[i+1]", to: "D[i]"}
  skip: {from: "X[i]", to: "D[i]"}
heads:
  seg: {on: "D[0]", out: 1}
"""


def spec(write_spec, defaults: str = "", width: str = "4 * 2**i", **replace: str):
    text = SPEC.replace("DEFAULTS", defaults).replace("WIDTH", width)
    for old, new in replace.items():
        text = text.replace(old, new)
    return write_spec(text)


def errors(path) -> list:
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(path)
    return info.value.diagnostics


# --- pooling with kernel != stride, padding ------------------------------------------------

def fx_node(model, name):
    """The call ``name`` of the compiled eval graph (a param-free op: torch's function)."""
    return next(n for n in model._eval_gm.graph.nodes if n.name == name)


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize("dims", [2, 3])
def test_resnet_pool_is_torchs_3x3_stride2_pad1(write_spec, op, dims):
    import torch
    import torch.nn as nn
    model = skipgraph.build(spec(write_spec, f"down: {{op: {op}, kernel: 3}}"),
                            dims=dims, seed=0).eval()
    pool = getattr(nn, f"{'Max' if op == 'maxpool' else 'Avg'}Pool{dims}d")(3, 2, 1)
    assert "kernel_size = 3, stride = 2, ceil_mode = False, padding = 1" in model.code
    node = fx_node(model, f"X0_{op}2")
    x = torch.randn(2, 1, *[16] * dims)
    with torch.no_grad():
        stem = model.X0(x)
        assert torch.equal(node.target(stem, **node.kwargs), pool(stem))
        assert model(x).shape == (2, 1, *[16] * dims)


def test_default_pool_builds_the_call_it_always_had(write_spec):
    model = skipgraph.build(spec(write_spec, "down: {op: maxpool}"))
    assert "max_pool2d(X0, kernel_size = 2, stride = 2, ceil_mode = False)" in model.code


@pytest.mark.parametrize("down, message", [
    ("{op: maxpool, kernel: 3, padding: 0}", "do not shrink a size by exactly 2"),
    ("{op: avgpool, padding: 1}", "do not shrink a size by exactly 2"),
    ("{op: maxpool, kernel: 3, padding: 2}", "more than half the kernel"),
    ("{op: maxpool, kernel: 3, ceil: true}", "ceil mode"),
    ("{op: maxpool, kernel: [1, 3, 3]}", "a 2D spec needs one per spatial axis"),
])
def test_pool_settings_that_cannot_halve_are_positioned_at_the_edge(write_spec, down, message):
    (diag, *_) = errors(spec(write_spec, f"down: {down}"))
    assert message in diag.message and "edge X[0] -> X[1] (enc)" in diag.message
    assert diag.key == "edges.enc" and diag.span.line == 12
    assert "defaults.down" in diag.hint


def test_an_edge_familys_own_op_is_blamed_where_it_is_written(write_spec):
    path = spec(write_spec, **{'enc:  {from: "X[i-1]", to: "X[i]"}': 'enc:  {from: "X[i-1]", '
                               'to: "X[i]", down: {op: maxpool, padding: 1}}'})
    (diag,) = errors(path)
    assert diag.key == "edges.enc.down"


# --- settings an op does not use ------------------------------------------------------------

@pytest.mark.parametrize("section, setting, key", [
    ("down: {op: maxpool, out: half}", "out", "defaults.down.out"),
    ("down: {op: avgpool, mode: bilinear}", "mode", "defaults.down.mode"),
    ("down: {op: maxpool, bias: false}", "bias", "defaults.down.bias"),
    ("up: {op: bilinear, kernel: 2}", "kernel", "defaults.up.kernel"),
    ("up: {op: nearest, out: 8}", "out", "defaults.up.out"),
    ("up: {op: nearest, align_corners: true}", "align_corners", "defaults.up.align_corners"),
    ("up: {op: transpose, mode: bilinear}", "mode", "defaults.up.mode"),
    ("up: {op: transpose, ceil: true}", "ceil", "defaults.up.ceil"),
    ("down: {op: strided_conv, padding: 1}", "padding", "defaults.down.padding"),
])
def test_unused_settings_are_errors_at_their_key(write_spec, section, setting, key):
    diags = errors(spec(write_spec, section))
    assert [d.key for d in diags] == [key]
    assert f"`{setting}`" in diags[0].message and diags[0].span.line == 6


def test_check_cli_reports_an_unused_setting_with_file_and_line(write_spec, capsys):
    from skipgraph.cli import main
    path = spec(write_spec, "down: {op: maxpool, out: half}")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6:" in err and "`maxpool` does not use `out`" in err


def test_norm_and_act_after_a_pool_are_used_so_accepted(write_spec):
    model = skipgraph.build(spec(write_spec, "down: {op: maxpool, norm: batch, act: relu}"))
    assert type(model.enc_X0_X1.norm).__name__ == "BatchNorm2d"


# --- align_corners ------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("align", [True, False])
def test_align_corners_matches_torch_upsample(write_spec, dims, align):
    import torch
    import torch.nn as nn
    text = f"up: {{op: bilinear, align_corners: {str(align).lower()}}}"
    model = skipgraph.build(spec(write_spec, text, width="4"), dims=dims, seed=0).eval()
    node = fx_node(model, "X2_up2")
    x = torch.randn(1, 16, *[3] * dims)
    mode = "bilinear" if dims == 2 else "trilinear"
    want = nn.Upsample(scale_factor=2, mode=mode, align_corners=align)(x)
    assert torch.equal(node.target(x, **node.kwargs), want)
    assert node.kwargs["align_corners"] is align


def test_align_corners_changes_the_output_and_defaults_to_false(write_spec):
    import torch
    x = torch.randn(1, 1, 16, 16)
    outs = [skipgraph.build(spec(write_spec, f"up: {{op: bilinear{extra}}}", width="4"),
                            seed=0).eval()(x)
            for extra in ("", ", align_corners: false", ", align_corners: true")]
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_upconv_align_corners_needs_bilinear_mode(write_spec):
    import torch
    import torch.nn.functional as F
    (diag,) = errors(spec(write_spec, "up: {op: upconv, kernel: 3, align_corners: true}"))
    assert "mode: bilinear" in diag.message and diag.key.startswith("defaults.up")
    model = skipgraph.build(spec(write_spec, "up: {op: upconv, kernel: 3, mode: bilinear, "
                                 "align_corners: true}"), seed=0).eval()
    up = model.up_X2_D1.resample
    x = torch.randn(1, 16, 4, 4)
    want = up.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))
    assert torch.equal(up(x), want)


@pytest.mark.parametrize("dims", [2, 3])
def test_upconv_runs_a_pointwise_conv_before_nearest_interpolation_bit_for_bit(write_spec, dims):
    """A 1^d conv commutes with nearest interpolation: run first (on 2^d fewer pixels, MONAI's
    pre_conv order), it gives exactly the interpolate-then-conv output; other kernels and
    modes keep interpolate-then-conv."""
    import torch
    import torch.nn.functional as F
    model = skipgraph.build(spec(write_spec, "up: {op: upconv, kernel: 1, out: half}"),
                            dims=dims, seed=0).eval()
    up = model.up_X2_D1.resample
    assert up.conv_first and up.conv.out_channels == 8
    x = torch.randn(2, 16, *[4] * dims)
    with torch.no_grad():
        assert torch.equal(up(x), up.conv(F.interpolate(x, scale_factor=2, mode="nearest")))
    for settings in ("kernel: 3", "kernel: 1, mode: bilinear"):
        model = skipgraph.build(spec(write_spec, f"up: {{op: upconv, {settings}}}"), dims=dims)
        assert not model.up_X2_D1.resample.conv_first


# --- what check accepts, build builds --------------------------------------------------------

def test_group_norm_groups_must_divide_the_channels(write_spec):
    path = spec(write_spec, "block: {type: conv, convs: 1, kernel: 3, norm: {type: group, "
                "groups: 12}}", width="16", **{"  block: {type: conv, convs: 1, kernel: 3}\n": ""})
    diags = errors(path)
    assert all("group norm with 12 groups cannot split" in d.message for d in diags)
    by_node = {d.message.split(" (")[0]: d for d in diags}
    # X[0] (4 channels: 4 groups) and X[2] (16 channels) but not... every node that fails
    assert set(by_node) == {"node X[2]", "node D[0]", "node D[1]"}
    assert by_node["node D[0]"].key == "nodes.D.block" and "-> 16 channels" in \
        by_node["node D[0]"].message


def test_group_norm_that_divides_builds(write_spec):
    """groups: 4 on nodes of 4, 8 and 16 channels: torch's GroupNorm with 4 groups after each
    conv, and the node computes relu(group_norm(conv(x), 4 groups))."""
    import torch
    import torch.nn.functional as F
    path = spec(write_spec, "block: {type: conv, convs: 1, kernel: 3, norm: {type: group, "
                "groups: 4}}", **{"  block: {type: conv, convs: 1, kernel: 3}\n": ""})
    model = skipgraph.build(path, seed=0).eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert sorted({(m.num_groups, m.num_channels) for m in norms}) == [(4, 4), (4, 8), (4, 16)]
    stem = model.get_submodule(model.ir.node("X[0]").module_name)
    with torch.no_grad():
        stem.norm1.weight.uniform_(0.5, 2.0)
        stem.norm1.bias.uniform_(-1.0, 1.0)
        x = torch.randn(2, 1, 16, 16)
        y = stem.conv1(x)
        by_hand = y.view(2, 4, -1)  # 4 groups of 1 channel: normalised over their positions
        by_hand = (by_hand - by_hand.mean(-1, keepdim=True)) / torch.sqrt(
            by_hand.var(-1, unbiased=False, keepdim=True) + 1e-5)
        by_hand = by_hand.view_as(y) * stem.norm1.weight.view(1, 4, 1, 1) \
            + stem.norm1.bias.view(1, 4, 1, 1)
        torch.testing.assert_close(stem(x), F.relu(by_hand))


def test_group_norm_on_an_edge_and_prelu_parameters(write_spec):
    diags = errors(spec(write_spec, "up: {op: transpose, norm: {type: group, groups: 3}}"))
    assert diags and all(d.key in ("edges.up", "edges.up2") for d in diags)
    assert "`transpose`'s norm/act on" in diags[0].message
    diags = errors(spec(write_spec, "down: {op: maxpool, act: {type: prelu, "
                        "num_parameters: 3}}"))
    assert "PReLU with num_parameters 3" in diags[0].message and diags[0].key == "edges.enc"


@pytest.mark.parametrize("norm, message", [
    ("{type: group, groups: 0}", "`groups` must be an integer >= 1"),
    ("{type: batch, eps: -1}", "`eps` must be a positive number"),
    ("{type: instance, affine: 2}", "`affine` must be true or false"),
])
def test_norm_option_values_are_checked(write_spec, norm, message):
    path = spec(write_spec, f"block: {{type: conv, convs: 1, kernel: 3, norm: {norm}}}",
                **{"  block: {type: conv, convs: 1, kernel: 3}\n": ""})
    diags = errors(path)
    assert any(message in d.message for d in diags)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_transposed_kernels_grow_by_the_factor(write_spec, kernel):
    import torch
    model = skipgraph.build(spec(write_spec, f"up: {{op: transpose, kernel: {kernel}}}"))
    assert model.eval()(torch.randn(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    assert model.up_X2_D1.resample.kernel_size == (kernel, kernel)


def test_block_kernel_with_wrong_axes_is_a_check_error(write_spec):
    diags = errors(spec(write_spec, **{"kernel: 3}": "kernel: [1, 3, 3]}"}))
    assert "kernel: [1, 3, 3] has 3 entries" in diags[0].message
