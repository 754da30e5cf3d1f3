"""The built-in resampling ops, registered by name (torch-free). Their torch builders are in
:mod:`skipgraph.resampling.modules`."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from . import ResampleOp, register_resample
from .pixelshuffle import PixelShuffle

__all__ = ["MaxPool", "AvgPool", "StridedConv", "Transpose", "Bilinear", "Nearest", "UpConvOp"]

_MODULES = "skipgraph.resampling.modules"


class MaxPool(ResampleOp):
    """Max-pooling by the factor (``ceil: true`` for ceil mode)."""

    op: Literal["maxpool"] = "maxpool"


class AvgPool(ResampleOp):
    """Average-pooling by the factor (``ceil: true`` for ceil mode)."""

    op: Literal["avgpool"] = "avgpool"


class StridedConv(ResampleOp):
    """A ``kernel`` convolution with stride = factor."""

    op: Literal["strided_conv"] = "strided_conv"
    parametric: ClassVar[bool] = True


class Transpose(ResampleOp):
    """A transposed convolution, stride = factor; any kernel gives output = input x factor."""

    op: Literal["transpose"] = "transpose"
    direction: ClassVar[Literal["up", "down"]] = "up"
    parametric: ClassVar[bool] = True


class _Interpolate(ResampleOp):
    direction: ClassVar[Literal["up", "down"]] = "up"

    def value_name(self, source: str, factor: int) -> str:
        return f"{source}_up{factor}"


class Bilinear(_Interpolate):
    """Bilinear (trilinear in 3D) interpolation, ``align_corners=False``."""

    op: Literal["bilinear"] = "bilinear"


class Nearest(_Interpolate):
    """Nearest-neighbour interpolation."""

    op: Literal["nearest"] = "nearest"


class UpConvOp(ResampleOp):
    """Interpolate (``mode``) by the factor, then a size-preserving ``kernel`` conv."""

    op: Literal["upconv"] = "upconv"
    direction: ClassVar[Literal["up", "down"]] = "up"
    parametric: ClassVar[bool] = True

    @model_validator(mode="after")
    def _odd_kernel(self) -> "UpConvOp":
        self.require_odd_kernel()
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
