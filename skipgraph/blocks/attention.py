"""Attention gate on a skip edge (Attention U-Net, as in its widely used public code)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import CONV, make_norm

__all__ = ["AttentionGate"]


class AttentionGate(nn.Module):
    """``x * psi``: ``psi = sigmoid(BN(conv1x1(relu(BN(W_g g) + BN(W_x x)))))`` with ``F_int``
    intermediate channels; ``g`` is the gating signal (the up-sampled decoder map)."""

    def __init__(self, dims: int, gate_channels: int, skip_channels: int, inter_channels: int):
        super().__init__()
        self.W_g = nn.Sequential(CONV[dims](gate_channels, inter_channels, 1),
                                 make_norm("batch", dims, inter_channels))
        self.W_x = nn.Sequential(CONV[dims](skip_channels, inter_channels, 1),
                                 make_norm("batch", dims, inter_channels))
        self.psi = nn.Sequential(CONV[dims](inter_channels, 1, 1), make_norm("batch", dims, 1),
                                 nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(self.relu(self.W_g(g) + self.W_x(x)))
