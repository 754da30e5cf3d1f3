"""Parameter models of the built-in blocks, registered by name (torch-free)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..fields.axes import KernelSize, volume
from ..fields.types import ExprText, KernelExpr
from ..fields.types import ActSetting, NormSetting
from .registry import BlockParams, register_block

__all__ = ["ConvParams", "RecurrentParams", "ResidualParams", "ResBlockParams", "IdentityParams"]


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

    dilation: ExprText = 1
    """Dilation of every conv of the block (atrous convolution, DeepLab; padding grows with
    it, so sizes are kept): 1 is a plain conv; an expression such as `2 if i == 5 else 1`
    is evaluated per node (ResNet's last stage dilated instead of strided)."""

    expressions = {"stride": 1, "widths": 1, "dilation": 1}
    _grid_stride: Any = PrivateAttr(default=None)  # per axis on an anisotropic grid (on_grid)

    _stride = field_validator("stride")(classmethod(lambda cls, v: check_stride(v)))
    _dilation = field_validator("dilation")(classmethod(
        lambda cls, v: check_positive(v, "dilation", MAX_STRIDE)))

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
        return " ".join(t for t in (f"/{self.stride}" if self.stride != 1 else "",
                                    f"d{self.dilation}" if self.dilation != 1 else "") if t)

    def conv_widths(self, width: int) -> list[int]:
        """Output channels of every conv of a unit (the expressions already evaluated)."""
        inner = list(self.widths or [width] * (getattr(self, "convs", 1) - 1))
        if any(not isinstance(w, int) for w in inner):
            raise ValueError(f"`widths` {inner} still holds expressions; they are evaluated "
                             "when the spec is expanded")
        return inner + [width]

    def stack_params(self, dims: int, in_channels: int, out_channels: int,
                     layers_after_last: bool = True, norm: Any = None, act: Any = None) -> int:
        """Parameters of the block's chain of convs (``conv_widths``), each with its bias
        (``bias``) and the learnable parts of its norm and activation; ``layers_after_last``
        False leaves the last conv's norm and act out; ``norm`` / ``act`` replace the block's
        settings (``"none"``: a unit that leaves it out)."""
        from .options import layer_params
        kernel, bias = volume(getattr(self, "kernel", 3), dims), getattr(self, "bias", False)
        norm = getattr(self, "norm", "none") if norm is None else norm
        act = getattr(self, "act", "none") if act is None else act
        widths = self.conv_widths(out_channels)
        total, c_in = 0, in_channels
        for k, c_out in enumerate(widths, start=1):
            total += kernel * c_in * c_out + (c_out if bias else 0)
            if layers_after_last or k < len(widths):
                total += layer_params(norm, act, c_out)
            c_in = c_out
        return total


class ConvParams(StridedStack):
    """A stack of ``convs`` convolutions, each followed by norm and activation.

    ``order`` is ``cna`` (conv -> norm -> act, the usual) or ``can`` (conv -> act -> norm, BiO-Net).
    Dropout, when set, follows each conv unit. Submodules are named ``conv1, norm1, act1, ...``.
    The first conv strides by ``stride``; ``widths`` sets the channels of all convs but the last.
    """

    type: Literal["conv"] = "conv"
    """A stack of convs (`convs` x conv -> norm -> act)."""
    convs: int = Field(2, ge=1, le=64)
    """Convolutions in the stack (U-Net's double conv: 2)."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel of each conv (odd: sizes are kept): an int, one per axis (`[1, 3, 3]`), or an
    expression over params and index variables (`kernels[i]`)."""
    bias: bool = True
    """A bias in each conv (redundant before a batch norm)."""
    norm: NormSetting = "none"
    """Normalisation after each conv (`{type: group, groups: 8}` for options)."""
    act: ActSetting = "relu"
    """Activation after each normalisation."""
    order: Literal["cna", "can"] = "cna"
    """conv -> norm -> act (`cna`) or conv -> act -> norm (`can`, BiO-Net)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability after each conv unit (0: none)."""

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: the convs of :class:`~skipgraph.blocks.conv.ConvStack` with their norms."""
        return self.stack_params(dims, in_channels, out_channels)


class RecurrentParams(BlockParams):
    """RU-Net / R2U-Net units: [1x1 projection] -> ``layers`` RCLs of ``steps`` recurrent steps
    [+ residual]. ``tied``: one conv for W_f and W_r (public code) or two (the paper's
    equation); ``norm_per_step``: a norm per step or one shared (public code)."""

    type: Literal["recurrent"] = "recurrent"
    """RU-Net / R2U-Net recurrent units."""
    steps: int = Field(2, ge=0, le=64)
    """Recurrent steps t of each RCL (0: plain convs)."""
    layers: int = Field(2, ge=1, le=16)
    """RCLs in the unit."""
    residual: bool = True
    """Add the (projected) input to the output (R2U-Net) or not (RU-Net)."""
    tied: bool = True
    """One conv for the feed-forward and recurrent weights (public code) or two (the paper)."""
    projection: Literal["first", "shortcut", "none"] = "first"
    """The 1x1 conv to the output width: before the RCLs (`first`), on the residual only
    (`shortcut`), or none (the input already has the width)."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel of each conv (odd: sizes are kept): an int, one per axis (`[1, 3, 3]`), or an
    expression over params and index variables (`kernels[i]`)."""
    bias: bool = True
    """A bias in each conv (redundant before a batch norm)."""
    norm: NormSetting = "batch"
    """Normalisation after each conv (`{type: group, groups: 8}` for options)."""
    act: ActSetting = "relu"
    """Activation after each normalisation."""
    norm_per_step: bool = False
    """A norm per recurrent step (true) or one shared by the steps (public code)."""

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: :class:`~skipgraph.blocks.recurrent.RecurrentUnit`'s projection and RCLs."""
        return recurrent_params(self, dims, in_channels, out_channels)


def recurrent_params(p: Any, dims: int, in_channels: int, out_channels: int) -> int:
    """Parameters of a recurrent (or residual: ``steps`` 0) unit: the 1x1 projection (with a
    bias), then per RCL its conv (bias ``bias``), W_r when not ``tied``, its norms (one per
    step with ``norm_per_step``) and its activation."""
    from .options import layer_params
    steps, tied = getattr(p, "steps", 0), getattr(p, "tied", True)
    per_step, projection = getattr(p, "norm_per_step", False), p.projection
    k = volume(p.kernel, dims)
    total = (in_channels + 1) * out_channels if projection != "none" else 0
    c = out_channels if projection == "first" else in_channels
    for _ in range(getattr(p, "layers", getattr(p, "convs", 1))):
        total += k * c * out_channels + (out_channels if p.bias else 0)
        if steps and not tied:
            total += k * out_channels * out_channels
        total += (steps + 1 if per_step else 1) * layer_params(p.norm, "none", out_channels)
        total += layer_params("none", p.act, out_channels)
        c = out_channels
    return total


class ResidualParams(BlockParams):
    """ResU-Net units: ``convs`` x (conv -> norm -> act) plus a residual through a projection."""

    type: Literal["residual"] = "residual"
    """ResU-Net residual units."""
    convs: int = Field(2, ge=1, le=16)
    """Conv -> norm -> act units in the block."""
    projection: Literal["first", "shortcut"] = "first"
    """The 1x1 projection to the output width: before the convs (`first`) or on the residual
    only (`shortcut`)."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel of each conv (odd: sizes are kept): an int, one per axis (`[1, 3, 3]`), or an
    expression over params and index variables (`kernels[i]`)."""
    bias: bool = True
    """A bias in each conv (redundant before a batch norm)."""
    norm: NormSetting = "batch"
    """Normalisation after each conv (`{type: group, groups: 8}` for options)."""
    act: ActSetting = "relu"
    """Activation after each normalisation."""

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: :class:`~skipgraph.blocks.recurrent.ResidualUnit`'s projection and convs."""
        return recurrent_params(self, dims, in_channels, out_channels)


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
    """A ResNet stage of `units` residual units."""
    units: ExprText = 1
    """Residual units stacked in the node (ResNet-34's stages: 3, 4, 6, 3); an expression over
    params and index variables is evaluated per node."""
    convs: int = Field(2, ge=1, le=16)
    """Convs per unit (ResNet's BasicBlock: 2)."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel of each conv (odd: sizes are kept): an int, one per axis (`[1, 3, 3]`), or an
    expression over params and index variables (`kernels[i]`)."""
    bias: bool = False
    """A bias in each conv (off: a batch norm follows)."""
    norm: NormSetting = "batch"
    """Normalisation after each conv (`{type: group, groups: 8}` for options)."""
    act: ActSetting = "relu"
    """Activation after each normalisation."""
    post_act: bool = True
    """Where a unit's last activation goes: after the sum (`true`: `act(norm(conv(..)) +
    shortcut)`, ResNet) or after the last conv, before the sum (`false`, as ResU-Net)."""
    shortcut: Literal["conv", "pool_conv"] = "conv"
    """How the first unit's shortcut matches a changed shape: `conv` (strided 1x1 conv + norm,
    ResNet) or `pool_conv` (avg-pool by the stride, then 1x1 conv + norm if the channels
    change: ResNet-D, nnU-Net's BasicBlockD)."""

    expressions = {"stride": 1, "widths": 1, "dilation": 1, "units": 1}

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))
    _units = field_validator("units")(classmethod(lambda cls, v: check_positive(v, "units", 64)))

    def note(self) -> str:
        return " ".join(t for t in (f"x{self.units}", super().note()) if t)

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: every unit's convs, norms and acts, plus the shortcuts (:class:`ResUnit`)."""
        from .options import layer_params, norm_choice
        units = self.units if isinstance(self.units, int) else 1
        stride = self.conv_stride()
        strided = any(f > 1 for f in (stride if isinstance(stride, tuple) else (stride,)))
        normed = norm_choice(self.norm)[0] != "none"
        total, c_in = 0, in_channels
        for _ in range(units):
            total += self.stack_params(dims, c_in, out_channels)
            if (strided or c_in != out_channels) and not (
                    self.shortcut == "pool_conv" and c_in == out_channels):
                total += c_in * out_channels + (0 if normed else out_channels) + \
                    layer_params(self.norm, "none", out_channels)
            c_in, strided = out_channels, False
        return total


class IdentityParams(BlockParams):
    """No conv: the merged input, then an optional ``norm`` and ``act`` (an activation-only or
    norm-act node). It keeps its input channels, so the node's ``width`` must equal them."""

    type: Literal["identity"] = "identity"
    """No conv: an optional norm and activation on the merged input."""
    norm: NormSetting = "none"
    """Normalisation of the merged input."""
    act: ActSetting = "none"
    """Activation after the normalisation."""


    def out_channels(self, in_channels: int, width: int) -> int:
        if width != in_channels:
            raise ValueError(f"an identity block keeps its {in_channels} input channels, but the "
                             f"node's width is {width}")
        return width

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        from .options import layer_params
        return layer_params(self.norm, self.act, out_channels)


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
