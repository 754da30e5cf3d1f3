"""Parameter models of the built-in blocks, registered by name (torch-free)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..spec.axes import KernelSize, volume
from ..spec.types import ExprText, KernelExpr
from .options import ACT_NAMES, resolve_norm, split_option
from .registry import BlockParams, register_block

__all__ = ["ConvParams", "RecurrentParams", "ResidualParams", "ResBlockParams", "IdentityParams",
           "check_norm", "check_act"]


def check_norm(value: Any) -> Any:
    resolve_norm(value)
    return value


def check_act(value: Any) -> Any:
    split_option(value, ACT_NAMES, "activation")
    return value


def check_odd_kernel(kernel: KernelSize | str) -> KernelSize | str:
    if isinstance(kernel, str):
        return kernel  # an expression (`kernels[i]`): checked per node once evaluated
    if any(k % 2 == 0 for k in ([kernel] if isinstance(kernel, int) else kernel)):
        shown = kernel if isinstance(kernel, int) else list(kernel)
        raise ValueError(f"a size-preserving conv needs an odd kernel, not {shown}")
    return kernel


MAX_STRIDE = 64


def check_stride(stride: Any) -> Any:
    if isinstance(stride, int) and (stride < 1 or stride > MAX_STRIDE or stride & (stride - 1)):
        raise ValueError(f"`stride` must be a power of 2 from 1 to {MAX_STRIDE} (the node sits "
                         f"log2(stride) levels below its inputs), not {stride}")
    return stride


def check_positive(value: Any, name: str, limit: int) -> Any:
    if isinstance(value, int) and not 1 <= value <= limit:
        raise ValueError(f"`{name}` must be from 1 to {limit}, not {value}")
    return value


class StridedStack(BlockParams):
    """Settings shared by the blocks that are a stack of convs: the first conv's ``stride`` and
    the widths of the convs before the last (``widths``); both may be expressions over params,
    index variables and ``width``, evaluated per node."""

    stride: ExprText = 1
    """Stride of the block's first conv (1, 2, 4, ...): the node sits at the level of its output,
    log2(stride) levels below its inputs, which arrive without resampling (ResNet's 7x7
    stride-2 stem, the first unit of a ResNet stage). An expression such as `1 if i == 2 else 2`
    is evaluated per node."""
    widths: list[ExprText] | None = None
    """Output channels of each conv but the last, which gives the node's `width` (one per conv
    of a unit, minus one); numbers or expressions over params, index variables and `width`,
    e.g. `[width // 2]` for a double conv whose middle width is half. Default: all `width`."""

    expressions = {"stride": 1, "widths": 1}
    _grid_stride: Any = PrivateAttr(default=None)  # per axis on an anisotropic grid (on_grid)

    _stride = field_validator("stride")(classmethod(lambda cls, v: check_stride(v)))

    @field_validator("widths")
    @classmethod
    def _widths(cls, value: list[Any] | None) -> list[Any] | None:
        for w in value or []:
            check_positive(w, "widths", 1 << 20)
        return value

    @model_validator(mode="after")
    def _widths_per_conv(self) -> "StridedStack":
        convs = getattr(self, "convs", 1)
        if self.widths is not None and len(self.widths) != convs - 1:
            raise ValueError(f"`widths` lists {len(self.widths)} width(s) for {convs} conv(s); "
                             f"give convs - 1 = {convs - 1} (the last conv outputs the node's "
                             "`width`)")
        return self

    def levels_down(self) -> int:
        return self.stride.bit_length() - 1 if isinstance(self.stride, int) else 0

    def conv_stride(self) -> Any:
        """The first conv's stride: ``stride`` on every axis, or on an anisotropic grid the
        grid's per-axis factor over the levels the block goes down (set by :meth:`on_grid`)."""
        return self._grid_stride if self._grid_stride is not None else self.stride

    def on_grid(self, factor: Any) -> "StridedStack":
        """A copy whose first conv strides by ``factor`` (one int per axis): the factor from
        the node's input level to its level on a grid with ``strides:``."""
        copy = self.model_copy()
        copy._grid_stride = factor
        return copy

    def note(self) -> str:
        return f"/{self.stride}" if self.stride != 1 else ""

    def conv_widths(self, width: int) -> list[int]:
        """Output channels of every conv of a unit (the expressions already evaluated)."""
        inner = list(self.widths or [width] * (getattr(self, "convs", 1) - 1))
        if any(not isinstance(w, int) for w in inner):
            raise ValueError(f"`widths` {inner} still holds expressions; they are evaluated "
                             "when the spec is expanded")
        return inner + [width]


class ConvParams(StridedStack):
    """A stack of ``convs`` convolutions, each followed by norm and activation.

    ``order`` is ``cna`` (conv -> norm -> act, the usual) or ``can`` (conv -> act -> norm, BiO-Net).
    Dropout, when set, follows each conv unit. Submodules are named ``conv1, norm1, act1, ...``.
    The first conv strides by ``stride``; ``widths`` sets the channels of all convs but the last.
    """

    type: Literal["conv"] = "conv"
    convs: int = Field(2, ge=1, le=64)
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = True
    norm: str | dict[str, Any] = "none"
    act: str | dict[str, Any] = "relu"
    order: Literal["cna", "can"] = "cna"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))


