"""Settings of ``position_attention``, a position attention block (torch-free; its torch
class is :class:`skipgraph.blocks.position.PositionAttention`).

Fan, Wang, Chen, Wang, Xia, Tian. MA-Net: A Multi-Scale Attention Network for Liver and Tumor
Segmentation, IEEE Access 2020 (its Position-wise Attention Block, PAB), as
segmentation_models_pytorch 0.6 implements it (``decoders/manet/decoder.py``, ``PABBlock``);
Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019 (the position attention
module it derives from).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..fields.axes import KernelSize, volume
from .builtin import check_odd_kernel
from .registry import BlockParams, register_block

__all__ = ["PositionAttentionParams"]


class PositionAttentionParams(BlockParams):
    """Self-attention between all positions of a map, added to it, then a conv:
    ``y = out(x + A(x))``. Queries and keys are 1x1 convs of ``x`` to ``key_channels``, the
    values a ``kernel`` conv keeping the input channels; the map of query-key dot products
    (positions x positions per sample) goes through a softmax and weighs the values.
    ``(N, C_in, *S) -> (N, width, *S)`` in 2D and 3D (positions: every voxel). Children
    ``query``, ``key``, ``value``, ``out`` (all with bias).

    smp's MAnet (``softmax: map``, ``transpose: false``, the defaults) normalises the whole
    positions x positions map of a sample at once (``view(batch, -1)`` then a softmax over it),
    not each query's row, and reshapes the attended values, laid out (N, positions, C), to
    (N, C, *S) as they lie in memory. ``softmax: keys`` and ``transpose: true`` give DANet's
    position attention (without its learned residual scale). The map holds positions^2 values
    per sample: meant for the coarsest level (MAnet's bottom, 1/32 of the input)."""

    type: Literal["position_attention"] = "position_attention"
    """Self-attention over all positions, added to the input, then a conv (MA-Net's PAB)."""
    key_channels: int = Field(64, ge=1, le=1 << 20)
    """Channels of the query and key 1x1 convs (smp's `decoder_pab_channels`)."""
    kernel: KernelSize = 3
    """Kernel of the value conv and of the output conv (odd; one per axis or one for all)."""
    softmax: Literal["map", "keys"] = "map"
    """`map`: one softmax over the whole positions x positions map of each sample (smp's
    MAnet, the paper's code); `keys`: over the keys of each query position (DANet)."""
    transpose: bool = False
    """False: the attended values (N, positions, C) are reshaped to (N, C, *S) without
    transposing, which mixes positions and channels as smp's MAnet does; true: transposed
    back first, so each position keeps its own channels (DANet)."""

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        k = volume(self.kernel, dims)
        return (2 * (in_channels + 1) * self.key_channels + (k * in_channels + 1) * in_channels
                + (k * in_channels + 1) * out_channels)

    def work_floats(self, positions: int, in_channels: int, out_channels: int) -> int:
        # the query-key scores and their softmax, both positions x positions (kept for the
        # backward pass), and the attended values
        return 2 * positions * positions + positions * in_channels

    def note(self) -> str:
        return f"{self.key_channels} keys"


register_block("position_attention", PositionAttentionParams,
               "skipgraph.blocks.position:PositionAttention",
               "self-attention over all positions + residual, then a conv: MA-Net's PAB")
