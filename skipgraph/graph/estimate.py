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
from typing import Any, Sequence

from ..fields.axes import on_axes
from ..errors import Diagnostic, SpecError
from .contract import padded_shape
from .ir import IRGraph

__all__ = ["Budget", "estimate_params", "estimate_node_params", "estimate_edge_params", "estimate_gate_params",
           "estimate_activation_bytes", "estimate_training_bytes", "check_budget"]


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
    """Parameters of the model the IR compiles to, from the block, op and head settings:
    weights, biases and the learnable parts of norms and activations where a block type
    counts them (the conv-family blocks, edge convs, resampling ops and seg heads are exact;
    tests/graph/test_estimate_exact.py compares every zoo spec with the built model)."""
    return sum(estimate_node_params(ir).values())


def estimate_node_params(ir: IRGraph) -> dict[str, int]:
    """:func:`estimate_params` per node (its block plus the resampling ops and edge convs of
    its incoming edges) and per head (keyed ``"head <id>"``), as the rows of ``build``'s
    summary group them. A node whose weights are another's (loop copies) has 0."""
    out: dict[str, int] = {}
    for node in ir.nodes():
        if node.is_input or node.module:
            out[node.id] = 0
            continue
        # a loop copy (tied_to): its norms are its own, the rest is the first copy's
        block = node.block.estimate_norm_params if node.tied_to else node.block.estimate_params
        total = block(ir.dims, node.in_channels, node.out_channels)
        edges = ir.in_edges(node.id)
        for e in edges:
            total += estimate_edge_params(ir, e, norms_only=bool(e.tied_to))
            total += estimate_gate_params(ir, e)
        out[node.id] = total
    for head in ir.heads.values():
        out[f"head {head.id}"] = head.settings.estimate_params(ir.dims, head.in_channels)
    return out


def estimate_edge_params(ir: IRGraph, e: Any, norms_only: bool = False) -> int:
    """The parameters on one edge (an :class:`~skipgraph.graph.ir.IREdge`), in the order
    :func:`skipgraph.compile.modules.edge_module` builds them: an edge conv at the source,
    the resampling op with its norm and act, an edge conv at the target (each conv counted by
    its block, on the channels it sees). ``norms_only``: only their norms (a loop copy's
    edge whose other weights are tied to the first copy's)."""
    from ..blocks.options import layer_params
    total, channels = 0, e.in_channels
    if e.conv_width and e.conv_at == "source":
        total += _edge_conv_params(ir, e, channels, norms_only)
        channels = e.conv_width
    r = e.resample
    if r is not None:
        if r.has_params:
            if not norms_only:
                total += r.settings.estimate_params(ir.dims, channels, e.resampled_channels,
                                                    r.factor)
            channels = e.resampled_channels
        total += layer_params(r.norm, "none" if norms_only else r.act, channels)
    if e.conv_width and e.conv_at == "target":
        total += _edge_conv_params(ir, e, channels, norms_only)
    return total


