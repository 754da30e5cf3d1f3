"""Torch blocks for the built-in block types and for edge resampling."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .builtin import ConvParams
from ..fields.axes import Size, axiswise
from .layers import CONV, in_place_act, interp_mode, make_act, make_norm

__all__ = ["ConvStack", "UpConv", "half"]


def half(kernel: Size, dilation: int = 1) -> Size:
    """The padding that keeps the size under an odd ``kernel`` (per axis), dilated by
    ``dilation``."""
    return axiswise(lambda k: k // 2 * dilation, kernel)


class ConvStack(nn.Sequential):
    """``convs`` x (conv -> norm -> act [-> dropout]) with fixed child names; the first conv
    strides by ``params.conv_stride()`` (per axis on an anisotropic grid), the convs output ``params.conv_widths(out_channels)``.
    ``(N, in_channels, *S) -> (N, out_channels, *S / stride)``.

    Children are ``conv1, norm1, act1, drop1, conv2, ...`` (absent ones are skipped), so
    ``state_dict`` keys read ``X0_1.conv1.weight`` whatever the options. ``order="can"`` puts
    the activation before the norm (BiO-Net's CONV).

    Example:
        >>> ConvStack(2, 1, 32, ConvParams(convs=1, norm="batch"))
        ConvStack(
          (conv1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
          (norm1): BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
          (act1): ReLU(inplace=True)
        )
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: ConvParams):
        super().__init__()
        c_in = in_channels
        for k, c_out in enumerate(params.conv_widths(out_channels), start=1):
            self.add_module(f"conv{k}", CONV[dims](c_in, c_out, params.kernel,
                                                   stride=params.conv_stride() if k == 1 else 1,
                                                   padding=half(params.kernel, params.dilation),
                                                   dilation=params.dilation, bias=params.bias))
            parts = {"norm": make_norm(params.norm, dims, c_out),
                     "act": in_place_act(make_act(params.act))}  # on a conv's / norm's output
            for part in ("norm", "act") if params.order == "cna" else ("act", "norm"):
                if parts[part] is not None:
                    self.add_module(f"{part}{k}", parts[part])
            if params.dropout > 0:
                self.add_module(f"drop{k}", nn.Dropout(params.dropout))
            c_in = c_out


class UpConv(nn.Module):
    """Interpolate by ``factor`` then a ``kernel`` conv ("upsample then conv"); the builder of
    the ``upconv`` resampling op (``settings``: its kernel, mode, bias). A 1^d conv commutes
    with nearest interpolation (each output pixel is the conv of the input pixel it copies),
    so it runs first, on factor^d fewer pixels (``conv_first``; MONAI's pre_conv order): the
    same output, bit for bit."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, factor: int,
                 settings: Any):
        super().__init__()
        kernel = settings.kernel_for(factor)
        self.factor = factor
        self.mode = interp_mode(settings.mode, dims)
        # only the bilinear modes take align_corners (None keeps nearest's call as it was)
        self.align_corners = settings.align_corners if settings.mode == "bilinear" else None
        self.conv = CONV[dims](in_channels, out_channels, kernel, padding=half(kernel),
                               bias=settings.bias)
        self.conv_first = settings.mode == "nearest" and all(k == 1 for k in self.conv.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_first:
            return F.interpolate(self.conv(x), scale_factor=self.factor, mode=self.mode,
                                 align_corners=self.align_corners)
        return self.conv(F.interpolate(x, scale_factor=self.factor, mode=self.mode,
                                       align_corners=self.align_corners))
