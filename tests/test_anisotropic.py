"""Anisotropic grids: `strides:` gives the per-axis factor between levels (nnU-Net's 3D plans for
thick-slice volumes); kernels per axis; everything that assumed 2^level follows the per-axis
rule (input contract, heads, targets, padding, drawing). Isotropic specs are unchanged."""
from __future__ import annotations

import pytest

import skipgraph
from skipgraph.errors import SpecError

SPEC = """\
skipgraph: 1
name: aniso
params: {in_channels: 1, strides: [[1, 2, 2], 2]}
dims: 3
strides: "${strides}"
defaults:
  block: {type: conv, convs: 1, kernel: [1, 3, 3]}
  DEFAULTS
nodes:
  X: {for: {i: 0..2}, width: 4}
  D: {for: {i: 0..1}, width: 4}
edges:
  stem: {from: input, to: "X[0]"}
  enc:  {from: "X[i-1]", to: "X[i]"}
  up:   {from: "X[i+1]", to: "D[i]", if: "i == 1"}
  up2:  {from: "D[i+1]", to: "D[i]"}
  skip: {from: "X[i]", to: "D[i]"}
heads:
  seg: {on: "D[i]", out: 1}
"""


def spec(write_spec, defaults: str = "up: {op: transpose, kernel: factor}", **replace: str):
    text = SPEC.replace("DEFAULTS", defaults)
    for old, new in replace.items():
        text = text.replace(old, new)
    return write_spec(text)


def errors(path, **params) -> list:
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(path, **params)
    return info.value.diagnostics


def test_levels_resample_by_their_per_axis_factors(write_spec):
    ir = skipgraph.load_ir(spec(write_spec))
    assert ir.scale(1) == (1, 2, 2) and ir.scale(2) == (2, 4, 4) and ir.factor(2, 0) == (2, 4, 4)
    assert skipgraph.graph.total_stride(ir) == (2, 4, 4)
    factors = {(e.src, e.dst): e.resample.factor for e in ir.edges() if e.resample}
    assert factors[("X[0]", "X[1]")] == (1, 2, 2) and factors[("X[1]", "X[2]")] == 2
    assert "maxpool(x(1,2,2), X[0])" in str(ir) and "# level 2 (1/(2,4,4))" in str(ir)
    assert ir.heads["D[1]"].stride == (1, 2, 2)


def test_the_module_takes_per_axis_multiples_and_heads_shrink_per_axis(write_spec):
    import torch
    model = skipgraph.build(spec(write_spec), seed=0)
    assert "max_pool3d(X0, kernel_size = (1, 2, 2), stride = (1, 2, 2)" in model.code
    assert model.X0.conv1.kernel_size == (1, 3, 3) and model.X0.conv1.padding == (0, 1, 1)
    out = model.train()(torch.randn(1, 1, 2, 8, 12))
    assert out["D[0]"].shape == (1, 1, 2, 8, 12) and out["D[1]"].shape == (1, 1, 2, 4, 6)
    with pytest.raises(ValueError, match=r"not a multiple of the total stride \(2, 4, 4\) "
                                         r"\(per axis\)"):
        model(torch.randn(1, 1, 3, 8, 12))


def test_padding_and_targets_follow_the_per_axis_stride(write_spec):
    import torch
    from skipgraph.losses import resize_target
    from skipgraph.train.data import pad_to
    path = spec(write_spec, **{"dims: 3\n": "dims: 3\ninput: {pad: true}\n"})
    model = skipgraph.build(path, seed=0).train()
    out = model(torch.randn(1, 1, 3, 7, 9))
    assert out["D[0]"].shape == (1, 1, 3, 7, 9) and out["D[1]"].shape == (1, 1, 3, 4, 5)
    y = torch.zeros(1, 1, 3, 7, 9)
    assert resize_target(y, model.ir.heads["D[1]"].stride, "maxpool", 3).shape == out["D[1]"].shape
    padded, sizes = pad_to(torch.zeros(1, 1, 3, 7, 9), (2, 4, 4))
    assert padded.shape == (1, 1, 4, 8, 12) and sizes == [3, 7, 9]


