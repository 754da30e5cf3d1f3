"""Vision-transformer blocks on grid tensors ``(N, C, *spatial)``: the torch side of ``type:
patch_embed`` and ``type: transformer`` (settings: :mod:`skipgraph.blocks.transformer_params`).

Tokens stay a grid between nodes: a layer flattens the spatial axes into a sequence
``(N, L, C)`` (a view), runs attention and the MLP, and views the result back, so no node pays
for a copy and every edge family reads tokens as a feature map. Nothing here branches on data:
the compiled module stays one straight-line fx graph (``torch.fx.symbolic_trace`` traces it).

Dosovitskiy et al., ICLR 2021 (ViT); MONAI's ``PatchEmbeddingBlock``, ``TransformerBlock``,
``SABlock`` and ``MLPBlock`` (their weight layouts: ``qkv`` splits as (3, heads, C / heads)).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import CONV, make_act
from .transformer_params import PatchEmbedParams, TokenNormParams, TransformerParams

__all__ = ["PatchEmbedding", "SelfAttention", "MLP", "TransformerLayer", "TokenNorm"]


def resize_table(table: torch.Tensor, tokens: torch.Tensor, mode: str) -> torch.Tensor:
    """``table`` ``(1, C, *grid)`` resized to the spatial size of ``tokens`` ``(N, C, *S)``
    (``mode`` interpolation); the table itself where the sizes agree, since resizing to the
    same size copies each value (weights 1 and 0); always resized in an ONNX export or a jit
    trace, whose graph must serve other sizes. One leaf in fx graphs (``torch.fx.wrap``),
    so the size test runs at call time and the traced graph has no data-dependent branch."""
    exporting = torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
    if table.shape[2:] == tokens.shape[2:] and not exporting:  # an export keeps sizes dynamic
        return table
    return F.interpolate(table, size=tokens.shape[2:], mode=mode)


torch.fx.wrap("resize_table")


class PatchEmbedding(nn.Module):
    """``(N, C_in, *S) -> (N, C, *S / patch)``: patch conv, + position embedding, dropout.

    An input of another size than ``grid x patch`` gets the table interpolated to its token
    grid (MONAI's UNETR refuses such inputs; timm's ViT interpolates with ``dynamic_img_size``)."""

    def __init__(self, dims: int, in_channels: int, out_channels: int,
                 params: PatchEmbedParams):
        super().__init__()
        patch = params.patch()
        self.proj = CONV[dims](in_channels, out_channels, patch, stride=patch)
        grid = params.grid_for(dims)
        self.grid = grid  # plain values (tuple / None, str): `skipgraph eject` copies them
        self.mode = "bicubic" if dims == 2 else "trilinear"
        self.position = None if grid is None else \
            nn.Parameter(torch.zeros(1, math.prod(grid), out_channels))
        if self.position is not None:
            nn.init.trunc_normal_(self.position, std=0.02, a=-2.0, b=2.0)
        self.dropout = nn.Dropout(params.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.position is not None:
            x = x + self.positions(x)
        return self.dropout(x)

    def positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """The position embedding as a map ``(1, C, *grid)``, resized to the token map's size
        (bicubic in 2D, trilinear in 3D: exactly the table at the declared grid, where the
        interpolation weights are 1 and 0; other sizes as timm's ``dynamic_img_size``)."""
        table = self.position.transpose(1, 2).unflatten(2, self.grid)
        return resize_table(table, tokens, self.mode)


class SelfAttention(nn.Module):
    """Multi-head self-attention over a sequence ``(N, L, C) -> (N, L, C)``: one ``qkv``
    linear (C -> 3C, split as (3, heads, C / heads)), scaled dot-product attention, ``out_proj``
    (C -> C) and dropout."""

    def __init__(self, channels: int, heads: int, qkv_bias: bool, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.out_proj = nn.Linear(channels, channels)
        self.drop_output = nn.Dropout(dropout)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(t).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.drop_output(self.out_proj(a.transpose(1, 2).flatten(2)))


class MLP(nn.Module):
    """``Linear(C, hidden) -> act -> dropout -> Linear(hidden, C) -> dropout`` on each token."""

    def __init__(self, channels: int, hidden: int, act: object, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(channels, hidden)
        self.act = make_act(act) or nn.Identity()
        self.drop1 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, channels)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.linear2(self.drop1(self.act(self.linear1(t)))))


class TransformerLayer(nn.Module):
    """A pre-norm ViT encoder layer on a grid of tokens, ``(N, C, *S) -> (N, C, *S)``:
    ``t + attn(norm1(t))``, then ``t + mlp(norm2(t))``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int,
                 params: TransformerParams):
        super().__init__()
        p = params
        self.norm1 = nn.LayerNorm(out_channels)
        self.attn = SelfAttention(out_channels, p.heads, p.qkv_bias, p.dropout)
        self.norm2 = nn.LayerNorm(out_channels)
        self.mlp = MLP(out_channels, p.mlp, p.act, p.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.flatten(2).transpose(1, 2)  # (N, L, C), a view
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape_as(x)


class TokenNorm(nn.Module):
    """``(N, C, *S) -> (N, C, *S)``: a LayerNorm over each token's ``C`` features."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: TokenNormParams):
        super().__init__()
        self.norm = nn.LayerNorm(out_channels, eps=params.eps, elementwise_affine=params.affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape_as(x)
