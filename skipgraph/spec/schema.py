"""The spec format as pydantic v2 models (``extra="forbid"``, frozen).

Values that may depend on params or index variables are kept as source text (``ExprText``) and
checked to parse here; they are evaluated during expansion. Block settings are validated against
the block registry (user blocks bring their own parameter model), not by a closed union.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag,
                      field_validator, model_validator)

from .expr import Expr, ExprError, Range

__all__ = [
    "SCHEMA_VERSION", "EDGE_KINDS", "LOSS_NAMES", "LossSpec", "ExprText", "RangeText", "ResampleSpec", "EdgeConvSpec",
    "NodeFamily", "EdgeFamily", "GateSpec", "CarrySpec", "LoopSpec", "SegHead", "CgmHead", "HeadFamily", "OutputSpec", "InputSpec", "Defaults", "Spec",
]

SCHEMA_VERSION = 1
EDGE_KINDS = ("input", "encoder", "up", "skip", "dense", "full_scale", "backward")


def _check_expr(value: int | float | str) -> int | float | str:
    if isinstance(value, str):
        try:
            Expr(value)
        except ExprError as exc:
            raise ValueError(f"invalid expression: {exc}") from None
    return value


def _check_range(value: int | str) -> int | str:
    try:
        Range.parse(value)
    except ExprError as exc:
        raise ValueError(f"invalid range: {exc}") from None
    return value


ExprText = Annotated[int | float | str, AfterValidator(_check_expr)]
RangeText = Annotated[int | str, AfterValidator(_check_range)]
Ranges = dict[str, RangeText]
NormText = str | dict[str, Any]   # a name, or {type: name, **kwargs}; checked by the block layer
ActText = str | dict[str, Any]


def _odd(kernel: int) -> int:
    if kernel % 2 == 0:
        raise ValueError(f"a size-preserving conv needs an odd kernel, not {kernel}")
    return kernel


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_identifiers(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if not name.isidentifier():
            raise ValueError(f"`{name}` is not a valid name (letters, digits and _ only)")
    return value


class ResampleSpec(_Model):
    """How an edge changes resolution. ``out`` sets the channels of a parametric resampler."""

    op: Literal["maxpool", "avgpool", "strided_conv", "transpose", "bilinear", "nearest",
                "upconv"]
    kernel: int = Field(2, ge=1, le=15)
    ceil: bool = False  # max/avg-pool ceil mode (UNet3+ full-scale skips)
    mode: Literal["nearest", "bilinear"] = "nearest"  # interpolation before `upconv`'s conv
    out: Literal["target", "source", "half"] | Annotated[int, Field(ge=1)] = "target"
    bias: bool = True
    norm: NormText = "none"
    act: ActText = "none"
    order: Literal["cna", "can"] = "cna"  # after the resampler: norm -> act, or act -> norm

    @model_validator(mode="after")
    def _odd_upconv_kernel(self) -> "ResampleSpec":
        if self.op == "upconv" and self.kernel % 2 == 0:
            raise ValueError(f"upconv's conv keeps the size only with an odd kernel, not "
                             f"{self.kernel} (set `kernel: 3`)")
        return self


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
    down: ResampleSpec | None = None
    up: ResampleSpec | None = None
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


class SegHead(_Model):
    """A segmentation head: ``kernel`` conv to ``out`` channels [-> resize] [-> act]."""

    type: Literal["seg"] = "seg"
    on: str
    if_: ExprText | None = Field(None, alias="if")
    out: ExprText = "classes"
    kernel: Annotated[int, Field(ge=1, le=15), AfterValidator(lambda k: _odd(k))] = 1
    bias: bool = True
    act: Literal["none", "sigmoid", "softmax"] = "none"
    resize: Literal["none", "full"] = "none"  # `full`: bilinear up-sampling to the input size
    # how a loss brings a full-size target to a low-resolution head (UNet#: max-pooled targets)
    target: Literal["maxpool", "avgpool", "nearest"] = "maxpool"


class CgmHead(_Model):
    """A classification-guided module: an image-level organ/no-organ decision that gates
    segmentation heads (``gates: all`` or the head on the ``same`` node) and has its own loss.

    ``variant: conv_max`` is UNet3+'s (dropout -> 1x1 conv -> global max pool -> sigmoid);
    ``pooled_mlp`` is UNet#'s ([avg-pool, max-pool] -> ``layers`` x (BN1d -> dropout -> linear),
    ReLU between them, ``hidden`` units -> 2-way softmax).
    """

    type: Literal["cgm"]
    on: str
    if_: ExprText | None = Field(None, alias="if")
    variant: Literal["conv_max", "pooled_mlp"] = "conv_max"
    layers: ExprText = 1
    hidden: ExprText = 256
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    gates: Literal["all", "same", "none"] = "all"


def _head_tag(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type", "seg")
    return getattr(value, "type", "seg")


HeadFamily = Annotated[Union[Annotated[SegHead, Tag("seg")], Annotated[CgmHead, Tag("cgm")]],
                       Discriminator(_head_tag)]


class OutputSpec(_Model):
    mode: Literal["ensemble", "select"] = "select"
    head: str | None = None  # for `select`; default: the last segmentation head
    heads: list[str] | None = None  # for `ensemble`; default: every full-size segmentation head


LOSS_NAMES = ("bce", "dice", "focal", "iou", "lovasz_hinge", "bce_dice", "focal_dice_lovasz",
              "focal_msssim_iou", "ce", "dice_ce")


class LossSpec(_Model):
    """Training loss: ``seg`` per segmentation head, combined over heads (see skipgraph.losses)."""

    seg: Literal[LOSS_NAMES] = "bce_dice"  # type: ignore[valid-type]
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
    down: ResampleSpec = ResampleSpec(op="maxpool")
    up: ResampleSpec = ResampleSpec(op="transpose", kernel=2)


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
