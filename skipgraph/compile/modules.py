"""IR -> the torch submodules a compiled spec owns, named as the IR names them."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch.nn as nn

from ..blocks.attention import AttentionGate
from ..blocks.layers import in_place_act, make_act, make_dropout, make_norm, output_free_backward
from ..blocks.registry import get_block
from ..heads import get_head
from ..resampling import get_resample
from ..graph.ir import IREdge, IRGraph, IRHead, IRNode

__all__ = ["build_modules", "edge_module", "node_module", "head_module", "tie_weights"]


def build_modules(ir: IRGraph, weights: bool = True) -> "OrderedDict[str, nn.Module]":
    """All submodules in a deterministic order (so a seed fixes every weight). Loop copies
    reuse (``module``) or tie to (``tied_to``) the first copy's submodule. ``weights=False``
    skips backbone weight files (a checkpoint brings its own weights)."""
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    stages: dict[str, nn.Module] = {}  # backbone stages, built a whole backbone at a time
    for node in ir.nodes():
        if node.is_input:
            continue
        if node.block.built_by_family:  # a backbone's stages: built together
            if node.id not in stages:
                from .backbone import backbone_stages
                stages.update(backbone_stages(ir, node.family, weights))
            mods[node.module_name] = stages[node.id]
            continue
        edges = ir.in_edges(node.id)
        for e in edges:
            _add(mods, e.module_name, e.tied_to, lambda e=e: edge_module(ir.dims, e))
            drop = make_dropout(ir.dims, e.dropout, e.dropout_spatial)
            if drop is not None:  # no weights: each copy of a looped edge has its own
                mods[e.drop_name] = drop
            if e.gate_by:
                g = next(x for x in edges if x.family == e.gate_by)
                mods[e.gate_name] = AttentionGate(ir.dims, g.out_channels, e.out_channels,
                                                  _gate_inter(e))
        _add(mods, node.module_name, node.tied_to, lambda n=node: node_module(ir.dims, n))
    for head in ir.heads.values():
        mods[head.name] = head_module(ir.dims, head)
    return mods


def _add(mods: "OrderedDict[str, nn.Module]", name: str, tied_to: str,
         make: Callable[[], nn.Module | None]) -> None:
    if name in mods:
        return  # shared with an earlier loop copy
    module = make()
    if module is None:
        return
    if tied_to:
        tie_weights(module, mods[tied_to])
    mods[name] = module


def _gate_inter(e: IREdge) -> int:
    return max(e.out_channels // 2, 1) if e.gate_inter == "half" else int(e.gate_inter)


_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def tie_weights(module: nn.Module, canonical: nn.Module) -> None:
    """Make ``module`` use ``canonical``'s weights, keeping its own normalisation layers."""
    for name, child in list(module.named_children()):
        if isinstance(child, _NORMS):
            continue
        if any(True for _ in child.parameters(recurse=False)):
            setattr(module, name, getattr(canonical, name))
        else:
            tie_weights(child, getattr(canonical, name))


def node_module(dims: int, node: IRNode) -> nn.Module:
    builder = get_block(node.block.type).load_builder()
    return builder(dims, node.in_channels, node.out_channels, node.block)


def edge_module(dims: int, e: IREdge) -> nn.Module | None:
    """[conv at source] -> parametric resampling (+ its norm/act) -> [conv at target]; None if
    the edge has none of them. Param-free resampling (pooling, interpolation) is emitted as a
    function call instead."""
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    channels = e.in_channels
    if e.conv_width is not None and e.conv_at == "source":
        parts["conv"] = _edge_conv(dims, e, channels)
        channels = e.conv_width
    r = e.resample
    if r is not None:
        if r.has_params:
            build = get_resample(r.op).load_builder()
            parts["resample"] = build(dims, channels, e.resampled_channels, r.factor, r.settings)
            channels = e.resampled_channels
        layers = {"norm": make_norm(r.norm, dims, channels), "act": make_act(r.act)}
        for name in ("norm", "act") if r.order == "cna" else ("act", "norm"):
            if layers[name] is not None:
                last = next(reversed(parts.values()), None)
                if name == "act" and last is not None and output_free_backward(last):
                    in_place_act(layers[name])  # on a conv's / norm's fresh output
                parts[name] = layers[name]
    if e.conv_width is not None and e.conv_at == "target":
        parts["conv"] = _edge_conv(dims, e, channels)
    return nn.Sequential(parts) if parts else None


def _edge_conv(dims: int, e: IREdge, channels: int) -> nn.Module:
    return get_block(e.conv_block.type).load_builder()(dims, channels, e.conv_width,
                                                        e.conv_block)


def head_module(dims: int, head: IRHead) -> nn.Module:
    return get_head(head.type).load_builder().module(dims, head)
