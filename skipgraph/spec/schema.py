"""The spec format as pydantic v2 models (``extra="forbid"``, frozen).

Values that may depend on params or index variables are kept as source text (``ExprText``) and
checked to parse here; they are evaluated during expansion. Block settings are validated against
the block registry (user blocks bring their own parameter model), not by a closed union: the
loader merges each family's `block:` over `defaults.block` first, so the field holds the block
type's settings model, typed from then on.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..registry import RegisteredModel, RegisteredName
from ..resampling import ResampleOp
from ..fields.axes import PerAxis
from ..fields.types import DropoutRate, ExprText, RangeText, SpecModel, check_identifiers
from .backbone import BackboneSpec
from .limits import ParamLimit

__all__ = [
    "SCHEMA_VERSION", "EDGE_KINDS", "LossSpec", "ExprText", "RangeText", "ResampleSpec", "EdgeConvSpec",
    "EdgeDropoutSpec", "BlockField", "NodeFamily", "EdgeFamily", "GateSpec", "CarrySpec", "LoopSpec", "HeadFamily", "OutputSpec", "InputSpec", "Defaults", "Spec",
]

SCHEMA_VERSION = 1
EDGE_KINDS = ("input", "encoder", "up", "skip", "dense", "full_scale", "backward")
Ranges = dict[str, RangeText]
_Model = SpecModel
_check_identifiers = check_identifiers


# `op` names a registered resampling op (skipgraph.resampling), whose own settings model then
# checks the mapping (its own settings such as `padding` or `pad_pool`, an odd kernel for
# upconv, settings the op does not use)
ResampleSpec = ResampleOp

# a `down:`/`up:` mapping, validated by (and turned into) its op's settings model
ResampleField = Annotated[Any, RegisteredModel("skipgraph.resampling:RESAMPLE", key="op")]

# a block mapping (merged over `defaults.block` by the loader), validated by (and turned into)
# its block type's settings model (skipgraph.blocks.registry)
# (the JSON Schema leaves out the block types only expansion makes: a backbone's stages)
_BLOCK = RegisteredModel("skipgraph.blocks.registry:BLOCKS", key="type", default="conv",
                         listed=lambda model: model.written)
BlockField = Annotated[Any, _BLOCK]


class EdgeConvSpec(_Model):
    """A block on an edge: after resampling (``at: target``, UNet3+/UNet# full-scale convs) or
    before it (``at: source``, BiO-Net's DOWN = conv then max-pool)."""

    width: ExprText
    """Output channels of the block (an expression over params and index variables)."""
    block: BlockField = None
    """Block settings, merged over `defaults.block` (`type` names a registered block);
    default: `defaults.block`."""
    at: Literal["target", "source"] = "target"
    """Run the block after the resampling (`target`) or before it (`source`)."""


class EdgeDropoutSpec(_Model):
    """Dropout on an edge's value, active in training only: element-wise (torch's `Dropout`)
    or whole channels (`spatial: true`: `Dropout2d` / `Dropout3d`, Tompson et al. 2015).
    Written as a mapping or as the rate alone (`dropout: 0.5`). MONAI's VNet drops the skip
    input and the up-sampled input of its up transitions this way."""

    rate: DropoutRate
    """Probability of zeroing a value (or a channel), from 0 (no dropout layer) to below 1; the
    rest is scaled by 1 / (1 - rate). An expression over params and index variables is
    evaluated per edge (`"p if i >= 2 else 0.5"`)."""
    spatial: bool = False
    """Drop whole channels (every position of a channel of one sample together) instead of
    single values."""
    at: Literal["target", "source"] = "target"
    """Where on the edge: on the value the destination receives (`target`, after any
    resampling and edge conv) or on the source's value before them (`source`: MONAI VNet's
    dropout before its transposed conv)."""

    @model_validator(mode="before")
    @classmethod
    def _rate_alone(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {"rate": value}


class GateSpec(_Model):
    """An attention gate on a skip edge, gated by the value of another edge family into the same
    node (Attention U-Net: the up-sampled decoder map)."""

    by: str
    """The edge family into the same node whose value drives the gate (Attention U-Net: `up`)."""
    inter: ExprText = "half"
    """F_int, the gate's intermediate channels: a number, or `half` of the skip's channels."""


_FOR = ("Index variables and their inclusive ranges, `{i: 0..depth, j: 0..depth-i}`; later "
        "ranges may use earlier variables; `a..b by s` counts by s (`j-1..0 by -1` counts "
        "down). In an edge family, the order counted is the order of its sources in a "
        "node's concat.")
_IF = "A condition over params and index variables; the item exists only where it holds."


class NodeFamily(_Model):
    """Nodes ``NAME[i, j, ...]``, one per combination of the index variables where ``if`` holds,
    or (``backbone:``) one per feature level of a timm encoder, whose levels and widths come
    from the encoder itself."""

    for_: Annotated[Ranges, AfterValidator(_check_identifiers)] = Field(
        default_factory=dict, alias="for", description=_FOR)
    if_: ExprText | None = Field(None, alias="if", description=_IF)
    level: ExprText | None = None
    """Resolution level, 1/2^level of the input per side; default: the first index variable."""
    column: ExprText | None = None
    """Column in the drawing; default: the second index variable."""
    row: ExprText | None = None
    """Vertical offset in the drawing, in half levels up (negative: down), for parallel
    branches at one resolution (ASPP's, a pooling pyramid's); drawing only; default 0."""
    width: ExprText | None = None
    """Output channels of each node (an expression, e.g. `base * 2**i`); required unless
    `backbone:`."""
    block: BlockField = None
    """Block settings merged over `defaults.block` (`type` names a registered block);
    default: `defaults.block`."""
    merge: Literal["concat", "sum", "product"] = "concat"
    """How a node combines its inputs: channel concatenation, element-wise sum (equal widths),
    or element-wise product (a gate: equal widths, or 1-channel inputs broadcast over the
    others' channels, as PAN's attention maps)."""
    order: list[str] | None = None
    """Edge families in concat order (it fixes the weight layout); default: as written under
    `edges:`."""
    backbone: BackboneSpec | None = None
    """A timm encoder (`{name: resnet34, weights: none, trainable: true}`): one node per
    feature level it reports (needs the `backbones` extra)."""

    @model_validator(mode="after")
    def _width_or_backbone(self) -> "NodeFamily":
        if self.backbone is None:
            if self.width is None:
                raise ValueError("a node family needs `width:` (or `backbone:`)")
            return self
        given = [k for k, v in (("for", self.for_), ("if", self.if_), ("level", self.level),
                                ("column", self.column), ("row", self.row),
                                ("width", self.width),
                                ("block", self.block), ("order", self.order)) if v]
        if given:
            raise ValueError(f"a backbone family takes its nodes, levels and widths from the "
                             f"encoder; drop {', '.join(f'`{k}`' for k in given)}")
        return self


class EdgeFamily(_Model):
    """Edges made wherever the ``from`` node exists, for every node ``to`` matches."""

    from_: str = Field(alias="from", description="Source pattern, e.g. `X[i+1,j-1]` or `input`.")
    to: str = Field(description="Destination pattern, matched against every node of its family "
                    "(binding its index variables), e.g. `X[i,j]`.")
    for_: Annotated[Ranges, AfterValidator(_check_identifiers)] = Field(
        default_factory=dict, alias="for", description=_FOR)
    if_: ExprText | None = Field(None, alias="if", description=_IF)
    kind: Literal[EDGE_KINDS] | None = None  # type: ignore[valid-type]
    """How the edge is drawn; inferred from the level change when absent."""
    down: ResampleField | None = None
    """Down-sampling of this family instead of `defaults.down`."""
    up: ResampleField | None = None
    """Up-sampling of this family instead of `defaults.up`."""
    conv: EdgeConvSpec | None = None
    """A block on the edge (UNet3+/UNet# full-scale convs, BiO-Net's DOWN)."""
    gate: GateSpec | None = None
    """An attention gate on the edge (Attention U-Net)."""
    dropout: EdgeDropoutSpec | None = None
    """Dropout on the edge's value in training: the rate alone (`0.5`) or `{rate, spatial,
    at}` (whole channels; before or after the edge's resampling)."""
    collect: Literal["last", "all"] = "last"
    """For an edge leaving a loop: the last iteration's value, or every iteration's (BiO-Net's
    INT)."""


class CarrySpec(_Model):
    """A loop-carried edge (delay 1): ``from`` at iteration k feeds ``to`` at iteration k + 1.
    At the first iteration the slot holds ``init``: a copy of the node's first other input
    (``duplicate``, BiO-Net's code) or zeros."""

    from_: str = Field(alias="from", description="Source pattern (its value at iteration k).")
    to: str = Field(description="Destination pattern (fed at iteration k + 1).")
    for_: Annotated[Ranges, AfterValidator(_check_identifiers)] = Field(
        default_factory=dict, alias="for", description=_FOR)
    if_: ExprText | None = Field(None, alias="if", description=_IF)
    init: Literal["duplicate", "zeros"] = "duplicate"
    """What the slot holds at the first iteration: a copy of the node's first other input
    (BiO-Net's code), or zeros."""


class LoopSpec(_Model):
    """Node families run ``times`` times with shared weights, unrolled at build time.
    ``norm: per_step`` gives every iteration its own normalisation layers (BiO-Net: "no batch
    normalization layer is reused"); ``shared`` reuses them too."""

    nodes: list[str] = Field(min_length=1)
    """Node families of the loop body."""
    times: ExprText
    """Number of iterations (at most 64)."""
    norm: Literal["per_step", "shared"] = "per_step"
    """Normalisation layers: a set per iteration (`per_step`, BiO-Net) or shared like the convs."""
    carry: dict[str, CarrySpec] = Field(default_factory=dict)
    """Loop-carried edge families (delay 1), by name."""


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
    """What eval mode returns (training mode returns every head)."""

    mode: Literal["ensemble", "select", "list"] = "select"
    """One head (`select`), the mean of several (`ensemble`, UNet++'s deep supervision), or a
    list of several, one tensor per head (`list`: MONAI's BasicUNetPlusPlus and nnU-Net's
    deeply supervised networks return their heads in eval mode too)."""
    head: str | None = None
    """The head `select` returns, or in `list` mode the main head: the one `evaluate`, sliding
    windows and metrics score; default: the last full-size segmentation head."""
    heads: list[str] | None = None
    """The heads `ensemble` averages, or that `list` returns in the order written; default:
    every full-size segmentation head (`ensemble`), every segmentation head in the order the
    heads are declared and expanded (`list`)."""


def _pixel_loss(name: str) -> bool:
    from ..loss_registry import LOSSES
    return LOSSES.get(name).params.input == "pixel"


def __dir__() -> list[str]:
    return sorted(list(globals()) + ["SegHead", "CgmHead"])


class LossSpec(_Model):
    """Training loss: ``seg`` per segmentation head, combined over heads (see skipgraph.losses)."""

    seg: Annotated[str, RegisteredName("skipgraph.loss_registry:LOSSES", where=_pixel_loss)] = \
        "bce_dice"
    """Loss of each segmentation head, a pixel-wise loss registered in skipgraph.loss_registry
    (bce_dice, focal_dice_lovasz, focal_msssim_iou, bce, dice, focal, iou, lovasz_hinge)."""
    combine: Literal["sum", "mean"] = "sum"
    """How the heads' losses combine: weighted sum (UNet++ Eq. 2) or mean (UNet#)."""
    weights: list[float] | None = None
    """Weight of each segmentation head's loss, in head order; default: all 1."""
    cgm_weight: float = 1.0
    """Weight of each classification-guided module's BCE loss."""


class InputSpec(_Model):
    """The network input ``(N, channels, *spatial)``."""

    channels: ExprText = "in_channels"
    """Input channels C; forward() checks them."""
    pad: bool = False
    """Pad inputs whose size the total stride does not divide, and crop the outputs back;
    false: such inputs are an error."""


def RESAMPLE_DEFAULT(op: str, settings: dict[str, Any]) -> ResampleOp:
    from ..resampling import RESAMPLE
    return RESAMPLE.get(op).params(op=op, **settings)


class Defaults(_Model):
    """What every node and resampling edge uses unless its family says otherwise."""

    block: BlockField = Field(default_factory=lambda: _BLOCK.validate({}))
    """The block of every node (`type` names a registered block, `skipgraph blocks`; the rest
    are its settings, e.g. convs, kernel, bias, norm, act, order, dropout for `conv`)."""
    down: ResampleField = Field(default_factory=lambda: RESAMPLE_DEFAULT("maxpool", {}))
    """Resampling of every edge that goes down in level."""
    up: ResampleField = Field(
        default_factory=lambda: RESAMPLE_DEFAULT("transpose", {"kernel": 2}))
    """Resampling of every edge that goes up in level."""


class Spec(_Model):
    """A skipgraph spec: an encoder-decoder network as node families, edge families and heads."""

    skipgraph: Literal[1] = Field(description="Version of the spec format (1).")
    name: str
    """The architecture's name (summaries, drawings, error messages)."""
    description: str = ""
    """One line on what the architecture is (`skipgraph zoo` lists it)."""
    cite: str = ""
    """The paper or code the spec follows."""
    extends: str | None = None
    """A spec this one is merged over: a file relative to this one, or a spec name such as
    `unet_pp` ($SKIPGRAPH_SPEC_PATH, then the zoo). A `null` value here deletes the base's key."""
    params: dict[str, int | float | bool | str | list[Any]] = Field(default_factory=dict)
    """Named defaults, overridden by `--set NAME=VALUE` or `build(..., NAME=VALUE)` with a value
    of the same type; usable in expressions and `${...}`. A list (`kernels: []`, set as
    `--set kernels=[[1,3,3],3]`) is read by index in expressions: `kernels[i]`."""
    limits: dict[str, ParamLimit] = Field(default_factory=dict)
    """Allowed values per param (`depth: {min: 1}`), checked after `--set`: a value outside
    is a `bad-value` error naming the param and its range."""
    dims: Literal[2, 3] = 2
    """Spatial dimensions: 2 (images, (N, C, H, W)) or 3 (volumes, (N, C, D, H, W))."""
    strides: list[PerAxis] = Field(default_factory=list)
    """Resampling factor between neighbouring levels: entry l - 1 takes level l - 1 to level
    l, one int (every axis) or one per spatial axis (`[1, 2, 2]`: depth kept, height and width
    halved; nnU-Net's anisotropic 3D plans). Levels past the list: 2 on every axis (the
    default grid, 1/2^level per side). An edge resamples by the product of the factors between
    its levels."""
    input: InputSpec = InputSpec()
    """The network input: channels, and whether sizes the stride does not divide are padded."""
    defaults: Defaults = Defaults()
    """The block and resampling ops used unless a family says otherwise."""
    nodes: Annotated[dict[str, NodeFamily], AfterValidator(_check_identifiers)] = Field(
        min_length=1)
    """Node families by name (`X: {for: {i: 0..depth, j: 0..depth-i}, width: ...}`)."""
    edges: Annotated[dict[str, EdgeFamily], AfterValidator(_check_identifiers)] = Field(
        min_length=1)
    """Edge families by name; their written order is the concat order at each node."""
    heads: Annotated[dict[str, HeadFamily], AfterValidator(_check_identifiers)] = Field(
        min_length=1)
    """Head families by name (`type: seg` by default, or `cgm`, or a registered head type)."""
    output: OutputSpec = OutputSpec()
    """What eval mode returns: one head, the mean of several, or a list of several."""
    loss: LossSpec = LossSpec()
    """The training loss (skipgraph.losses.loss_for builds it)."""
    loops: Annotated[dict[str, LoopSpec], AfterValidator(_check_identifiers)] = Field(
        default_factory=dict)
    """Loops by name: node families unrolled `times` times with shared weights (BiO-Net)."""

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_identifiers(value)
