"""What the interactive page shows on hover and on a click, read from the IR (torch-free).

Figures come from one of two places, never computed here twice:

- :class:`Figures` from a compiled module (``compile.summary``: exact parameters, output shapes
  from shape propagation, FLOPs per submodule from torch's flop counter; the pruned counts from
  ``model.prune``); the ``view`` command makes them;
- without them (``render -o x.html``, torch-free) the IR's own estimate
  (:func:`~skipgraph.graph.estimate.estimate_node_params`: weights, biases and norms counted
  from the settings, exact for the built-in blocks, approximate for others) and the
  output shapes the levels give; no FLOPs.

Everything is keyed by what the SVG calls an element: a node's submodule name (``X0_1``), an
edge's ``SRC->DST`` names, a head's ``out_<head module>``, as :func:`skipgraph.render.draw`
writes them; loops are read in the folded view the drawing shows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..graph.contract import padded_shape
from ..graph.estimate import (estimate_edge_params, estimate_gate_params, estimate_node_params,
                              estimate_params)
from ..graph.ir import IRGraph
from ..render.loops import folded_view
from ..spec.axes import axes_text, on_axes

__all__ = ["Figures", "page_facts", "default_input_shape"]


@dataclass
class Figures:
    """Exact figures of a compiled module for an input shape (rows as in ``build``'s summary:
    node ids and ``"head <id>"``; modules by submodule name)."""

    params: int
    row_params: dict[str, int]
    module_params: dict[str, int]
    row_shapes: dict[str, list[int]] = field(default_factory=dict)
    row_flops: dict[str, int] = field(default_factory=dict)
    module_flops: dict[str, int] = field(default_factory=dict)
    flops: int | None = None
    pruned_params: dict[str, int] = field(default_factory=dict)  # head id -> after pruning


def default_input_shape(ir: IRGraph, side: int | None = None) -> list[int]:
    """``1 x C x S x S[ x S]``: S = 256 in 2D, 64 in 3D, raised to a multiple of the total
    stride per axis."""
    side = side or (256 if ir.dims == 2 else 64)
    stride = on_axes(ir.scale(ir.max_level), ir.dims)
    return [1, ir.in_channels] + [math.ceil(side / s) * s for s in stride]


def _shape(ir: IRGraph, shape: Sequence[int], level: int, channels: int) -> list[int]:
    spatial = padded_shape(ir, shape)[2:]
    scale = on_axes(ir.scale(level), ir.dims)
    return [shape[0], channels] + [max(s // f, 1) for s, f in zip(spatial, scale)]


def _settings(model: Any) -> dict[str, Any]:
    if model is None or not hasattr(model, "model_dump"):
        return {}
    return {k: v for k, v in model.model_dump(by_alias=True, exclude_none=True).items()
            if k != "type"}


def page_facts(ir: IRGraph, input_shape: Sequence[int] | None,
               figures: Figures | None = None) -> dict[str, Any]:
    """The page's data: ``nodes``, ``edges``, ``heads`` (keyed by SVG element title) and
    ``totals``. Each head lists what pruning to it greys (``removed``: node and head titles,
    ``removed_edges``) and the parameters left (``pruned_params``; only segmentation heads
    can be pruned to)."""
    view = folded_view(ir)
    est = estimate_node_params(ir) if figures is None else {}
    rows = figures.row_params if figures else est
    shape_ok = input_shape is not None and len(input_shape) == ir.dims + 2
    nodes: dict[str, dict[str, Any]] = {}
    for node in view.nodes():
        shape = (figures.row_shapes.get(node.id) if figures and figures.row_shapes else None)
        if shape is None and shape_ok:
            shape = _shape(ir, input_shape, node.level, node.out_channels or node.width)
        scale = ir.scale(node.level)
        nodes[node.name] = {
            "id": node.id, "level": node.level,
            "resolution": "full" if not node.level else f"1/{axes_text(scale)}",
            "in_channels": node.in_channels, "out_channels": node.out_channels,
            "block": node.block.type if node.block is not None else "input",
            "note": node.block.note() if node.block is not None else "",
            "settings": _settings(node.block), "merge": node.merge,
            "family": node.family, "loop": node.loop,
            "params": rows.get(node.id), "shape": shape,
            "flops": figures.row_flops.get(node.id) if figures else None,
        }
    edges: dict[str, dict[str, Any]] = {}
    for e in view.edges():
        src, dst = view.node(e.src), view.node(e.dst)
        names = [e.module_name] + ([e.gate_name] if e.gate_by else [])
        if figures:
            params = sum(figures.module_params.get(n, 0) for n in names)
            flops = sum(figures.module_flops.get(n, 0) for n in names) \
                if figures.module_flops else None
        else:
            params, flops = estimate_edge_params(ir, e) + estimate_gate_params(ir, e), None
        edges[f"{src.name}->{dst.name}"] = {
            "family": e.family, "kind": e.kind, "src": e.src, "dst": e.dst,
            "term": IRGraph._edge_term(e), "in_channels": e.in_channels,
            "out_channels": e.out_channels, "level": f"{src.level} -> {dst.level}",
            "gate_by": e.gate_by, "params": params, "flops": flops,
            "shape": (_shape(ir, input_shape, dst.in_level, e.out_channels)
                      if shape_ok and e.out_channels else None),
        }
    heads: dict[str, dict[str, Any]] = {}
    for head in view.heads.values():
        node = view.node(head.node)
        key = f"head {head.id}"
        heads[f"out_{head.name}"] = head_facts = {
            "id": head.id, "node": head.node, "type": head.type, "level": head.level,
            "in_channels": head.in_channels, "out_channels": head.out_channels,
            "settings": _settings(head.settings), "pixelwise": head.pixelwise,
            "params": rows.get(key),
            "shape": (figures.row_shapes.get(key) if figures and figures.row_shapes else None)
            or (_shape(ir, input_shape, 0 if head.full_size else head.level,
                       head.out_channels) if shape_ok and head.pixelwise else None),
            "flops": figures.row_flops.get(key) if figures else None,
            "node_title": node.name, **_pruning(ir, view, head.id, figures),
        }
        edges[f"{node.name}->out_{head.name}"] = {  # the line to the head box: the head
            "family": head.family, "kind": "head", "src": head.node, "dst": f"head {head.id}",
            "term": head.settings.term(head.node, head.level), "level": f"{node.level}",
            "in_channels": head.in_channels, "out_channels": head.out_channels,
            "gate_by": head.gate or "", "params": head_facts["params"],
            "flops": head_facts["flops"], "shape": head_facts["shape"]}
    total = figures.params if figures else estimate_params(ir)
    return {"nodes": nodes, "edges": edges, "heads": heads, "exact": figures is not None,
            "totals": {"params": total, "flops": figures.flops if figures else None,
                       "input": list(input_shape) if input_shape else None}}


def _pruning(ir: IRGraph, view: IRGraph, head_id: str,
             figures: Figures | None) -> dict[str, Any]:
    """What pruning to ``head_id`` greys: the drawing's rule (:func:`render.draw`, nodes
    outside the needed heads' ancestors, edges into them, the other heads)."""
    if not ir.heads[head_id].pixelwise:
        return {"removed": [], "removed_edges": [], "pruned_params": None}
    needed = view.needed_heads([head_id])
    keep = view.ancestors(view.heads[h].node for h in needed)
    removed = [view.node(n).name for n in view.graph.nodes if n not in keep]
    removed += [f"out_{h.name}" for h in view.heads.values() if h.id not in needed]
    removed_edges = [f"{view.node(e.src).name}->{view.node(e.dst).name}" for e in view.edges()
                     if e.dst not in keep]
    removed_edges += [f"{view.node(h.node).name}->out_{h.name}" for h in view.heads.values()
                      if h.id not in needed]
    pruned = (figures.pruned_params.get(head_id) if figures
              else estimate_params(ir.subgraph([head_id])))
    return {"removed": removed, "removed_edges": removed_edges, "pruned_params": pruned}
