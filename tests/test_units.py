"""`convunit` (MONAI's Convolution / ResidualUnit: N/D/A order, Kerfoot's residual, transposed
units that stride up), `preact` (pre-activation residual units) and `identity` heads:
structure, shapes, equality with hand-written layers, positioned errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import skipgraph
from skipgraph.blocks.unit_params import ORDERS, ConvUnitParams, PreActParams
from skipgraph.blocks.units import ConvUnit, PreActBlock
from skipgraph.errors import SpecError

# a two-level net: a strided residual unit down, a transposed unit up, an identity head
SPEC = """\
skipgraph: 1
name: units
params: {classes: 4, res: true}
dims: 2
input: {channels: 1}
defaults:
  block: {type: convunit, norm: batch, act: prelu}
nodes:
  E: {level: 1, width: 8, block: {stride: 2, convs: 2, residual: "${res}"}}
  U: {level: 0, width: classes, block: {transposed: true, stride: 2}}
edges:
  stem: {from: input, to: E}
  up:   {from: E, to: U}
heads:
  seg: {type: identity, on: U, out: classes}
"""


def _build(write_spec, text=SPEC, **params):
    return skipgraph.build(write_spec(text), seed=0, **params)


@pytest.mark.parametrize("order", ["NDA", "AN", "DAN", "A"])
def test_order_places_norm_dropout_and_act(order):
    unit = ConvUnit(2, 3, 5, ConvUnitParams(order=order, dropout=0.1, norm="batch"))
    kinds = {"norm": nn.BatchNorm2d, "drop": nn.Dropout, "act": nn.PReLU}
    names = [n for n in unit.layer_names if n != "conv1"]
    assert names == [{"N": "norm1", "D": "drop1", "A": "act1"}[c] for c in order]
    assert all(isinstance(getattr(unit, n), kinds[n[:-1]]) for n in names)


def test_every_order_of_one_to_three_letters_is_accepted_and_no_other():
    assert len(ORDERS) == 15 and "NDA" in ORDERS and "NN" not in ORDERS
    with pytest.raises(ValueError):
        ConvUnitParams(order="NX")


def test_dropout_zero_builds_no_dropout_layer():
    unit = ConvUnit(2, 3, 5, ConvUnitParams())
    assert not any(isinstance(m, nn.Dropout) for m in unit.modules())


@pytest.mark.parametrize("stride, c_in, kind", [(1, 8, None), (2, 8, 3), (1, 4, 1), (2, 4, 3)])
def test_kerfoots_residual_is_identity_or_a_conv(stride, c_in, kind):
    unit = ConvUnit(2, c_in, 8, ConvUnitParams(stride=stride, convs=2, residual=True))
    x = torch.randn(2, c_in, 16, 16)
    h = unit.act2(unit.norm2(unit.conv2(unit.act1(unit.norm1(unit.conv1(x))))))
    if kind is None:
        assert unit.residual is None and unit.identity_residual
        expected = h + x
    else:
        assert unit.residual.kernel_size == (kind, kind) and unit.residual.stride == (stride,) * 2
        expected = h + unit.residual(x)
    torch.testing.assert_close(unit(x), expected)


def test_last_conv_only_and_no_residual():
    unit = ConvUnit(2, 3, 5, ConvUnitParams(convs=2, last_conv_only=True))
    assert unit.layer_names == ("conv1", "norm1", "act1", "conv2")
    assert unit.residual is None and not unit.identity_residual


def test_a_transposed_unit_strides_up_and_its_node_sits_above_its_inputs(write_spec):
    model = _build(write_spec)
    node = model.ir.node("U")
    assert (node.level, node.in_level) == (0, 1)
    assert isinstance(model.U.conv1, nn.ConvTranspose2d)
    assert model.U.conv1.output_padding == (1, 1) and model.U.conv1.padding == (1, 1)
    x = torch.randn(2, 1, 16, 16)
    assert model.eval()(x).shape == (2, 4, 16, 16)
    # the up edge carries no resampling: the block itself goes up
    assert model.ir.edge("E", "U").resample is None


def test_identity_head_is_the_node_itself(write_spec):
    model = _build(write_spec).eval()
    x = torch.randn(1, 1, 8, 8)
    assert sum(p.numel() for p in model.get_submodule("head_U").parameters()) == 0
    torch.testing.assert_close(model(x), model.U(model.E(x)))


@pytest.mark.parametrize("text, code, where", [
    (SPEC.replace("out: classes", "out: 3"), "channel-mismatch", "heads.seg"),
    (SPEC.replace("transposed: true,", "transposed: true, residual: true,"), "bad-value",
     "nodes.U.block"),
    (SPEC.replace("act: prelu}", "act: prelu, order: NDN}"), "bad-value", "defaults.block"),
])
def test_positioned_errors(write_spec, text, code, where):
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    d = info.value.diagnostics[0]
    assert d.code == code and d.key.startswith(where) and d.span is not None


def test_preact_units_match_hand_written_layers():
    block = PreActBlock(2, 4, 6, PreActParams(units=2, norm="batch")).eval()
    u1, u2 = block.unit1, block.unit2
    assert isinstance(u1.shortcut, nn.Conv2d) and u2.shortcut is None
    x = torch.randn(2, 4, 8, 8)
    h = u1.conv2(F.relu(u1.norm2(u1.conv1(F.relu(u1.norm1(x)))))) + u1.shortcut(x)
    h = u2.conv2(F.relu(u2.norm2(u2.conv1(F.relu(u2.norm1(h)))))) + h
    torch.testing.assert_close(block(x), h)


def test_preact_units_per_node_and_group_norm_on_the_input_width(write_spec):
    text = SPEC.replace("E: {level: 1, width: 8, block: {stride: 2, convs: 2, residual: \"${res}\"}}",
                        "E: {level: 1, width: 8, block: {type: preact, units: \"2 + 1\","
                        " norm: {type: group, groups: 4}}}").replace(
        "stem: {from: input, to: E}", "stem: {from: input, to: E, conv: {width: 8}}")
    model = skipgraph.build(write_spec(text), seed=0)
    assert [n for n, _ in model.E.named_children()] == ["unit1", "unit2", "unit3"]
    # the first unit's first norm runs on the input width (6), not the node's (8)
    with pytest.raises(SpecError, match="group norm with 4 groups cannot split 6"):
        skipgraph.load_ir(write_spec(text.replace("conv: {width: 8}", "conv: {width: 6}")))
