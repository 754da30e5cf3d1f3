"""Torch builders of the built-in resampling ops (imported only when compiling).

Parametric ops: ``builder(dims, in_channels, out_channels, factor, settings) -> nn.Module``.
Param-free ops: ``builder.call(dims, factor, settings) -> (function, kwargs)``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn
import torch.nn.functional as F

from ..blocks.layers import AVG_POOL, CONV, CONV_T, MAX_POOL, interp_mode

__all__ = ["strided_conv", "transpose_conv", "MaxPoolFn", "AvgPoolFn", "BilinearFn",
           "NearestFn"]

Call = tuple[Callable[..., Any], dict[str, Any]]


def _same_pad(kernel: int, factor: int) -> int:
    return max((kernel - factor + 1) // 2, 0)


def strided_conv(dims: int, in_channels: int, out_channels: int, factor: int,
                 s: Any) -> nn.Module:
    return CONV[dims](in_channels, out_channels, s.kernel, stride=factor,
                      padding=_same_pad(s.kernel, factor), bias=s.bias)


def transpose_conv(dims: int, in_channels: int, out_channels: int, factor: int,
                   s: Any) -> nn.Module:
    # output = input * factor for any kernel: padding and output_padding follow from it
    pad = _same_pad(s.kernel, factor)
    return CONV_T[dims](in_channels, out_channels, s.kernel, stride=factor, padding=pad,
                        output_padding=factor - s.kernel + 2 * pad, bias=s.bias)


class MaxPoolFn:
    @staticmethod
    def call(dims: int, factor: int, s: Any) -> Call:
        return MAX_POOL[dims], {"kernel_size": factor, "stride": factor, "ceil_mode": s.ceil}


class AvgPoolFn:
    @staticmethod
    def call(dims: int, factor: int, s: Any) -> Call:
        return AVG_POOL[dims], {"kernel_size": factor, "stride": factor, "ceil_mode": s.ceil}


class BilinearFn:
    @staticmethod
    def call(dims: int, factor: int, s: Any) -> Call:
        return F.interpolate, {"scale_factor": factor, "mode": interp_mode("bilinear", dims),
                               "align_corners": False}


class NearestFn:
    @staticmethod
    def call(dims: int, factor: int, s: Any) -> Call:
        return F.interpolate, {"scale_factor": factor, "mode": "nearest"}
