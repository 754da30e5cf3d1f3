"""IR -> the torch submodules a compiled spec owns, named as the IR names them."""
from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from ..blocks.conv import make_resampler
from ..blocks.heads import make_cgm
from ..blocks.layers import CONV, make_act, make_norm
from ..blocks.registry import get_block, parse_block_config
from ..graph.ir import IREdge, IRGraph, IRHead, IRNode

__all__ = ["build_modules", "edge_module", "node_module", "head_module"]


def build_modules(ir: IRGraph) -> "OrderedDict[str, nn.Module]":
    """All submodules in a deterministic order (so a seed fixes every weight)."""
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    for node in ir.nodes():
        if node.is_input:
            continue
        for e in ir.in_edges(node.id):
            m = edge_module(ir.dims, e)
            if m is not None:
                mods[e.name] = m
        mods[node.name] = node_module(ir.dims, node)
    for head in ir.heads.values():
        mods[head.name] = head_module(ir.dims, head)
    return mods


def node_module(dims: int, node: IRNode) -> nn.Module:
    params = parse_block_config(node.block)
    builder = get_block(params.type).load_builder()
    return builder(dims, node.in_channels, node.out_channels, params)


def edge_module(dims: int, e: IREdge) -> nn.Module | None:
    """Parametric resampling (+ its norm/act) and the edge conv; None if the edge has neither.

    Param-free resampling (pooling, interpolation) is emitted as a function call instead.
    """
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    channels = e.in_channels
    r = e.resample
    if r is not None:
        if r.has_params:
            parts["resample"] = make_resampler(dims, r.op, channels, e.resampled_channels,
                                               r.factor, r.kernel, r.mode, r.bias)
            channels = e.resampled_channels
        for name, layer in (("norm", make_norm(r.norm, dims, channels)), ("act", make_act(r.act))):
            if layer is not None:
                parts[name] = layer
    if e.conv_width is not None:
        params = parse_block_config(e.conv_block or {})
        parts["conv"] = get_block(params.type).load_builder()(dims, channels, e.conv_width, params)
    return nn.Sequential(parts) if parts else None


def head_module(dims: int, head: IRHead) -> nn.Module:
    if head.type == "cgm":
        return make_cgm(dims, head.in_channels, head.settings)
    return CONV[dims](head.in_channels, head.out_channels, head.kernel, padding=head.kernel // 2,
                      bias=head.bias)