class RecurrentParams(BlockParams):
    """RU-Net / R2U-Net units: [1x1 projection] -> ``layers`` RCLs of ``steps`` recurrent steps
    [+ residual]. ``tied``: one conv for W_f and W_r (public code) or two (the paper's
    equation); ``norm_per_step``: a norm per step or one shared (public code)."""

    type: Literal["recurrent"] = "recurrent"
    steps: int = Field(2, ge=0, le=64)
    layers: int = Field(2, ge=1, le=16)
    residual: bool = True
    tied: bool = True
    projection: Literal["first", "shortcut", "none"] = "first"
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = True
    norm: str | dict[str, Any] = "batch"
    act: str | dict[str, Any] = "relu"
    norm_per_step: bool = False

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))


class ResidualParams(BlockParams):
    """ResU-Net units: ``convs`` x (conv -> norm -> act) plus a residual through a projection."""

    type: Literal["residual"] = "residual"
    convs: int = Field(2, ge=1, le=16)
    projection: Literal["first", "shortcut"] = "first"
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = True
    norm: str | dict[str, Any] = "batch"
    act: str | dict[str, Any] = "relu"

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))


class ResBlockParams(StridedStack):
    """``units`` residual units in a row (a ResNet stage): each is ``convs`` x (conv -> norm ->
    act) whose last activation follows the sum with the shortcut (``post_act``, ResNet's
    BasicBlock ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``, nnU-Net's BasicBlockD).

    The first unit takes the block's ``stride`` and input channels; its shortcut is the identity
    where the shape is kept, else ``shortcut: conv`` (a 1x1 conv with the stride, then norm:
    ResNet) or ``pool_conv`` (an avg-pool by the stride, then a 1x1 conv + norm where the
    channels change: ResNet-D, nnU-Net's residual encoder). The shortcut conv has a bias only
    without a norm. Submodules: ``unit1.conv1, unit1.norm1, unit1.act1, ..., unit1.shortcut,
    unit1.act``."""

    type: Literal["resblock"] = "resblock"
    units: ExprText = 1
    """Residual units stacked in the node (ResNet-34's stages: 3, 4, 6, 3); an expression over
    params and index variables is evaluated per node."""
    convs: int = Field(2, ge=1, le=16)
    """Convs per unit (ResNet's BasicBlock: 2)."""
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = False
    norm: str | dict[str, Any] = "batch"
    act: str | dict[str, Any] = "relu"
    post_act: bool = True
    """Where a unit's last activation goes: after the sum (`true`: `act(norm(conv(..)) +
    shortcut)`, ResNet) or after the last conv, before the sum (`false`, as ResU-Net)."""
    shortcut: Literal["conv", "pool_conv"] = "conv"
    """How the first unit's shortcut matches a changed shape: `conv` (strided 1x1 conv + norm,
    ResNet) or `pool_conv` (avg-pool by the stride, then 1x1 conv + norm if the channels
    change: ResNet-D, nnU-Net's BasicBlockD)."""

    expressions = {"stride": 1, "widths": 1, "units": 1}

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))
    _units = field_validator("units")(classmethod(lambda cls, v: check_positive(v, "units", 64)))

    def note(self) -> str:
        return " ".join(t for t in (f"x{self.units}", super().note()) if t)

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        units = self.units if isinstance(self.units, int) else 1
        per_unit = volume(self.kernel, dims) * self.convs * out_channels * out_channels
        return per_unit * units + (volume(self.kernel, dims) + 1) * in_channels * out_channels


class IdentityParams(BlockParams):
    """No conv: the merged input, then an optional ``norm`` and ``act`` (an activation-only or
    norm-act node). It keeps its input channels, so the node's ``width`` must equal them."""

    type: Literal["identity"] = "identity"
    norm: str | dict[str, Any] = "none"
    act: str | dict[str, Any] = "none"

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))

    def out_channels(self, in_channels: int, width: int) -> int:
        if width != in_channels:
            raise ValueError(f"an identity block keeps its {in_channels} input channels, but the "
                             f"node's width is {width}")
        return width

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        return 2 * out_channels


register_block("conv", ConvParams, "skipgraph.blocks.conv:ConvStack",
               "convs x (conv -> norm -> act [-> dropout]), the U-Net family's H(.)")
register_block("recurrent", RecurrentParams, "skipgraph.blocks.recurrent:RecurrentUnit",
               "[1x1 projection] -> RCLs (steps t) [+ residual]: RU-Net / R2U-Net units")
register_block("residual", ResidualParams, "skipgraph.blocks.recurrent:ResidualUnit",
               "convs x (conv -> norm -> act) + projected residual: ResU-Net units")
register_block("resblock", ResBlockParams, "skipgraph.blocks.resnet:ResBlock",
               "units x (convs x conv-norm-act, + shortcut, act after the sum): ResNet stages")
register_block("identity", IdentityParams, "skipgraph.blocks.resnet:IdentityBlock",
               "no conv: [norm] [act] on the merged input (keeps its channels)")

from . import backbone_params  # noqa: E402,F401  (registers `backbone`, the stage of a timm encoder)
from . import transformer_params  # noqa: E402,F401  (registers `patch_embed`, `transformer`: ViT blocks)
from . import swin_params  # noqa: E402,F401  (registers `swin`, `patch_merge`: Swin blocks)
