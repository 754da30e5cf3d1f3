"""Dynamic dimensions for export: any batch; spatial sizes any multiple (>= 2) of the total
stride, or any size from two strides on for specs that pad their input."""
from __future__ import annotations

import torch
from torch.export import Dim

from ..graph.contract import per_axis, total_stride
from ..graph.ir import IRGraph

__all__ = ["example_input", "example_blocks", "dynamic_shapes", "stride"]

_MAX_BLOCKS = 256  # spatial size up to 256 strides


def stride(ir: IRGraph) -> int | tuple[int, ...]:
    """The total stride: an int, or one per axis on an anisotropic grid."""
    return total_stride(ir)


def example_input(ir: IRGraph, batch: int = 2, blocks: int | None = None) -> torch.Tensor:
    """``(batch, C_in, *spatial)``: ``blocks`` total strides per axis, by default
    :func:`example_blocks` (2, or more where a block asks for larger maps)."""
    blocks = example_blocks(ir) if blocks is None else blocks
    return torch.randn(batch, ir.in_channels,
                       *[s * blocks for s in per_axis(stride(ir), ir.dims)])


def example_blocks(ir: IRGraph) -> int:
    """Total strides per axis of the size exports trace at: 2, or enough that every node's
    map is at least its block's ``export_side()`` on each axis (Swin: two windows), since
    torch.export specialises a size that is 1 in the traced example."""
    total = per_axis(stride(ir), ir.dims)
    blocks = 2
    for node in ir.nodes():
        if node.is_input or node.block is None:
            continue
        side = node.block.export_side()
        for s, f in zip(total, per_axis(ir.scale(node.level), ir.dims)):
            # the node's side is blocks * s / f positions
            blocks = max(blocks, -(-side * f // s))
    return blocks


def dynamic_shapes(ir: IRGraph) -> dict:
    """Any batch; spatial sizes any multiple (>= 2) of the total stride, or for a spec with
    ``input: {pad: true}`` any size from 2 strides on (the module pads it)."""
    axes = {0: Dim("batch", min=1, max=1024)}
    for k, (name, s) in enumerate(zip("dhw"[-ir.dims:], per_axis(stride(ir), ir.dims))):
        if ir.pad_input:
            axes[2 + k] = Dim(name, min=2 * s, max=s * _MAX_BLOCKS)
            continue
        # at least 2 strides: size-1 maps would specialise the exported graph
        axes[2 + k] = s * Dim(f"{name}_blocks", min=2, max=_MAX_BLOCKS)
    return {"x": axes}
