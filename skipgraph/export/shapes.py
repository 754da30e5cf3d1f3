"""Dynamic dimensions for export: any batch; spatial sizes any multiple (>= 2) of the total
stride."""
from __future__ import annotations

import torch
from torch.export import Dim

from ..graph.contract import total_stride
from ..graph.ir import IRGraph

__all__ = ["example_input", "dynamic_shapes", "stride"]

_MAX_BLOCKS = 256  # spatial size up to 256 strides


def stride(ir: IRGraph) -> int:
    return total_stride(ir)


def example_input(ir: IRGraph, batch: int = 2, blocks: int = 2) -> torch.Tensor:
    return torch.randn(batch, ir.in_channels, *[stride(ir) * blocks] * ir.dims)


def dynamic_shapes(ir: IRGraph) -> dict:
    s = stride(ir)
    axes = {0: Dim("batch", min=1, max=1024)}
    for k, name in enumerate("dhw"[-ir.dims:]):
        # at least 2 strides: size-1 maps would specialise the exported graph
        axes[2 + k] = s * Dim(f"{name}_blocks", min=2, max=_MAX_BLOCKS)
    return {"x": axes}
