"""Open vocabularies: head types, losses and resampling ops come from registries, so a new one
is a settings model + a builder + one registration, and a typo is a positioned error."""
from __future__ import annotations

from typing import ClassVar, Literal

import pytest
import torch
import torch.nn as nn

import skipgraph
from skipgraph.errors import SpecError
from skipgraph.heads import HEADS, HeadType, get_head, list_heads, register_head
from skipgraph.loss_registry import LOSSES, register_loss
from skipgraph.registry import RegistryError
from tests.conftest import TINY_SPEC


def _diagnostics(write_spec, text: str):
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    return info.value.diagnostics


def test_builtin_head_types_state_their_rules():
    assert [e.name for e in list_heads()] == ["cgm", "identity", "seg"]
    seg = get_head("seg").params(on="X[0,j]", out=3, resize="full")
    assert seg.pixelwise and seg.out_channels() == 3 and seg.full_size(2)
    cgm = get_head("cgm").params(type="cgm", on="E[i]")
    assert not cgm.pixelwise and cgm.out_channels() == 2 and cgm.loss == "cgm_bce"
    assert cgm.head_id("cls", "E[4]") == "cls@E[4]" and cgm.module_prefix("cls") == "cls"


def test_unknown_head_type_is_an_error_not_a_cgm(write_spec):
    text = TINY_SPEC.replace('act: sigmoid}', 'act: sigmoid}\n  g: {type: cgmm, on: "X[2,0]"}')
    [d] = _diagnostics(write_spec, text)
    assert d.code == "unknown-name" and "unknown head type `cgmm`" in d.message
    assert d.hint == "did you mean `cgm`?" and d.span.line == 13


def test_typo_in_a_head_key_names_the_head_types_fields(write_spec):
    [d] = _diagnostics(write_spec, TINY_SPEC.replace("act: sigmoid", "actt: sigmoid"))
    assert d.code == "unknown-key" and d.hint == "did you mean `act`?"


class OffsetHead(HeadType):
    """A user head type: a pixel-wise 1x1 conv to `out` channels plus a learned offset."""

    type: Literal["offset"]
    out: int = 2
    expressions: ClassVar[dict[str, int]] = {}

    def out_channels(self) -> int:
        return self.out

    def term(self, node: str, level: int) -> str:
        return f"offset({node})"


class OffsetModule(nn.Module):
    def __init__(self, dims: int, head):
        super().__init__()
        self.conv = nn.Conv2d(head.in_channels, head.out_channels, 1)
        self.offset = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.conv(x) + self.offset


class OffsetBuilder:
    module = OffsetModule

    @staticmethod
    def steps(dims, head):
        return []


@pytest.fixture
def registered():
    """Register entries for one test only (the JSON Schema lists whatever is registered)."""
    added = []

    def add(register, name, *args, **kwargs):
        entry = register(name, *args, **kwargs)
        added.append((register, name))
        return entry
    yield add
    for register, name in added:
        {register_head: HEADS, register_loss: LOSSES}[register].unregister(name)


def test_a_new_head_type_is_one_registration(write_spec, registered):
    registered(register_head, "offset", OffsetHead, OffsetBuilder)
    text = TINY_SPEC.replace(
        "act: sigmoid}", 'act: sigmoid}\n  aux: {type: offset, on: "X[0,1]", out: 3}')
    model = skipgraph.build(write_spec(text), seed=0).train()
    out = model(torch.randn(2, 1, 16, 16))
    assert out["X[0,1]"].shape == (2, 3, 16, 16) and "offset(X[0,1])" in str(model.ir)
    assert model.ir.heads["X[0,1]"].name == "head_X0_1"
    assert "head_X0_1.offset" in model.state_dict()


def test_registering_a_taken_name_needs_replace():
    with pytest.raises(RegistryError, match="already registered"):
        register_head("seg", OffsetHead, OffsetBuilder)


def _sum_loss(p, y):
    return (p - y).abs().sum()


def test_a_new_loss_is_one_registration(write_spec, registered):
    registered(register_loss, "l1_sum", _sum_loss, "sum of absolute errors")
    text = TINY_SPEC + "loss: {seg: l1_sum}\n"
    model = skipgraph.build(write_spec(text), seed=0).train()
    from skipgraph.losses import loss_for
    x, y = torch.randn(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert torch.equal(loss_for(model)(model(x), y), _sum_loss(model(x), y))


def test_loss_names_are_checked_with_did_you_mean(write_spec):
    [d] = _diagnostics(write_spec, TINY_SPEC + "loss: {seg: bce_dyce}\n")
    assert d.code == "unknown-name" and d.hint == "did you mean `bce_dice`?"
    [d] = _diagnostics(write_spec, TINY_SPEC + "loss: {seg: cgm_bce}\n")
    assert "cannot be used here" in d.message  # an image-level loss is not a `seg` loss
    assert "cgm_bce" in LOSSES and LOSSES.get("cgm_bce").params.input == "image"
