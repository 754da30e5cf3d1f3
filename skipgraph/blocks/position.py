"""Torch class of ``position_attention`` (settings and papers:
:mod:`skipgraph.blocks.position_params`)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .conv import half
from .layers import CONV
from .position_params import PositionAttentionParams

__all__ = ["PositionAttention"]


class PositionAttention(nn.Module):
    """``out(x + A(x))``: ``A`` attends every position of ``x`` to every other one, with
    queries ``query(x)``, keys ``key(x)`` (1x1 convs to ``key_channels``) and values
    ``value(x)`` (a ``kernel`` conv keeping the ``C_in`` channels). ``(N, C_in, *S) ->
    (N, out_channels, *S)``, 2D or 3D.

    With ``softmax: map`` the softmax runs over the whole flattened (P x P) map of each sample
    (P = positions), as smp's ``PABBlock`` (``view(batch, -1)``, softmax over dim 1); with
    ``keys`` over each query's P keys. With ``transpose: false`` the attended values, (N, P,
    C_in), are reshaped to (N, C_in, *S) as they lie in memory (smp's ``reshape``); with
    ``true`` they are transposed to (N, C_in, P) first.

    Example:
        >>> block = PositionAttention(2, 8, 8, PositionAttentionParams(key_channels=4))
        >>> block(torch.randn(2, 8, 3, 5)).shape
        torch.Size([2, 8, 3, 5])
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int,
                 params: PositionAttentionParams):
        super().__init__()
        pad = half(params.kernel)
        self.per_key = params.softmax == "keys"
        self.transpose = params.transpose
        self.query = CONV[dims](in_channels, params.key_channels, 1)
        self.key = CONV[dims](in_channels, params.key_channels, 1)
        self.value = CONV[dims](in_channels, in_channels, params.kernel, padding=pad)
        self.out = CONV[dims](in_channels, out_channels, params.kernel, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        keys = self.key(x).flatten(2)                     # (N, K, P)
        queries = self.query(x).flatten(2).transpose(1, 2)  # (N, P, K)
        values = self.value(x).flatten(2).transpose(1, 2)   # (N, P, C)
        scores = torch.matmul(queries, keys)              # (N, P, P): query i, key j
        if self.per_key:
            weights = scores.softmax(dim=-1)
        else:
            weights = scores.view(n, -1).softmax(dim=1).view_as(scores)
        attended = torch.matmul(weights, values)           # (N, P, C)
        if self.transpose:
            attended = attended.transpose(1, 2)
        return self.out(x + attended.reshape(x.shape))
