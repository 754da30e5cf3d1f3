"""The spec format as pydantic v2 models (``extra="forbid"``, frozen).

Values that may depend on params or index variables are kept as source text (``ExprText``) and
checked to parse here; they are evaluated during expansion. Block settings are validated against
the block registry (user blocks bring their own parameter model), not by a closed union.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from ..registry import RegisteredModel, RegisteredName
from ..resampling import ResampleOp, resample_settings
from .types import ExprText, RangeText, SpecModel, check_identifiers

__all__ = [
    "SCHEMA_VERSION", "EDGE_KINDS", "LossSpec", "ExprText", "RangeText", "ResampleSpec", "EdgeConvSpec",
    "NodeFamily", "EdgeFamily", "GateSpec", "CarrySpec", "LoopSpec", "HeadFamily", "OutputSpec", "InputSpec", "Defaults", "Spec",
]

SCHEMA_VERSION = 1
EDGE_KINDS = ("input", "encoder", "up", "skip", "dense", "full_scale", "backward")
Ranges = dict[str, RangeText]
_Model = SpecModel
_check_identifiers = check_identifiers


# `op` names a registered resampling op (skipgraph.resampling), whose own settings model then
# checks the mapping (upconv needs an odd kernel)
class ResampleSpec(ResampleOp):
    """How an edge changes resolution. ``out`` sets the channels of a parametric resampler."""


# a `down:`/`up:` mapping, validated by (and turned into) its op's settings model
ResampleField = Annotated[ResampleSpec, AfterValidator(resample_settings)]


class EdgeConvSpec(_Model):
    """A block on an edge: after resampling (``at: target``, UNet3+/UNet# full-scale convs) or
    before it (``at: source``, BiO-Net's DOWN = conv then max-pool)."""

    width: ExprText
    block: dict[str, Any] = Field(default_factory=dict)
    at: Literal["target", "source"] = "target"


class GateSpec(_Model):
    """An attention gate on a skip edge, gated by the value of another edge family into the same
    node (Attention U-Net: the up-sampled decoder map)."""

    by: str
    inter: ExprText = "half"  # F_int: a number, or `half` of the skip's channels


class NodeFamily(_Model):
    for_: Annotated[Ranges, AfterValidator(_check_identifiers)] = Field(
        default_factory=dict, alias="for")
    if_: ExprText | None = Field(None, alias="if")
    level: ExprText | None = None   # default: the first index variable
    column: ExprText | None = None  # default: the second index variable (for drawing)
    width: ExprText
    block: dict[str, Any] = Field(default_factory=dict)
    merge: Literal["concat", "sum"] = "concat"
    order: list[str] | None = None  # edge families in concat order (default: as in `edges:`)


class EdgeFamily(_Model):
    from_: str = Field(alias="from")
    to: str
    for_: Annotated[Ranges, AfterValidator(_check_identifiers)] = Field(
        default_factory=dict, alias="for")
    if_: ExprText | None = Field(None, alias="if")
    kind: Literal[EDGE_KINDS] | None = None  # type: ignore[valid-type]
    down: ResampleField | None = None
    up: ResampleField | None = None
    conv: EdgeConvSpec | None = None
    gate: GateSpec | None = None
    # for an edge leaving a loop: the last iteration's value, or every iteration's (BiO-Net INT)
    collect: Literal["last", "all"] = "last"


class CarrySpec(_Model):
    """A loop-carried edge (delay 1): ``from`` at iteration k feeds ``to`` at iteration k + 1.
    At the first iteration the slot holds ``init``: a copy of the node's first other input
    (``duplicate``, BiO-Net's code) or zeros."""

    from_: str = Field(alias="from")
    to: str
    for_: Annotated[Ranges, AfterValidator(_check_identifiers)] = Field(
        default_factory=dict, alias="for")
    if_: ExprText | None = Field(None, alias="if")
    init: Literal["duplicate", "zeros"] = "duplicate"


class LoopSpec(_Model):
    """Node families run ``times`` times with shared weights, unrolled at build time.
    ``norm: per_step`` gives every iteration its own normalisation layers (BiO-Net: "no batch
    normalization layer is reused"); ``shared`` reuses them too."""

    nodes: list[str] = Field(min_length=1)
    times: ExprText
    norm: Literal["per_step", "shared"] = "per_step"
    carry: dict[str, CarrySpec] = Field(default_factory=dict)


# a head family: the settings model of its registered head type (skipgraph.heads)
HeadFamily = Annotated[Any, RegisteredModel("skipgraph.heads:HEADS", default="seg")]


def __getattr__(name: str) -> Any:
    """``SegHead`` / ``CgmHead`` moved to :mod:`skipgraph.heads.builtin` (imported lazily here:
    the head registry imports this package's field types)."""
    if name in ("SegHead", "CgmHead"):
        from ..heads import builtin
        return getattr(builtin, name)
    raise AttributeError(name)


class OutputSpec(_Model):
    mode: Literal["ensemble", "select"] = "select"
    head: str | None = None  # for `select`; default: the last segmentation head
    heads: list[str] | None = None  # for `ensemble`; default: every full-size segmentation head


def _pixel_loss(name: str) -> bool:
    from ..loss_registry import LOSSES
    return LOSSES.get(name).params.input == "pixel"


def __dir__() -> list[str]:
    return sorted(list(globals()) + ["SegHead", "CgmHead"])


class LossSpec(_Model):
    """Training loss: ``seg`` per segmentation head, combined over heads (see skipgraph.losses)."""

    # a pixel-wise loss registered in skipgraph.loss_registry
    seg: Annotated[str, RegisteredName("skipgraph.loss_registry:LOSSES", where=_pixel_loss)] = \
        "bce_dice"
    combine: Literal["sum", "mean"] = "sum"
    weights: list[float] | None = None    # per segmentation head (default: all 1)
    cgm_weight: float = 1.0


class InputSpec(_Model):
    channels: ExprText = "in_channels"
    # sizes the total stride does not divide: error (false) or pad to a multiple and crop the
    # outputs back (true)
    pad: bool = False


class Defaults(_Model):
    block: dict[str, Any] = Field(default_factory=lambda: {"type": "conv"})
    down: ResampleField = ResampleSpec(op="maxpool")
    up: ResampleField = ResampleSpec(op="transpose", kernel=2)


class Spec(_Model):
    skipgraph: Literal[1] = Field(description="schema version")
    name: str
    description: str = ""
    cite: str = ""
    extends: str | None = None
    params: dict[str, int | float | bool | str] = Field(default_factory=dict)
    dims: Literal[2, 3] = 2
    input: InputSpec = InputSpec()
    defaults: Defaults = Defaults()
    nodes: Annotated[dict[str, NodeFamily], AfterValidator(_check_identifiers)] = Field(
        min_length=1)
    edges: Annotated[dict[str, EdgeFamily], AfterValidator(_check_identifiers)] = Field(
        min_length=1)
    heads: Annotated[dict[str, HeadFamily], AfterValidator(_check_identifiers)] = Field(
        min_length=1)
    output: OutputSpec = OutputSpec()
    loss: LossSpec = LossSpec()
    loops: Annotated[dict[str, LoopSpec], AfterValidator(_check_identifiers)] = Field(
        default_factory=dict)

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_identifiers(value)