def test_transposed_kernel_factor_follows_the_edge_and_kernel_2_on_a_kept_axis_is_refused(
        write_spec):
    import torch
    model = skipgraph.build(spec(write_spec, "up: {op: transpose, kernel: factor}"), seed=0)
    assert model.up2_D1_D0.resample.kernel_size == (1, 2, 2)
    assert model.eval()(torch.randn(1, 1, 2, 8, 8)).shape == (1, 1, 2, 8, 8)
    (diag, *_) = errors(spec(write_spec, "up: {op: transpose, kernel: 2}"))
    assert "`transpose` by x(1,2,2)" in diag.message and "on axis 0" in diag.message
    assert diag.key in ("edges.up", "edges.up2")


def test_strides_are_checked_against_dims_and_depth(write_spec):
    (diag,) = errors(spec(write_spec), strides=[[1, 2], 2])
    assert diag.key == "strides.0" and "needs one per spatial axis" in diag.message
    (diag,) = errors(spec(write_spec), strides=[2, 2, 2])
    assert diag.key == "strides" and "deepest level is 2" in diag.message


def test_kernel_expressions_are_evaluated_per_node(write_spec):
    path = spec(write_spec, **{"kernel: [1, 3, 3]}": 'kernel: "ks[i]"}',
                               "params: {": "params: {ks: [[1, 3, 3], 3, [3, 1, 1]], "})
    model = skipgraph.build(path, seed=0)
    assert [model.get_submodule(f"X{i}").conv1.kernel_size for i in range(3)] == \
        [(1, 3, 3), (3, 3, 3), (3, 1, 1)]
    (diag, *_) = errors(path, ks=[[1, 2, 3], 3, 3])
    assert "`kernel: ks[i]` gives (1, 2, 3)" in diag.message and "odd kernel" in diag.message


def test_render_draws_the_per_axis_factor_of_anisotropic_levels(write_spec):
    from skipgraph.render.draw import draw
    dot = draw(skipgraph.load_ir(spec(write_spec))).source
    assert "x(1,2,2)" in dot and ">x2<" in dot
    iso = draw(skipgraph.load_ir(spec(write_spec), strides=[])).source
    assert "x(1,2,2)" not in iso


def test_an_isotropic_strides_list_builds_what_the_default_grid_builds(write_spec):
    import torch
    a = skipgraph.build(spec(write_spec), strides=[], seed=0)
    b = skipgraph.build(spec(write_spec), strides=[2, [2, 2, 2]], seed=0)
    assert a.code == b.code
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


def test_a_kernel_expression_naming_an_unbound_variable_is_positioned(write_spec):
    (diag, *_) = errors(spec(write_spec, "down: {op: strided_conv, kernel: \"j + 1\"}"))
    assert diag.key == "defaults.down.kernel" and "unknown name `j`" in diag.message


@pytest.mark.parametrize("block_type", ["conv", "resblock"])
def test_a_strided_block_strides_by_its_levels_per_axis_factor(write_spec, block_type):
    """`stride: 2` puts a node one level below its inputs; on an anisotropic grid its first conv
    (and a resblock's shortcut) stride by that level's factor per axis, as nnU-Net's ResEnc
    stages do with strides such as (1, 2, 2)."""
    import torch
    path = spec(write_spec, **{"X: {for: {i: 0..2}, width: 4}": (
        'X: {for: {i: 0..2}, width: 4, block: {type: ' + block_type +
        ', stride: "1 if i == 0 else 2"}}')})
    model = skipgraph.build(path, seed=0)
    ir = model.ir
    assert [ir.node(f"X[{i}]").in_level for i in range(3)] == [0, 0, 1]
    first = model.X1.conv1 if block_type == "conv" else model.X1.unit1.conv1
    assert first.stride == (1, 2, 2)
    assert (model.X2.conv1 if block_type == "conv" else model.X2.unit1.conv1).stride == (2, 2, 2)
    out = model.train()(torch.randn(1, 1, 2, 8, 12))
    assert out["D[0]"].shape == (1, 1, 2, 8, 12) and out["D[1]"].shape == (1, 1, 2, 4, 6)
