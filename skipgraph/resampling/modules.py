"""Torch builders of the built-in resampling ops (imported only when compiling).

Parametric ops: ``builder(dims, in_channels, out_channels, factor, settings) -> nn.Module``.
Param-free ops: ``builder.call(dims, factor, settings) -> (function, kwargs)``. ``factor`` is
an int, or a tuple with one factor per spatial axis (anisotropic grids); kernels likewise.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn
import torch.nn.functional as F

from ..blocks.layers import AVG_POOL, CONV, CONV_T, MAX_POOL, interp_mode
from ..fields.axes import Size, axiswise
from . import same_pad

__all__ = ["strided_conv", "transpose_conv", "MaxPoolFn", "AvgPoolFn", "BilinearFn",
           "NearestFn"]

Call = tuple[Callable[..., Any], dict[str, Any]]


def strided_conv(dims: int, in_channels: int, out_channels: int, factor: Size,
                 s: Any) -> nn.Module:
    kernel = s.kernel_for(factor)
    return CONV[dims](in_channels, out_channels, kernel, stride=factor,
                      padding=same_pad(kernel, factor), bias=s.bias)


def transpose_conv(dims: int, in_channels: int, out_channels: int, factor: Size,
                   s: Any) -> nn.Module:
    # output = input * factor for any kernel: padding and output_padding follow from it
    kernel = s.kernel_for(factor)
    pad = same_pad(kernel, factor)
    extra = axiswise(lambda f, k, p: f - k + 2 * p, factor, kernel, pad)
    return CONV_T[dims](in_channels, out_channels, kernel, stride=factor, padding=pad,
                        output_padding=extra, bias=s.bias)


def _pool(fn: Any, factor: Size, s: Any) -> Call:
    kwargs = {"kernel_size": s.kernel_for(factor), "stride": factor, "ceil_mode": s.ceil}
    padding = s.padding_for(factor)
    if padding != 0:  # the default (kernel = factor) keeps the call it always had
        kwargs["padding"] = padding
    return fn, kwargs


class MaxPoolFn:
    @staticmethod
    def call(dims: int, factor: Size, s: Any) -> Call:
        return _pool(MAX_POOL[dims], factor, s)


class AvgPoolFn:
    @staticmethod
    def call(dims: int, factor: Size, s: Any) -> Call:
        return _pool(AVG_POOL[dims], factor, s)


class BilinearFn:
    @staticmethod
    def call(dims: int, factor: Size, s: Any) -> Call:
        return F.interpolate, {"scale_factor": factor, "mode": interp_mode("bilinear", dims),
                               "align_corners": s.align_corners}


class NearestFn:
    @staticmethod
    def call(dims: int, factor: Size, s: Any) -> Call:
        return F.interpolate, {"scale_factor": factor, "mode": "nearest"}
