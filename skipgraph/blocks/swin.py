"""Swin Transformer blocks on grid tensors ``(N, C, *spatial)``: the torch side of ``type: swin``
and ``type: patch_merge`` (settings: :mod:`skipgraph.blocks.swin_params`).

Windows, padding, shifts and the shifted-window mask are computed from the map's shape with
tensor operations only (no branch on a size), so the compiled module stays one straight-line
fx graph and takes any input size; the window and shift themselves are settings, fixed when
the model is built.

Liu et al., ICCV 2021 (Swin); MONAI's ``SwinTransformerBlock``, ``WindowAttention`` (qkv split
as (3, heads, C / heads), bias index layout, mask value -100) and ``PatchMerging``.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .swin_params import PatchMergeParams, SwinParams
from .transformer import MLP

__all__ = ["relative_position_index", "WindowAttention", "SwinLayer", "PatchMerging"]

MASKED = -100.0  # Swin's (and MONAI's) additive mask between tokens of different regions


def relative_position_index(window: int, dims: int) -> torch.Tensor:
    """``(window^d, window^d)``: for two tokens of a window, the row of their offset in the
    relative position table of ``(2 window - 1)^d`` rows (Swin's layout, axes in order)."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(window)] * dims, indexing="ij")).flatten(1)
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    scale = torch.tensor([(2 * window - 1) ** (dims - 1 - k) for k in range(dims)])
    return (offsets * scale).sum(-1)


def _partition(t: torch.Tensor, grid: list, window: int, dims: int) -> torch.Tensor:
    """``(N, *P, C) -> (N, windows, window^d, C)`` for a map padded to ``grid`` x ``window``."""
    split = [s for g in grid for s in (g, window)]
    order = [0] + [1 + 2 * k for k in range(dims)] + [2 + 2 * k for k in range(dims)]
    t = t.reshape(t.shape[0], *split, t.shape[-1]).permute(*order, 2 * dims + 1)
    # the number of windows as a product of the grid (not -1): torch.export keeps it symbolic
    return t.reshape(t.shape[0], math.prod(grid), window ** dims, t.shape[-1])


def _merge(windows: torch.Tensor, grid: list, window: int, dims: int) -> torch.Tensor:
    """The inverse of :func:`_partition`: ``(N, windows, window^d, C) -> (N, *P, C)``."""
    t = windows.reshape(windows.shape[0], *grid, *[window] * dims, windows.shape[-1])
    order = [0] + [p for k in range(dims) for p in (1 + k, 1 + dims + k)]
    t = t.permute(*order, 2 * dims + 1)
    return t.reshape(t.shape[0], *[g * window for g in grid], t.shape[-1])


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, ``(N, windows, n, C) -> (N, windows, n,
    C)``, plus a learnable bias per head and relative offset (and the shifted-window mask)."""

    def __init__(self, channels: int, dims: int, p: SwinParams, heads: int):
        super().__init__()
        self.heads = heads
        self.tokens = p.window_used() ** dims  # MONAI reads the first n x n index entries
        self.dropout = p.attn_dropout
        self.qkv = nn.Linear(channels, 3 * channels, bias=p.qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(p.dropout)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * p.window - 1) ** dims, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)
        self.register_buffer("relative_position_index", relative_position_index(p.window, dims))

    def position_bias(self) -> torch.Tensor:
        """``(heads, n, n)``: the table's rows for the offsets of each pair of tokens."""
        n = self.tokens
        index = self.relative_position_index[:n, :n].reshape(-1)
        return self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # attention on 4D (N * windows, heads, n, C / heads) query, key and value
        qkv = self.qkv(windows.flatten(0, 1)).unflatten(-1, (3, self.heads, -1))
        qkv = qkv.permute(2, 0, 3, 1, 4)
        bias = self.position_bias()  # (heads, n, n), the same for every window
        if mask is not None:  # (windows, n, n) -> (N * windows, heads, n, n)
            bias = (bias + mask.unsqueeze(1)).expand(windows.shape[0], -1, -1, -1, -1)
            bias = bias.flatten(0, 1)
        # softmax(q k^T / sqrt(d) + bias) v written out, as Swin's and MONAI's own: with a float
        # mask, scaled_dot_product_attention's CPU path adds a "safe softmax" pass (all /
        # isneginf / where over every score map) that these finite biases never need
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1)) + bias
        attn = scores.softmax(dim=-1)
        if self.training and self.dropout:
            attn = F.dropout(attn, self.dropout)
        a = torch.matmul(attn, v).transpose(1, 2).clone(memory_format=torch.contiguous_format)
        a = a.flatten(-2).unflatten(0, windows.shape[:2])
        return self.proj_drop(self.proj(a))


