"""The built-in resampling ops, registered by name (torch-free). Their torch builders are in
:mod:`skipgraph.resampling.modules`."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from ..fields.axes import KernelSize, Padding, Size
from ..fields.types import KernelExpr
from . import ResampleOp, register_resample, resample_problem, same_pad
from .pixelshuffle import PixelShuffle

__all__ = ["MaxPool", "AvgPool", "StridedConv", "Transpose", "Bilinear", "Nearest", "UpConvOp"]

_MODULES = "skipgraph.resampling.modules"
_AFTER = frozenset({"norm", "act", "order"})          # norm/act after the op (any op)
_CONV = _AFTER | {"kernel", "out", "bias"}            # a parametric op's conv


class _Pool(ResampleOp):
    kernel: KernelSize | Literal["factor"] | KernelExpr = "factor"
    """Pooling window, one int or one per axis; default `factor` (the edge's factor, 2x2 for
    one level). With another size the stride stays the factor: ResNet's max-pool is `kernel:
    3` (padding 1 follows)."""
    padding: Padding | None = None
    """Zero padding (max-pool: -inf) per side, one int or one per axis; default: what makes
    the window shrink a size by exactly the factor, ceil((kernel - factor) / 2)."""

    uses: ClassVar[frozenset[str] | None] = _AFTER | {"kernel", "padding", "ceil"}

    def padding_for(self, factor: Size) -> Size:
        return self.padding if self.padding is not None \
            else same_pad(self.kernel_for(factor), factor)

    def problem(self, dims: int, factor: Size) -> str | None:
        from ..fields.axes import check_axes
        for name, value in (("kernel", self.kernel), ("padding", self.padding)):
            if value is not None and value != "factor" and check_axes(value, dims):
                return f"{name}: {check_axes(value, dims)}"
        return resample_problem(self.kernel_for(factor), factor, self.padding_for(factor), dims,
                                ceil=self.ceil)


class MaxPool(_Pool):
    """Max-pooling with stride = factor (``kernel``/``padding``: ResNet's 3x3 pad-1 pool;
    ``ceil: true`` for ceil mode)."""

    op: Literal["maxpool"] = "maxpool"
    """A registered resampling op (this one: its name)."""


class AvgPool(_Pool):
    """Average-pooling with stride = factor (``kernel``/``padding`` as for max-pooling, padded
    zeros counted in the mean as torch's default; ``ceil: true`` for ceil mode)."""

    op: Literal["avgpool"] = "avgpool"
    """A registered resampling op (this one: its name)."""


class _Conv(ResampleOp):
    parametric: ClassVar[bool] = True
    uses: ClassVar[frozenset[str] | None] = _CONV

    def problem(self, dims: int, factor: Size) -> str | None:
        kernel = self.kernel_for(factor)
        return super().problem(dims, factor) or resample_problem(
            kernel, factor, same_pad(kernel, factor), dims, transposed=self.direction == "up")


class StridedConv(_Conv):
    """A ``kernel`` convolution with stride = factor (padding: ceil((kernel - factor) / 2))."""

    op: Literal["strided_conv"] = "strided_conv"
    """A registered resampling op (this one: its name)."""


class Transpose(_Conv):
    """A transposed convolution, stride = factor; any kernel gives output = input x factor
    (`kernel: factor` is nnU-Net's kernel = stride)."""

    op: Literal["transpose"] = "transpose"
    """A registered resampling op (this one: its name)."""
    direction: ClassVar[Literal["up", "down"]] = "up"


class _Interpolate(ResampleOp):
    direction: ClassVar[Literal["up", "down"]] = "up"
    uses: ClassVar[frozenset[str] | None] = _AFTER

    def value_name(self, source: str, factor: Size) -> str:
        from . import factor_name
        return f"{source}_up{factor_name(factor)}"


class Bilinear(_Interpolate):
    """Bilinear (trilinear in 3D) interpolation."""

    op: Literal["bilinear"] = "bilinear"
    """A registered resampling op (this one: its name)."""
    align_corners: bool = False
    """Align the corner pixels of input and output (torch's `align_corners=True`, as
    `nn.UpsamplingBilinear2d` and many public U-Nets); default false."""

    uses: ClassVar[frozenset[str] | None] = _AFTER | {"align_corners"}


class Nearest(_Interpolate):
    """Nearest-neighbour interpolation."""

    op: Literal["nearest"] = "nearest"
    """A registered resampling op (this one: its name)."""


class UpConvOp(ResampleOp):
    """Interpolate (``mode``) by the factor, then a size-preserving ``kernel`` conv."""

    op: Literal["upconv"] = "upconv"
    """A registered resampling op (this one: its name)."""
    align_corners: bool = False
    """With `mode: bilinear`: align the corner pixels (torch's `align_corners=True`)."""

    direction: ClassVar[Literal["up", "down"]] = "up"
    parametric: ClassVar[bool] = True
    uses: ClassVar[frozenset[str] | None] = _CONV | {"mode", "align_corners"}

    @model_validator(mode="after")
    def _odd_kernel(self) -> "UpConvOp":
        self.require_odd_kernel()
        if self.align_corners and self.mode != "bilinear":
            raise ValueError("`align_corners` applies to `mode: bilinear` only")
        return self


register_resample("maxpool", MaxPool, f"{_MODULES}:MaxPoolFn", "max-pooling")
register_resample("avgpool", AvgPool, f"{_MODULES}:AvgPoolFn", "average-pooling")
register_resample("strided_conv", StridedConv, f"{_MODULES}:strided_conv",
                  "convolution with stride = factor")
register_resample("transpose", Transpose, f"{_MODULES}:transpose_conv",
                  "transposed convolution, stride = factor")
register_resample("bilinear", Bilinear, f"{_MODULES}:BilinearFn",
                  "bilinear (3D: trilinear) interpolation")
register_resample("nearest", Nearest, f"{_MODULES}:NearestFn", "nearest-neighbour interpolation")
register_resample("upconv", UpConvOp, "skipgraph.blocks.conv:UpConv",
                  "interpolation, then a conv")
register_resample("pixelshuffle", PixelShuffle,
                  "skipgraph.resampling.pixelshuffle_modules:SubpixelUp",
                  "sub-pixel convolution: conv to C*factor^dims, then pixel shuffle (MONAI)")
