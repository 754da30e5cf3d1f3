"""Resource guard: estimate parameters and activation memory from the IR, before allocating.

A spec with ``depth: 40`` or absurd widths must fail fast with a clear message instead of
exhausting memory. The limits are a :class:`Budget` (defaults generous enough for every real
U-Net-family model; change them per call or with ``SKIPGRAPH_MAX_PARAMS`` /
``SKIPGRAPH_MAX_ACTIVATION_GB``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import Diagnostic, SpecError
from .ir import IRGraph

__all__ = ["Budget", "estimate_params", "estimate_activation_bytes", "check_budget"]


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Budget:
    params: float = field(default_factory=lambda: _env_float("SKIPGRAPH_MAX_PARAMS", 2e9))
    activation_bytes: float = field(default_factory=lambda: 1e9 * _env_float(
        "SKIPGRAPH_MAX_ACTIVATION_GB", 64.0))


def estimate_params(ir: IRGraph) -> int:
    total = 0
    for node in ir.nodes():
        if node.is_input or node.tied_to or node.module:
            continue
        total += node.block.estimate_params(ir.dims, node.in_channels,
                                                                node.out_channels)
        for e in ir.in_edges(node.id):
            if e.resample is not None:
                total += e.resample.settings.estimate_params(
                    ir.dims, e.in_channels, e.resampled_channels, e.resample.factor)
            if e.conv_width:
                total += (3 ** ir.dims) * e.in_channels * e.conv_width
    for head in ir.heads.values():
        total += head.settings.estimate_params(ir.dims, head.in_channels)
    return total


def estimate_activation_bytes(ir: IRGraph, shape: Sequence[int]) -> int:
    """float32 bytes of every node output for one forward pass on ``shape`` (N, C, *spatial)."""
    n, spatial = shape[0], shape[2:]
    total = 0
    for node in ir.nodes():
        size = math.prod(max(s // 2 ** node.level, 1) for s in spatial)
        total += 4 * n * node.out_channels * size
    return total


def check_budget(ir: IRGraph, budget: Budget | None = None,
                 input_shape: Sequence[int] | None = None) -> None:
    """Raise SpecError (``resource-limit``) if the model would exceed the budget."""
    budget = budget or Budget()
    problems = []
    params = estimate_params(ir)
    if params > budget.params:
        problems.append(Diagnostic(
            "resource-limit", f"{ir.name} would have about {params:.3g} parameters "
            f"({4 * params / 1e9:.3g} GB in float32), over the budget of {budget.params:.3g}",
            hint="check the widths and depth, or raise SKIPGRAPH_MAX_PARAMS"))
    if input_shape is not None:
        act = estimate_activation_bytes(ir, input_shape)
        if act > budget.activation_bytes:
            problems.append(Diagnostic(
                "resource-limit", f"a forward pass on {tuple(input_shape)} needs about "
                f"{act / 1e9:.3g} GB of activations, over the budget of "
                f"{budget.activation_bytes / 1e9:.3g} GB",
                hint="use a smaller input, or raise SKIPGRAPH_MAX_ACTIVATION_GB"))
    if problems:
        raise SpecError(problems)