class SwinLayer(nn.Module):
    """A Swin layer on a grid of tokens, ``(N, C, *S) -> (N, C, *S)``: ``t + attn(norm1(t))``
    over (shifted) windows, then ``t + mlp(norm2(t))``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: SwinParams):
        super().__init__()
        p = params
        self.dims = dims
        self.window = p.window_used()
        self.shift = p.shift
        self.norm1 = nn.LayerNorm(out_channels)
        self.attn = WindowAttention(out_channels, dims, p, p.heads)
        self.norm2 = nn.LayerNorm(out_channels)
        self.mlp = MLP(out_channels, p.mlp, p.act, p.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.movedim(1, -1)  # (N, *S, C), a view
        t = t + self.attend(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return t.movedim(-1, 1)

    def attend(self, t: torch.Tensor) -> torch.Tensor:
        """Window attention on ``(N, *S, C)``: pad to whole windows, shift, attend, undo."""
        w, s, dims = self.window, self.shift, self.dims
        sizes = [t.shape[1 + k] for k in range(dims)]
        # windows per axis first, the padded size from them: grid * w is then the map's size
        # by construction (no modulo to prove), so torch.export keeps every size symbolic
        grid = [(n + w - 1) // w for n in sizes]
        padded = [g * w for g in grid]
        t = F.pad(t, _pad_spec([p - n for p, n in zip(padded, sizes)]))
        axes = tuple(range(1, dims + 1))
        mask = None
        if s:
            t = torch.roll(t, shifts=(-s,) * dims, dims=axes)
            mask = self.shift_mask(padded, grid, t.device)
        out = _merge(self.attn(_partition(t, grid, w, dims), mask), grid, w, dims)
        if s:
            out = torch.roll(out, shifts=(s,) * dims, dims=axes)
        return out[(slice(None),) + tuple(slice(0, n) for n in sizes)]

    def shift_mask(self, padded: list, grid: list, device: torch.device) -> torch.Tensor:
        """``(windows, n, n)``: 0 between tokens of one region of the shifted map, else -100
        (the regions: along each axis, the last ``shift`` tokens, the ``window - shift``
        before them, and the rest)."""
        w, s, dims = self.window, self.shift, self.dims
        region = torch.zeros((), dtype=torch.long, device=device)
        for k, n in enumerate(padded):
            pos = torch.arange(n, device=device)
            along = (pos >= n - w).long() + (pos >= n - s).long()
            region = region * 3 + along.reshape([-1 if j == k else 1 for j in range(dims)])
        ids = _partition(region.unsqueeze(0).unsqueeze(-1), grid, w, dims)[0, :, :, 0]
        different = ids.unsqueeze(1) != ids.unsqueeze(2)
        return torch.zeros(different.shape, device=device).masked_fill(different, MASKED)


def _pad_spec(pads: list) -> list:
    """``F.pad``'s list for a channels-last map ``(N, *S, C)``: nothing on C, then each
    spatial axis from the last, zeros after the map."""
    return [0, 0] + [v for pad in reversed(pads) for v in (0, pad)]


# a 2 x 2 (x 2) cell's tokens in concatenation order (offsets per spatial axis), MONAI's
_MERGE_ORDER = {
    (2, "merging"): ((0, 0), (1, 0), (0, 1), (1, 1)),
    (3, "merging"): ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1),
                     (1, 1, 1)),
    (3, "mergingv2"): tuple(itertools.product(range(2), repeat=3)),
}


class PatchMerging(nn.Module):
    """``(N, C, *S) -> (N, C_out, *ceil(S / 2))``: each cell's 2^d tokens concatenated,
    LayerNorm, linear projection without bias."""

    def __init__(self, dims: int, in_channels: int, out_channels: int,
                 params: PatchMergeParams):
        super().__init__()
        self.dims = dims
        self.offsets = _MERGE_ORDER[(dims, params.order)]
        features = 2 ** dims * in_channels
        self.norm = nn.LayerNorm(features)
        self.reduction = nn.Linear(features, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.movedim(1, -1)
        # padded to whole cells, each axis split into (cells, 2): the token at offset o of a
        # cell is index o of its pair (a reshape whose sizes torch.export keeps symbolic,
        # where stepped slices of an odd-or-even size would be guarded)
        cells = [(t.shape[1 + k] + 1) // 2 for k in range(self.dims)]
        t = F.pad(t, _pad_spec([2 * c - t.shape[1 + k] for k, c in enumerate(cells)]))
        t = t.reshape(t.shape[0], *[v for c in cells for v in (c, 2)], t.shape[-1])
        cells = [t[(slice(None),) + tuple(v for o in offset for v in (slice(None), o))]
                 for offset in self.offsets]
        return self.reduction(self.norm(torch.cat(cells, -1))).movedim(-1, 1)

