"""IR -> graphviz drawing in the style of the UNet++ / UNet# papers' Fig. 1.

Node ``X[i,j]`` is pinned at row ``i`` (top = full resolution) and x = ``2j + i``, which gives the
papers' V: the encoder runs down-right, each decoder column up-right, and ``X[i,j]`` always sits
right of ``X[i,j-1]`` and below ``X[i-1,*]``. Positions are pinned (``pos="x,y!"``) and the
``neato`` layout routes the edges around the nodes, so the picture is the grid whatever the edges.
Reads the IR only; never imports torch.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import graphviz

from ..fields.axes import axes_text, on_axes, squeeze
from ..graph.ir import INPUT_ID, IREdge, IRGraph, IRNode
from .loops import folded_view, loop_times, unrolled_view
from .style import ADDED, EDGE_STYLES, GREY, NODE_FILL, PROBLEM, EdgeStyle, legend_label

__all__ = ["DrawOptions", "draw", "node_position", "problem_nodes"]

_X_STEP, _Y_STEP = 0.85, 1.25  # inches per grid unit
_NODE_HALF = 0.7  # half the widest node (1.0 in with a block line, up to 1.4 for a long one)
_HEAD_HALF = 0.6  # half a head box (its text sets the width; "2 (1/16)" and the like)
_NODE_ID = re.compile(r"[A-Za-z_]\w*\[[-\d,\s]+\]")


@dataclass
class DrawOptions:
    detail: bool = False
    input_shape: Sequence[int] | None = None
    prune: str | None = None                      # head id: grey what pruning removes
    problems: dict[str, str] = field(default_factory=dict)   # node id -> message
    added_nodes: set[str] = field(default_factory=set)        # for diffs
    added_edges: set[tuple[str, str]] = field(default_factory=set)
    removed: IRGraph | None = None                 # ghosts of what a diff removes
    title: str | None = None
    unroll: bool = False                           # draw loop iterations side by side


def node_position(node: IRNode) -> tuple[float, float]:
    if node.is_input:
        return (-2.0 * _X_STEP, 0.0)
    return ((2 * node.column + node.level) * _X_STEP, (node.row / 2 - node.level) * _Y_STEP)


def problem_nodes(messages: Iterable[str]) -> dict[str, str]:
    """Node ids named in diagnostic messages -> the message (to mark them in red)."""
    out: dict[str, str] = {}
    for msg in messages:
        for nid in _NODE_ID.findall(msg):
            out.setdefault(nid.replace(" ", ""), msg)
    return out


def draw(ir: IRGraph, options: DrawOptions | None = None) -> graphviz.Digraph:
    opts = options or DrawOptions()
    times = loop_times(ir)
    # the encoder column, taken before the unrolled view moves later iterations to the right
    encoder = {n for n in ir.graph.nodes if ir.node(n).column == 0}
    ir = unrolled_view(ir) if opts.unroll else folded_view(ir)
    keep = ir.ancestors([ir.heads[h].node for h in ir.needed_heads([opts.prune])]) \
        if opts.prune else None
    g = graphviz.Digraph(ir.name, engine="neato")
    g.attr(layout="neato", splines="true", outputorder="edgesfirst", bgcolor="white",
           fontname="Helvetica", label=_title(ir, opts), labelloc="t", fontsize="16", pad="0.3")
    g.attr("node", shape="circle", style="filled", fontname="Helvetica", fontsize="11",
           width="0.62", fixedsize="true", penwidth="1.2")
    g.attr("edge", arrowsize="0.7")
    for node in ir.nodes():
        _draw_node(g, ir, node, opts, keep, node.id in encoder)
    if opts.removed is not None:
        _draw_ghosts(g, ir, opts.removed)
    for e in ir.edges():
        _draw_edge(g, ir, e, opts, keep)
    _draw_heads(g, ir, opts, keep)
    if times and not opts.unroll:
        _draw_loop_labels(g, ir, times)
    kinds = list(dict.fromkeys(e.kind for e in ir.edges()))
    if ir.heads:
        kinds.append("head")
    _draw_legend(g, ir, kinds, _legend_notes(opts))
    return g


def _draw_loop_labels(g: graphviz.Digraph, ir: IRGraph, times: dict[str, int]) -> None:
    """A "x t" label under each folded loop body."""
    for loop, t in times.items():
        pts = [node_position(ir.node(n)) for n in ir.graph.nodes if ir.node(n).loop == loop]
        x = sum(p[0] for p in pts) / len(pts)
        y = min(p[1] for p in pts) - 0.75 * _Y_STEP
        g.node(f"loop_{loop}", label=f"<<B>&#215; {t}</B>  ({html.escape(loop)}, shared weights)>",
               shape="plaintext", style="", fixedsize="false", fontsize="12",
               fontcolor=EDGE_STYLES["backward"].color, pos=f"{x:.3f},{y:.3f}!")


def _legend_notes(opts: DrawOptions) -> list[tuple[str, str]]:
    notes = []
    if opts.added_nodes or opts.added_edges:
        notes.append((ADDED, "added"))
    if opts.prune:
        notes.append((GREY, "removed by pruning"))
    elif opts.removed is not None:
        notes.append((GREY, "removed"))
    if opts.problems:
        notes.append((PROBLEM, "problem (see messages)"))
    return notes


def _title(ir: IRGraph, opts: DrawOptions) -> str:
    title = opts.title or f"{ir.name} ({ir.dims}D)"
    if opts.prune:
        title += f", pruned to {opts.prune}"
    return title


def _node_label(ir: IRGraph, node: IRNode, opts: DrawOptions) -> str:
    if node.is_input:
        return f"<input<BR/><FONT POINT-SIZE='9'>{node.width} ch</FONT>>"
    head = html.escape(node.family)
    sup = ",".join(map(str, node.index))
    if opts.unroll and node.step:
        sup = f"{sup}@{node.step}" if sup else f"@{node.step}"
    lines = [f"{head}<SUP>{sup}</SUP>" if sup else head,
             f"<FONT POINT-SIZE='9'>{node.out_channels or node.width}</FONT>"]
    if node.level and ir.anisotropic:  # the per-axis factor from the level above: x(1,2,2)
        step = axes_text(squeeze(ir.level_stride(node.level)))
        lines.append(f"<FONT POINT-SIZE='8'>x{step}</FONT>")
    if node.block.label():  # a backbone's stage: the encoder's name
        lines.insert(1, f"<FONT POINT-SIZE='8'>{html.escape(node.block.label())}</FONT>")
    for text in _block_lines(_block_text(node, opts)):  # a ResNet stage: `resblock x4 /2`
        lines.append(f"<FONT POINT-SIZE='8'>{html.escape(text)}</FONT>")
    if opts.detail:
        lines.append(f"<FONT POINT-SIZE='8'>{_shape_text(ir, node, opts)}</FONT>")
    return "<" + "<BR/>".join(lines) + ">"


def _block_text(node: IRNode, opts: DrawOptions) -> str:
    """The node's block line (`resblock x4 /2`): with ``detail``, or where the block has a
    note; empty otherwise."""
    note = node.block.note() if node.block is not None else ""
    if not (opts.detail or note):
        return ""
    return " ".join(t for t in (node.block.type if node.block else "", note) if t)


def _line_width(text: str) -> float:
    return 0.058 * len(text) + 0.15  # inches at 8 pt (~0.058 in a character) plus the margin


def _block_lines(text: str) -> list[str]:
    """The block line, broken in two at the space nearest its middle when one line would
    need a node wider than 1 in (a column of parallel branches stacks such nodes one level
    apart)."""
    if not text or _line_width(text) <= 1.0 or " " not in text:
        return [text] if text else []
    cut = min((i for i, c in enumerate(text) if c == " "), key=lambda i: abs(i - len(text) / 2))
    return [text[:cut], text[cut + 1:]]


def _node_width(text: str) -> float:
    """Inches across a node with a block line: 1.0, wider for a long line, at most
    ``2 * _NODE_HALF`` so neighbours two grid steps apart never touch (a longer line is
    broken in two, :func:`_block_lines`)."""
    return max(1.0, min(2 * _NODE_HALF, max(map(_line_width, _block_lines(text)))))


def _shape_text(ir: IRGraph, node: IRNode, opts: DrawOptions) -> str:
    scale = ir.scale(node.level)
    if opts.input_shape:
        spatial = [s // f for s, f in zip(opts.input_shape[2:], on_axes(scale, ir.dims))]
        return "x".join(map(str, [node.out_channels or node.width, *spatial]))
    return f"1/{axes_text(scale)}" if node.level else "full"


def _draw_node(g: graphviz.Digraph, ir: IRGraph, node: IRNode, opts: DrawOptions,
               keep: set[str] | None, is_encoder: bool) -> None:
    x, y = node_position(node)
    attrs = {"pos": f"{x:.3f},{y:.3f}!", "label": _node_label(ir, node, opts),
             "fillcolor": NODE_FILL[0 if is_encoder else 1], "color": "#333333",
             "tooltip": node.id}
    if node.is_input:
        attrs.update(shape="box", style="rounded,filled", fillcolor="#eeeeee", width="0.7",
                     height="0.5")
    if not node.is_input and _block_text(node, opts):
        attrs.update(width=f"{_node_width(_block_text(node, opts)):.2f}")  # room for it
    if node.loop and not opts.unroll:
        attrs.update(peripheries="2")  # a node run once per loop iteration
    if keep is not None and node.id not in keep:
        attrs.update(fillcolor="#eeeeee", color=GREY, fontcolor=GREY)
    if node.id in opts.added_nodes:
        attrs.update(color=ADDED, penwidth="3")
    if node.id in opts.problems:
        attrs.update(color=PROBLEM, penwidth="3", fontcolor=PROBLEM,
                     tooltip=f"{node.id}: {opts.problems[node.id]}")
    g.node(node.name, **attrs)


def _edge_attrs(st: EdgeStyle) -> dict[str, str]:
    return {"color": st.color, "style": st.style, "penwidth": str(st.penwidth)}


def _draw_edge(g: graphviz.Digraph, ir: IRGraph, e: IREdge, opts: DrawOptions,
               keep: set[str] | None) -> None:
    attrs = _edge_attrs(EDGE_STYLES[e.kind])
    attrs["tooltip"] = f"{e.family}: {e.src} -> {e.dst}"
    attrs["class"] = f"edge-{e.kind} family-{e.family}"
    if e.gate_by:  # an attention gate on the skip, driven by the `gate_by` edge's signal
        attrs.update(label=f"&#8855; gated by {e.gate_by}", fontsize="8",
                     fontcolor=attrs["color"])
    if e.kind == "backward":  # runs against a forward skip: route it underneath
        attrs.update(tailport="s", headport="s")
    elif e.kind == "full_scale" and ir.node(e.src).level > ir.node(e.dst).level:
        # full-scale up-paths run along the up-sampling diagonal: leave sideways to stay visible
        attrs.update(tailport="e", headport="s")
    if keep is not None and e.dst not in keep:
        attrs["color"] = GREY
    if (e.src, e.dst) in opts.added_edges:
        attrs.update(color=ADDED, penwidth="3")
    if e.src in opts.problems and e.dst in opts.problems:
        attrs.update(color=PROBLEM, penwidth="2.5")
    g.edge(ir.node(e.src).name, ir.node(e.dst).name, **attrs)


def _draw_heads(g: graphviz.Digraph, ir: IRGraph, opts: DrawOptions,
                keep: set[str] | None) -> None:
    """Heads as boxes above full-resolution nodes and to the right of deeper ones (as in the
    UNet# paper's Fig. 2); a CGM stacks beyond the segmentation head it shares a node with, and a
    gated head names its CGM."""
    st = EDGE_STYLES["head"]
    seg_nodes = {h.node for h in ir.heads.values() if h.pixelwise}
    kept = set(ir.needed_heads([opts.prune])) if opts.prune else set(ir.heads)
    for head in ir.heads.values():
        node = ir.node(head.node)
        x, y = _head_position(head, node, seg_nodes)
        grey = head.id not in kept
        title, extra = head.settings.drawing(head.level, head.level_scale)
        if head.gate:
            extra.append(f"x {ir.heads[head.gate].family}")
        label = f"<{html.escape(title)}" + "".join(
            f"<BR/><FONT POINT-SIZE='8'>{html.escape(t)}</FONT>" for t in extra) + ">"
        g.node(f"out_{head.name}", label=label, shape="box" if head.pixelwise else "hexagon",
               style="rounded,filled", fillcolor="#f3e6f6" if not grey else "#eeeeee",
               color=st.color if not grey else GREY, fontcolor="black" if not grey else GREY,
               width="0.5", height="0.4", fixedsize="false",
               pos=f"{x:.3f},{y:.3f}!", tooltip=f"head {head.id}")
        attrs = _edge_attrs(st)
        if grey:
            attrs["color"] = GREY
        g.edge(node.name, f"out_{head.name}", **attrs, **{"class": "edge-head"})


def _head_position(head, node: IRNode, seg_nodes: set[str]) -> tuple[float, float]:
    """A head's box: above a full-resolution node, right of a deeper one; a CGM one step
    further than the segmentation head it shares a node with."""
    x, y = node_position(node)
    stack = 2 if not head.pixelwise and head.node in seg_nodes else 1
    if node.level == 0:
        return x, y + (0.9 if stack == 1 else 1.7) * _Y_STEP
    return x + (1.2 if stack == 1 else 2.9) * _X_STEP, y


def _draw_ghosts(g: graphviz.Digraph, ir: IRGraph, removed: IRGraph) -> None:
    """Nodes a diff removes, drawn dashed where they were."""
    for node in removed.nodes():
        if node.id in ir.graph:
            continue
        x, y = node_position(node)
        g.node(node.name, label=f"<{html.escape(node.id)}>", pos=f"{x:.3f},{y:.3f}!",
               style="dashed", color=GREY, fontcolor=GREY, fillcolor="white",
               tooltip=f"removed: {node.id}")


def _draw_legend(g: graphviz.Digraph, ir: IRGraph, kinds: list[str],
                 notes: list[tuple[str, str]]) -> None:
    """The legend right of everything drawn, its left side clear of the rightmost node or head
    box by a margin: a legend touching a node makes neato give up routing *every* edge around
    the nodes (its "falling back to straight line edges"), and skips then run behind them."""
    rights = [node_position(ir.node(n))[0] + _NODE_HALF for n in ir.graph.nodes]
    seg_nodes = {h.node for h in ir.heads.values() if h.pixelwise}
    rights += [_head_position(h, ir.node(h.node), seg_nodes)[0] + _HEAD_HALF
               for h in ir.heads.values()]
    texts = [EDGE_STYLES[k].label for k in kinds] + [meaning for _, meaning in notes]
    # the table's width: the line sample, then its longest row in 10 pt Helvetica (~0.075 in
    # a character, rounded up)
    half_width = (0.8 + 0.08 * max(map(len, texts), default=5)) / 2
    x = max(rights, default=0) + 0.4 + half_width
    y = -ir.max_level * _Y_STEP
    g.node("legend", label=legend_label(kinds, notes), shape="plaintext", style="", fontsize="10",
           fixedsize="false", pos=f"{x:.3f},{y:.3f}!")
