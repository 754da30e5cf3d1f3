"""Torch classes of ``sepconv``, ``image_pool`` and ``dropout`` (settings and papers:
:mod:`skipgraph.blocks.context_params`)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .context_params import DropoutParams, ImagePoolParams, SepConvParams
from .conv import half
from .layers import CONV, SPATIAL_DROPOUT, make_act, make_norm

__all__ = ["SepConvStack", "ImagePool", "DropoutBlock"]

class SepConvStack(nn.Sequential):
    """``convs`` x (depthwise conv -> pointwise 1x1 conv -> norm -> act).
    ``(N, in_channels, *S) -> (N, out_channels, *S / stride)``.

    Example:
        >>> SepConvStack(2, 8, 16, SepConvParams(dilation=2, bias=False))
        SepConvStack(
          (dw1): Conv2d(8, 8, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=8, bias=False)
          (pw1): Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
          (act1): ReLU(inplace=True)
        )
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: SepConvParams):
        super().__init__()
        p, c_in = params, in_channels
        for k, c_out in enumerate(p.conv_widths(out_channels), start=1):
            self.add_module(f"dw{k}", CONV[dims](c_in, c_in, p.kernel, groups=c_in,
                                                 stride=p.conv_stride() if k == 1 else 1,
                                                 padding=half(p.kernel, p.dilation),
                                                 dilation=p.dilation, bias=False))
            self.add_module(f"pw{k}", CONV[dims](c_in, c_out, 1, bias=p.bias))
            for name, layer in ((f"norm{k}", make_norm(p.norm, dims, c_out)),
                                (f"act{k}", make_act(p.act))):
                if layer is not None:
                    self.add_module(name, layer)
            c_in = c_out


class ImagePool(nn.Module):
    """Global pooling -> ``conv`` (1x1) -> ``norm`` -> ``act``, spread back over the input's
    positions. ``(N, C_in, *S) -> (N, out_channels, *S)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: ImagePoolParams):
        super().__init__()
        self.use_max = params.pool == "max"
        self.conv = CONV[dims](in_channels, out_channels, 1, bias=params.bias)
        self.norm = make_norm(params.norm, dims, out_channels)
        self.act = make_act(params.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = tuple(range(2, x.dim()))
        h = x.amax(dim=axes, keepdim=True) if self.use_max else x.mean(dim=axes, keepdim=True)
        h = self.conv(h)
        if self.norm is not None:
            h = self.norm(h)
        if self.act is not None:
            h = self.act(h)
        return h.expand(-1, -1, *x.shape[2:]).contiguous()  # later layers may work in place


class DropoutBlock(nn.Sequential):
    """Dropout of values (``nn.Dropout``) or of whole channels (``Dropout2d`` / ``Dropout3d``)
    as child ``drop``. ``(N, C, *S) -> (N, C, *S)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: DropoutParams):
        super().__init__()
        layer = SPATIAL_DROPOUT[dims] if params.spatial else nn.Dropout
        self.add_module("drop", layer(params.rate))
