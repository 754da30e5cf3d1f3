"""A user's own module, loaded with ``skipgraph --import user_extensions ...`` (this folder on
``PYTHONPATH``): it registers a normalisation, an activation and a block type, each exactly as
the recipes of docs/architecture.md say, without editing skipgraph. tests/test_user_extensions.py
trains a model with each of them through the command line.

- norm ``rms``: RMS normalisation over the channels at each position, with a learned gain per
  channel (``x / sqrt(mean_c(x^2) + eps) * g``, Zhang & Sennrich 2019, applied per pixel);
- act ``squareplus``: ``(x + sqrt(x^2 + b)) / 2``, a smooth ReLU (Barron 2021);
- block ``dwsep``: ``convs`` x (depthwise ``kernel`` conv -> pointwise 1x1 conv -> norm -> act),
  a depthwise-separable conv stack (MobileNet, Howard et al. 2017);
- backbone provider ``strided``: encoders named ``strided<K>`` of K stages, stage k a stride-2
  3x3 conv (8 * 2**k channels) + ReLU, reduction 2**(k+1).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from skipgraph.backbone_registry import BackboneProvider, register_backbone_provider
from skipgraph.blocks.layers import CONV, make_act, make_norm
from skipgraph.blocks.options import LayerOptions, register_act, register_norm
from skipgraph.blocks.registry import BlockParams, register_block
from skipgraph.fields.types import ActSetting, NormSetting

__all__ = ["RMSNorm", "Squareplus", "DWSepParams", "DWSep", "STRIDED"]


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


# --- a backbone provider -------------------------------------------------------------------------
class StridedProvider(BackboneProvider):
    """Plain strided-conv encoders (torch only)."""

    package = "torch"
    dims = (2, 3)
    names_hint = "names are strided1 ... strided6"


class _Strided:
    @staticmethod
    def _stages(name: str) -> int:
        if not name.startswith("strided") or not name[7:].isdigit() or not 1 <= int(name[7:]) <= 6:
            raise ValueError(f"no encoder `{name}`")
        return int(name[7:])

    def describe(self, name: str, in_channels: int, dims: int = 2) -> list:
        from skipgraph.backbone_registry import StageInfo
        out, c = [], in_channels
        for k in range(self._stages(name)):
            width = 8 * 2 ** k
            out.append(StageInfo(width, 2 ** (k + 1), (f"stage{k}",),
                                 3 ** dims * c * width + width))
            c = width
        return out

    def build_stages(self, name: str, in_channels: int, weights: str | None,
                     frozen: list, dims: int = 2) -> list[nn.Module]:
        stages, c = [], in_channels
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        for k in range(self._stages(name)):
            width = 8 * 2 ** k
            stage = nn.Sequential(conv(c, width, 3, stride=2, padding=1), nn.ReLU())
            stage.requires_grad_(not (k < len(frozen) and frozen[k]))
            stages.append(stage)
            c = width
        return stages


STRIDED = _Strided()
register_backbone_provider("strided", StridedProvider, STRIDED, "plain strided-conv encoders")