def estimate_gate_params(ir: IRGraph, e: Any) -> int:
    """The attention gate on edge ``e`` (0 without one): its 1x1 convs (with biases) and
    batch norms (:class:`~skipgraph.blocks.attention.AttentionGate`), gated by the edge of
    the family ``e.gate_by`` into the same node."""
    if not e.gate_by:
        return 0
    gating = next(x for x in ir.in_edges(e.dst) if x.family == e.gate_by)
    gate_channels, skip_channels = gating.out_channels, e.out_channels
    inter = max(e.out_channels // 2, 1) if e.gate_inter == "half" else int(e.gate_inter)
    w_g = gate_channels * inter + inter + 2 * inter  # conv + bias, batch norm
    w_x = skip_channels * inter + inter + 2 * inter
    psi = inter + 1 + 2  # to one channel
    return w_g + w_x + psi


def _edge_conv_params(ir: IRGraph, e: Any, channels: int, norms_only: bool) -> int:
    if e.conv_block is None:
        return 0 if norms_only else (3 ** ir.dims) * channels * e.conv_width
    count = e.conv_block.estimate_norm_params if norms_only else e.conv_block.estimate_params
    return count(ir.dims, channels, e.conv_width)


def estimate_activation_bytes(ir: IRGraph, shape: Sequence[int]) -> int:
    """float32 bytes of every node output for one forward pass on ``shape`` (N, C, *spatial)."""
    n, spatial = shape[0], shape[2:]
    total = 0
    for node in ir.nodes():
        size = _level_size(ir, spatial, node.level)
        total += 4 * n * (node.out_channels * size + _work(node, size))
    return total


def _work(node: Any, size: int) -> int:
    """Floats per sample a node's block holds besides its output (an attention map)."""
    if node.is_input or node.block is None:
        return 0
    return node.block.work_floats(size, node.in_channels, node.out_channels)


def _level_size(ir: IRGraph, spatial: Sequence[int], level: int) -> int:
    """Pixels (voxels) of one channel on ``level`` for an input of size ``spatial``."""
    scale = on_axes(ir.scale(level), len(spatial))
    return math.prod(max(s // f, 1) for s, f in zip(spatial, scale))


def _units(cfg: Any) -> tuple[int, bool]:
    """(conv units, normalised?) of a block's settings model (None: one plain conv): what its
    backward pass keeps per unit."""
    if cfg is None:
        return 1, False
    units = getattr(cfg, "convs", None)
    if units is None:  # recurrent units: layers x (steps + 1) convolutions, plus a projection
        units = getattr(cfg, "layers", 2) * (getattr(cfg, "steps", 0) + 1) + 1
    repeats = getattr(cfg, "units", 1)  # residual units in a row (`resblock`)
    units *= repeats if isinstance(repeats, int) else 1
    norm = getattr(cfg, "norm", "none")
    name = norm if isinstance(norm, str) else norm.get("type", "none")
    return units, name != "none"


def estimate_training_bytes(ir: IRGraph, shape: Sequence[int]) -> int:
    """float32 bytes one training step holds at its peak for an input ``shape`` (N, C,
    *spatial): the activations autograd keeps for the backward pass, plus the weights, their
    gradients and Adam's two moments (16 bytes per parameter).

    Kept per node: its (concatenated) input, then for each conv unit the conv output and, with
    a norm, the norm output (the activation runs in place); per resampling edge its output; per edge conv the same as a node's unit; per head its
    logits and probabilities. Spatial sizes are the padded ones (``input: {pad: true}``).
    bench/bench_estimate.py compares it with measured peaks for the zoo (docs/performance.md).
    """
    n, spatial = shape[0], padded_shape(ir, shape)[2:]

    def size(level: int) -> int:
        return _level_size(ir, spatial, level)

    floats = math.prod(shape[1:]) * 2  # per image: the input and the target, then the layers
    for node in ir.nodes():
        if node.is_input:
            continue
        units, normed = _units(node.block)
        # a strided block takes its inputs at `in_level`, a level above its output
        floats += size(node.in_level) * node.in_channels + \
            size(node.level) * units * node.out_channels * (2 if normed else 1) + \
            _work(node, size(node.level))
        for e in ir.in_edges(node.id):
            src_level = ir.node(e.src).level
            if e.resample is not None:
                floats += size(node.in_level) * e.resampled_channels
            if e.conv_width:
                at = src_level if e.conv_at == "source" else node.in_level
                conv_units, conv_norm = _units(e.conv_block)
                floats += size(at) * e.conv_width * conv_units * (2 if conv_norm else 1)
    for head in ir.heads.values():
        floats += 2 * size(0 if head.full_size else head.level) * head.out_channels
    return 4 * n * floats + 16 * estimate_params(ir)


def check_budget(ir: IRGraph, budget: Budget | None = None,
                 input_shape: Sequence[int] | None = None, training: bool = False) -> None:
    """Raise SpecError (``resource-limit``) if the model would exceed the budget: a forward
    pass on ``input_shape``, or with ``training`` a training step (activations kept for the
    backward pass, gradients, optimizer state)."""
    budget = budget or Budget()
    problems = []
    params = estimate_params(ir)
    if params > budget.params:
        problems.append(Diagnostic(
            "resource-limit", f"{ir.name} would have about {params:.3g} parameters "
            f"({4 * params / 1e9:.3g} GB in float32), over the budget of {budget.params:.3g}",
            hint="check the widths and depth, or raise SKIPGRAPH_MAX_PARAMS"))
    if input_shape is not None:
        act = (estimate_training_bytes if training else estimate_activation_bytes)(
            ir, input_shape)
        what = ("a training step", "of activations, weights, gradients and optimizer state") \
            if training else ("a forward pass", "of activations")
        if act > budget.activation_bytes:
            problems.append(Diagnostic(
                "resource-limit", f"{what[0]} on {tuple(input_shape)} needs about "
                f"{act / 1e9:.3g} GB {what[1]}, over the budget of "
                f"{budget.activation_bytes / 1e9:.3g} GB",
                hint=("use a smaller --crop or --batch" if training else "use a smaller input")
                + ", or raise SKIPGRAPH_MAX_ACTIVATION_GB"))
    if problems:
        raise SpecError(problems)
