"""Per-node facts of a compiled module: parameters, output shapes, FLOPs (for ``build``)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.flop_counter import FlopCounterMode

from ..graph.ir import IRGraph
from ..graph.contract import padded_shape
from ..graph.validate import check_input_shape
from .module import SkipGraphModule

__all__ = ["NodeRow", "Summary", "summarize", "count_params", "count_buffers"]

# torch's flop counter tells modules apart with process-wide module hooks: a forward pass in
# another thread while one is counted (the `view` server answers edits in threads) would be
# charged to the wrong modules, so shapes and FLOPs are measured one model at a time
_MEASURING = threading.Lock()


@dataclass
class NodeRow:
    id: str
    level: int
    in_channels: int
    out_channels: int
    params: int
    output_shape: list[int] | None = None
    flops: int | None = None  # eval forward, with an input shape: its block and in-edges' ops


@dataclass
class Summary:
    name: str
    params: int
    buffers: int
    nodes: list[NodeRow]
    heads: list[str]
    flops: int | None = None
    output_shapes: dict[str, list[int]] = field(default_factory=dict)
    # per submodule (node block, edge op or gate, head): trainable parameters, and with an
    # input shape the FLOPs of its calls in one eval forward (a loop's shared module: all steps)
    module_params: dict[str, int] = field(default_factory=dict)
    module_flops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "params": self.params, "buffers": self.buffers,
            "nodes": [{k: v for k, v in vars(r).items() if k != "flops" or v is not None}
                      for r in self.nodes], "heads": self.heads,
        }
        if self.flops is not None:
            out["flops"] = self.flops
            out["output_shapes"] = self.output_shapes
        return out

    def format_table(self) -> str:
        rows = [("node", "level", "in", "out", "params", "output shape")]
        for r in self.nodes:
            shape = "x".join(map(str, r.output_shape)) if r.output_shape else "-"
            rows.append((r.id, str(r.level), str(r.in_channels), str(r.out_channels),
                         f"{r.params:,}", shape))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) if i in (1, 2, 3, 4) else c.ljust(w)
                           for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{self.name}: {self.params:,} trainable parameters, "
                     f"{self.buffers:,} buffer elements, heads: {', '.join(self.heads)}")
        if self.flops is not None:
            lines.append(f"FLOPs (eval forward): {self.flops:,}; outputs: "
                         + ", ".join(f"{k}: {'x'.join(map(str, v))}"
                                     for k, v in self.output_shapes.items()))
        return "\n".join(lines)


def count_params(module: nn.Module) -> int:
    """Trainable parameters; a tensor shared by several submodules counts once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_buffers(module: nn.Module) -> int:
    return sum(b.numel() for b in module.buffers())


def _row_modules(ir: IRGraph) -> dict[str, list[str]]:
    """The submodules each summary row owns: a node's block plus the modules on its incoming
    edges (attention gates included); a head (``"head <id>"``) its own."""
    rows: dict[str, list[str]] = {}
    for node in ir.nodes():
        edges = ir.in_edges(node.id)
        rows[node.id] = ([node.module_name] + [e.module_name for e in edges]
                         + [e.gate_name for e in edges if e.gate_by])
    for head in ir.heads.values():
        rows[f"head {head.id}"] = [head.name]
    return rows


def _owned_params(model: SkipGraphModule, ir: IRGraph) -> dict[str, int]:
    """Parameters per IR node (:func:`_row_modules`). A tensor shared by loop copies counts
    once, at its first use, so the rows add up to the model's total."""
    children = dict(model.named_children())
    seen: set[int] = set()

    def fresh(names: list[str]) -> int:
        total = 0
        for name in names:
            for p in (children[name].parameters() if name in children else ()):
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total

    return {row: fresh(names) for row, names in _row_modules(ir).items()}


def _module_flops(counter: FlopCounterMode, children: set[str]) -> dict[str, int]:
    """FLOPs per direct submodule from a counter's per-module table. Its keys are dotted
    module paths under root names (the module's class and its fx graph's): ``Root.X0_1``
    holds the submodule's total over its calls. A submodule found only as parts
    (``Root.X0_1.conv1``) gets the sum of its parts."""
    whole: dict[str, int] = {}
    parts: dict[str, int] = {}
    for key, ops in counter.get_flop_counts().items():
        path = key.split(".")
        if len(path) < 2 or path[1] not in children:
            continue
        flops = int(sum(ops.values()))
        if len(path) == 2:
            whole[path[1]] = max(whole.get(path[1], 0), flops)
        elif len(path) == 3:
            parts[path[1]] = parts.get(path[1], 0) + flops
    return {name: whole.get(name, parts.get(name, 0)) for name in set(whole) | set(parts)}


def summarize(model: SkipGraphModule, input_shape: Sequence[int] | None = None) -> Summary:
    ir = model.ir
    per = _owned_params(model, ir)
    rows = [NodeRow(n.id, n.level, n.in_channels, n.out_channels, per[n.id])
            for n in ir.nodes()]
    rows += [NodeRow(f"head {h.id}", ir.node(h.node).level, h.in_channels, h.out_channels,
                     per[f"head {h.id}"]) for h in ir.heads.values()]
    summary = Summary(ir.name, count_params(model), count_buffers(model), rows, list(ir.heads),
                      module_params={name: count_params(m) for name, m in model.named_children()})
    if input_shape is not None:
        _add_shapes_and_flops(model, summary, input_shape)
    return summary


def _add_shapes_and_flops(model: SkipGraphModule, summary: Summary,
                          input_shape: Sequence[int]) -> None:
    with _MEASURING:
        _measure(model, summary, input_shape)


def _measure(model: SkipGraphModule, summary: Summary, input_shape: Sequence[int]) -> None:
    ir = model.ir
    check_input_shape(ir, input_shape)
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(*input_shape)
        with torch.no_grad():
            gm = model.graph_module(training=True)
            # the layers run on the padded size (pad specs); heads are cropped back to it
            ShapeProp(gm).propagate(torch.zeros(*padded_shape(ir, input_shape)))
            shapes = {n.name: list(n.meta["tensor_meta"].shape) for n in gm.graph.nodes
                      if n.op == "call_module" and "tensor_meta" in n.meta}
            heads = model.run_graph(x, training=True)
            heads = heads if isinstance(heads, dict) else {model.heads[0]: heads}
            shapes.update({ir.heads[h].name: list(t.shape) for h, t in heads.items()})
            counter = FlopCounterMode(display=False)
            with counter:
                out = model(x)
    finally:
        model.train(was_training)
    for row in summary.nodes:
        if row.id == "input":
            row.output_shape = list(input_shape)
        elif row.id.startswith("head "):
            row.output_shape = shapes.get(ir.heads[row.id[5:]].name)
        elif ir.node(row.id).name in shapes:
            row.output_shape = shapes[ir.node(row.id).name]
    summary.flops = int(counter.get_total_flops())
    summary.module_flops = _module_flops(counter, {name for name, _ in model.named_children()})
    owned, counted = _row_modules(ir), set()
    for row in summary.nodes:  # a module shared by loop copies counts at its first row
        names = [n for n in owned.get(row.id, ()) if n not in counted]
        counted.update(names)
        row.flops = sum(summary.module_flops.get(name, 0) for name in names)
    # a `list` output: one entry per listed head, in the list's order
    summary.output_shapes = ({f"output[{k}]": list(t.shape) for k, t in enumerate(out)}
                             if isinstance(out, list) else {"output": list(out.shape)})
    for h in ir.heads.values():
        if h.name in shapes:
            summary.output_shapes[h.id] = shapes[h.name]
