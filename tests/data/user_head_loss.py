"""A user module, loaded with ``skipgraph --import tests.data.user_head_loss``: it adds a
pixel-wise head type and a loss with keyword arguments exactly as docs/architecture.md's
recipes say (tests/test_user_head_loss.py trains each one step through the CLI).

- ``type: scaled``: a 1x1 conv to ``out`` channels times a learned per-channel scale (its own
  field ``init``); it declares nothing of the head contract, so it gives logits and its
  targets are max-pooled (the defaults of :class:`skipgraph.heads.HeadType`).
- ``loss: {seg: tversky}``: the Tversky loss (Salehi et al. 2017) on probabilities, with the
  keyword arguments ``alpha``, ``beta`` (registered as 0.3 / 0.7) and ``smooth``.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn as nn

from skipgraph.heads import HeadType, register_head
from skipgraph.loss_registry import register_loss

# what the loss was called with, for the test to read: (min p, max p, alpha, beta, smooth)
CALLS: list[tuple[float, float, float, float, float]] = []


class ScaledHead(HeadType):
    """A pixel-wise head: 1x1 conv, times a learned scale per channel."""

    type: Literal["scaled"]
    out: int = 1
    init: float = 1.0
    """The scale's initial value."""
    expressions: ClassVar[dict[str, int]] = {}

    def out_channels(self) -> int:
        return self.out

    def term(self, node: str, level: int) -> str:
        return f"scaled({node})"

    def estimate_params(self, dims: int, in_channels: int) -> int:
        return (in_channels + 2) * self.out


class ScaledModule(nn.Module):
    def __init__(self, dims: int, head) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = conv(head.in_channels, head.out_channels, 1)
        self.scale = nn.Parameter(torch.full((1, head.out_channels) + (1,) * dims,
                                             head.settings.init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale


class ScaledBuilder:
    module = ScaledModule

    @staticmethod
    def steps(dims: int, head) -> list:
        return []


def tversky(p: torch.Tensor, y: torch.Tensor, alpha: float = 0.5, beta: float = 0.5,
            smooth: float = 1.0) -> torch.Tensor:
    """1 - TP / (TP + alpha FP + beta FN), sums over the batch and space, mean over channels."""
    CALLS.append((float(p.detach().min()), float(p.detach().max()), alpha, beta, smooth))
    dims = [0] + list(range(2, p.ndim))
    tp = (p * y).sum(dims)
    fp, fn = (p * (1 - y)).sum(dims), ((1 - p) * y).sum(dims)
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()


register_head("scaled", ScaledHead, ScaledBuilder, "1x1 conv times a learned scale")
register_loss("tversky", tversky, "Tversky loss (Salehi et al. 2017)",
              keywords={"alpha": 0.3, "beta": 0.7})
