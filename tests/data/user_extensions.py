"""A user's own module, loaded with ``skipgraph --import user_extensions ...`` (this folder on
``PYTHONPATH``): it registers a normalisation, an activation and a block type, each exactly as
the recipes of docs/architecture.md say, without editing skipgraph. tests/test_user_extensions.py
trains a model with each of them through the command line.

- norm ``rms``: RMS normalisation over the channels at each position, with a learned gain per
  channel (``x / sqrt(mean_c(x^2) + eps) * g``, Zhang & Sennrich 2019, applied per pixel);
- act ``squareplus``: ``(x + sqrt(x^2 + b)) / 2``, a smooth ReLU (Barron 2021);
- block ``dwsep``: ``convs`` x (depthwise ``kernel`` conv -> pointwise 1x1 conv -> norm -> act),
  a depthwise-separable conv stack (MobileNet, Howard et al. 2017).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from skipgraph.blocks.layers import CONV, make_act, make_norm
from skipgraph.blocks.options import LayerOptions, register_act, register_norm
from skipgraph.blocks.registry import BlockParams, register_block
from skipgraph.fields.types import ActSetting, NormSetting

__all__ = ["RMSNorm", "Squareplus", "DWSepParams", "DWSep"]


# --- a normalisation ---------------------------------------------------------------------------
class RMSOptions(LayerOptions):
    eps: float = Field(1e-6, gt=0)
    """Added to the mean square (a positive number)."""


class RMSNorm(nn.Module):
    """``(N, C, *spatial) -> (N, C, *spatial)``: each position divided by the RMS of its
    channels, times a learned gain per channel."""

    def __init__(self, dims: int, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(1, channels, *[1] * dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps) * self.gain


register_norm("rms", RMSOptions, RMSNorm, "RMS norm over the channels at each position")


# --- an activation -------------------------------------------------------------------------------
class SquareplusOptions(LayerOptions):
    b: float = Field(4.0, gt=0)
    """Smoothness near 0 (b -> 0 gives ReLU)."""


class Squareplus(nn.Module):
    def __init__(self, b: float = 4.0):
        super().__init__()
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + torch.sqrt(x * x + self.b)) / 2


register_act("squareplus", SquareplusOptions, Squareplus, "(x + sqrt(x^2 + b)) / 2")


# --- a block ---------------------------------------------------------------------------------------
class DWSepParams(BlockParams):
    """``convs`` depthwise-separable units, each depthwise conv -> 1x1 conv -> norm -> act."""

    type: Literal["dwsep"] = "dwsep"
    """A depthwise-separable conv stack."""
    convs: int = Field(2, ge=1, le=8)
    """Units in the stack."""
    kernel: int = Field(3, ge=1, le=7)
    """Kernel of each depthwise conv (odd: sizes are kept)."""
    norm: NormSetting = "batch"
    """Normalisation after each pointwise conv."""
    act: ActSetting = "relu"
    """Activation after each normalisation."""

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        depthwise = self.kernel ** dims * (in_channels + (self.convs - 1) * out_channels)
        return depthwise + (in_channels + (self.convs - 1) * out_channels) * out_channels


class DWSep(nn.Sequential):
    def __init__(self, dims: int, in_channels: int, out_channels: int, params: DWSepParams):
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(params.convs):
            layers += [CONV[dims](c, c, params.kernel, padding=params.kernel // 2, groups=c),
                       CONV[dims](c, out_channels, 1)]
            layers += [m for m in (make_norm(params.norm, dims, out_channels),
                                   make_act(params.act)) if m is not None]
            c = out_channels
        super().__init__(*layers)


register_block("dwsep", DWSepParams, DWSep, "depthwise-separable conv stack (MobileNet)")
