"""Torch module of ``op: pixelshuffle`` (settings: :mod:`skipgraph.resampling.pixelshuffle`)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..blocks.conv import half
from ..blocks.layers import CONV, by_dims

__all__ = ["SubpixelUp", "icnr_init"]

_PAD = by_dims("constant pad", nn.ConstantPad2d, nn.ConstantPad3d)
_AVG_POOL = by_dims("avg-pool", nn.AvgPool2d, nn.AvgPool3d)


def icnr_init(conv: nn.Module, factor: int) -> None:
    """ICNR (Aitken et al. 2017): each group of ``factor**dims`` output channels that the
    shuffle interleaves starts with the same kernel (as MONAI's ``icnr_init``)."""
    out_channels, in_channels, *size = conv.weight.shape
    groups = factor ** len(size)
    kernel = nn.init.kaiming_normal_(torch.zeros([out_channels // groups, in_channels] + size))
    kernel = kernel.transpose(0, 1).reshape(out_channels // groups, in_channels, -1)
    kernel = kernel.repeat(1, 1, groups).reshape([in_channels, out_channels] + size)
    with torch.no_grad():
        conv.weight.copy_(kernel.transpose(0, 1))


class SubpixelUp(nn.Module):
    """Sub-pixel convolution up-sampling by ``factor``: (N, C_in, *S) -> conv ->
    (N, C_out * factor**dims, *S) -> shuffle -> (N, C_out, *(S * factor)) [-> pad + avg-pool].

    Equal to MONAI's ``SubpixelUpsample(dims, C_in, C_out, factor)`` given the same conv
    weights; torch's ``nn.PixelShuffle`` is 2D only, so the shuffle is written for any dims.
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, factor: int,
                 settings: Any):
        super().__init__()
        self.dims, self.factor = dims, factor
        k = settings.kernel
        self.conv = CONV[dims](in_channels, out_channels * factor ** dims, k, padding=half(k),
                               bias=settings.bias)
        if settings.icnr:
            icnr_init(self.conv, factor)
        self.smooth = nn.Sequential(_PAD[dims]((factor - 1, 0) * dims, 0.0),
                                    _AVG_POOL[dims](factor, stride=1)) \
            if settings.pad_pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.smooth(self.shuffle(self.conv(x)))

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C r^d, *S) -> (N, C, *(S r)): channel block (r_1..r_d) goes to the offsets
        within each r^d cell (torch's pixel_shuffle order in 2D)."""
        d, r = self.dims, self.factor
        n, c, spatial = x.shape[0], x.shape[1] // r ** d, x.shape[2:]
        x = x.reshape(n, c, *([r] * d), *spatial)
        order = [0, 1] + [j for i in range(d) for j in (2 + d + i, 2 + i)]
        return x.permute(order).reshape(n, c, *[s * r for s in spatial])
