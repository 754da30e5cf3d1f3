"""The user's own module: a squeeze-and-excitation conv block, registered as block type ``se_conv``.

Importing this module registers the block; a spec then says ``block: {type: se_conv}``. From the
command line: ``skipgraph --import se_block build examples/se_unet.yaml`` (with ``examples/`` on
``PYTHONPATH``). Nothing named inside a spec is ever imported: only ``--import`` or your own
``import`` loads this code.

Squeeze-and-excitation (Hu et al., CVPR 2018): after the usual ``convs x (conv -> norm -> act)``,
global average pooling gives one number per channel, a bottleneck MLP (C -> C/r -> C, ReLU then
sigmoid) turns it into a weight in (0, 1) per channel, and the feature map is multiplied by it.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from skipgraph.blocks.builtin import ConvParams
from skipgraph.blocks.conv import ConvStack
from skipgraph.blocks.registry import register_block

__all__ = ["SEParams", "SEConv"]


class SEParams(ConvParams):
    """The conv block's settings (``convs``, ``kernel``, ``norm``, ``act``, ...) plus
    ``reduction``: the bottleneck is ``max(1, C // reduction)`` units."""

    type: Literal["se_conv"] = "se_conv"  # type: ignore[assignment]
    reduction: int = Field(4, ge=1)

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        hidden = max(1, out_channels // self.reduction)
        return super().estimate_params(dims, in_channels, out_channels) \
            + 2 * hidden * out_channels + hidden + out_channels


class SEConv(nn.Module):
    """``(N, C_in, *spatial) -> (N, C_out, *spatial)``: a conv stack, then channel re-weighting."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: SEParams):
        super().__init__()
        hidden = max(1, out_channels // params.reduction)
        self.body = ConvStack(dims, in_channels, out_channels, params)
        self.squeeze = nn.Sequential(nn.Linear(out_channels, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, out_channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        weights = self.squeeze(y.flatten(2).mean(dim=2))           # (N, C_out)
        return y * weights.view(*weights.shape, *[1] * (y.dim() - 2))


register_block("se_conv", SEParams, SEConv,
               "convs x (conv -> norm -> act), then squeeze-and-excitation (Hu et al. 2018)")
