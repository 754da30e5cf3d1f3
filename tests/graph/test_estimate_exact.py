"""The torch-free parameter estimate (skipgraph.graph.estimate, used by `render -o x.html`,
the notebook caption and the resource guard) counts what the compiled module holds: every zoo
spec's total and every summary row, and the conv-family blocks under each norm / act / bias
setting."""
from __future__ import annotations

import importlib.util

import pytest

from skipgraph import build, load_ir
from skipgraph.blocks.builtin import ConvParams, ResBlockParams
from skipgraph.blocks.context_params import SepConvParams
from skipgraph.blocks.registry import get_block
from skipgraph.blocks.unit_params import ConvUnitParams, PreActParams
from skipgraph.compile.summary import _owned_params, count_params
from skipgraph.graph.estimate import estimate_node_params, estimate_params
from tests.conftest import BACKBONE_ZOO, CORE, zoo_params

# a 3D spec with 1x1 lateral edge convs, transposed convs and PReLU / instance norms
FAST = CORE | {"smp_fpn", "monai_unet", "bio_linknet"}


@pytest.mark.parametrize("spec", zoo_params(FAST))
def test_estimate_is_the_built_models_count(spec):
    ir, model = load_ir(spec), build(spec)
    assert estimate_params(ir) == count_params(model)
    assert estimate_node_params(ir) == _owned_params(model, ir)  # row by row, edges included


NORMS = ["none", "batch", "instance", {"type": "instance", "affine": True},
         {"type": "group", "groups": 2}, "layer", {"type": "batch", "affine": False}]
ACTS = ["relu", "prelu", {"type": "prelu", "num_parameters": 6}]


@pytest.mark.parametrize("norm", NORMS, ids=str)
@pytest.mark.parametrize("act", ACTS, ids=str)
@pytest.mark.parametrize("params", [
    ConvParams(convs=2, kernel=1, bias=True), ConvParams(convs=3, widths=[6, 6], stride=2),
    ResBlockParams(units=2, stride=2), ResBlockParams(shortcut="pool_conv", stride=2),
    ConvUnitParams(convs=2, stride=2, residual=True, order="NDA"),
    ConvUnitParams(convs=1, residual=True, last_conv_only=True, order="AN"),
    ConvUnitParams(transposed=True, stride=2, post_act=True, bias=False),
    PreActParams(units=2), SepConvParams(convs=2, bias=False)], ids=lambda p: p.type)
@pytest.mark.parametrize("dims, c_in", [(2, 4), (3, 6)])
def test_block_estimate_is_exact_for_every_norm_and_act(params, norm, act, dims, c_in):
    settings = params.with_values(norm=norm, act=act) if hasattr(params, "with_values") else \
        type(params).model_validate({**params.model_dump(), "norm": norm, "act": act})
    block = get_block(settings.type).load_builder()(dims, c_in, 6, settings)
    assert settings.estimate_params(dims, c_in, 6) == count_params(block)


def test_an_edge_conv_counts_its_own_kernel_and_bias(write_spec):
    # a 1x1 projection with bias on a skip edge (smp's FPN laterals): 8*4 + 4, not 3x3 weights;
    # after a transposed conv (8 -> 4) the target-side conv sees 4 channels, not the source's 8
    path = write_spec("""\
skipgraph: 1
name: lateral
params: {in_channels: 1, classes: 1}
nodes:
  A: {level: 0, width: 8}
  B: {level: 1, width: 8}
  P: {level: 0, width: 4, merge: sum, block: {type: identity, norm: none, act: none}}
edges:
  stem: {from: input, to: A}
  down: {from: A, to: B}
  lateral: {from: A, to: P, kind: skip,
            conv: {width: 4, block: {convs: 1, kernel: 1, bias: true, norm: none, act: none}}}
  up: {from: B, to: P, conv: {width: 4, block: {convs: 1, norm: batch}}}
heads:
  seg: {on: P, out: classes}
""")
    ir, model = load_ir(path), build(path)
    assert estimate_node_params(ir)["P"] == _owned_params(model, ir)["P"] == \
        (8 * 4 + 4) + (4 * 8 * 4 + 4) + (9 * 4 * 4 + 4 + 2 * 4)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="needs timm")
@pytest.mark.parametrize("spec", BACKBONE_ZOO, ids=lambda p: p.stem)
def test_estimate_is_exact_for_timm_encoder_specs(spec):
    ir, model = load_ir(spec), build(spec)
    assert estimate_params(ir) == count_params(model)
