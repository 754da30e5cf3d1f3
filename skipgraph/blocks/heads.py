"""Classification-guided modules (CGM): image-level decisions that gate segmentation heads."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import CONV

__all__ = ["ConvMaxCGM", "PooledMLPCGM", "make_cgm", "cgm_gate"]


class ConvMaxCGM(nn.Module):
    """UNet3+'s CGM: dropout -> 1x1 conv to 2 -> global max pool -> sigmoid; output (N, 2)."""

    def __init__(self, dims: int, in_channels: int, dropout: float = 0.5):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.conv = CONV[dims](in_channels, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.amax(self.conv(self.drop(x)), dim=tuple(range(2, x.ndim))))


class PooledMLPCGM(nn.Module):
    """UNet#'s CGM: [global avg, global max] -> ``layers`` x (BN1d -> dropout -> linear), ReLU
    between stages, the last stage to 2 -> softmax; output (N, 2)."""

    def __init__(self, dims: int, in_channels: int, layers: int = 1, hidden: int = 256,
                 dropout: float = 0.5):
        super().__init__()
        widths = [2 * in_channels] + [hidden] * (layers - 1) + [2]
        stages = []
        for k in range(layers):
            stages += [nn.BatchNorm1d(widths[k]), nn.Dropout(dropout),
                       nn.Linear(widths[k], widths[k + 1])]
            if k < layers - 1:
                stages.append(nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.ndim))
        pooled = torch.cat([x.mean(dim=spatial), torch.amax(x, dim=spatial)], dim=1)
        return F.softmax(self.mlp(pooled), dim=1)


def make_cgm(dims: int, in_channels: int, variant: str, layers: int = 1, hidden: int = 256,
             dropout: float = 0.5) -> nn.Module:
    """The CGM of ``variant`` (``conv_max``: UNet3+, ``pooled_mlp``: UNet#)."""
    return _VARIANTS[variant](dims, in_channels, layers, hidden, dropout)


_VARIANTS = {
    "conv_max": lambda dims, c, layers, hidden, dropout: ConvMaxCGM(dims, c, dropout),
    "pooled_mlp": PooledMLPCGM,
}


def cgm_gate(seg: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``seg`` times the CGM's 0/1 decision (argmax of its 2 outputs), per sample."""
    decision = probs.argmax(dim=1).to(seg.dtype)
    return seg * decision.view(-1, *([1] * (seg.ndim - 1)))
