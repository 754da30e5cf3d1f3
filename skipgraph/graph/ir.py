"""The graph IR: explicit nodes, edges and heads as frozen data on a networkx DiGraph.

The IR is what every backend reads (compiler, renderer, summary, export); it never refers back to
YAML. ``str(ir)`` prints one line per node in the papers' notation, e.g.::

    X[1,2] = conv(cat[X[1,0], X[1,1], transpose(X[2,1])])  # level 1, 192 -> 64

Names are chosen here once: node ``X[1,2]`` is compiled as submodule ``X1_2``.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from ..errors import Span
from ..fields.axes import axes_text

_MERGE_TERM = {"concat": "cat", "sum": "sum", "product": "mul"}  # as the formula text shows them

__all__ = ["INPUT_ID", "Origin", "Resample", "CarryInit", "IRNode", "IREdge", "IRHead", "IRGraph",
           "SpecMeta",
           "module_name"]

INPUT_ID = "input"


def module_name(node_id: str) -> str:
    """``X[1,2]`` -> ``X1_2``; a plain name stays as it is."""
    return re.sub(r"[\[\],\s]+", "_", node_id.replace("[", "", 1)).strip("_")


@dataclass(frozen=True)
class Origin:
    """Which spec family made an element, and where that family is written."""

    family: str
    span: Span | None = None


@dataclass(frozen=True)
class Resample:
    """Resolution change on an edge: the settings of its registered op
    (:mod:`skipgraph.resampling`) and ``factor``, the product of the per-level factors between
    the two levels: 2**|level change| on the default grid, a tuple with one factor per axis on
    anisotropic levels (:attr:`IRGraph.strides`)."""

    settings: Any  # a skipgraph.resampling.ResampleOp
    factor: Any    # int | tuple[int, ...] (skipgraph.fields.axes.Size)

    @property
    def op(self) -> str:
        return self.settings.op

    @property
    def has_params(self) -> bool:
        return self.settings.parametric

    @property
    def is_up(self) -> bool:
        return self.settings.direction == "up"

    def __getattr__(self, name: str) -> Any:
        """The op's settings read as attributes (``resample.kernel``, ``resample.norm``)."""
        if name.startswith("_") or name == "settings":
            raise AttributeError(name)
        return getattr(self.settings, name)


@dataclass(frozen=True)
class CarryInit:
    """The first-iteration stand-in for a loop-carried input (see ``CarrySpec``)."""

    family: str
    mode: str          # duplicate | zeros
    channels: int
    slot: int = 0


@dataclass(frozen=True)
class IRNode:
    """One node ``X[i,j]`` after expansion: a block from ``in_channels`` to ``out_channels``.

    ``id`` is the paper-notation name (``X[1,2]``), ``name`` its submodule name (``X1_2``),
    ``index`` the family's index values, ``level`` its resolution (1/2**level of the input per
    side, so its output is ``(N, out_channels, *spatial / 2**level)``; a strided block takes its
    inputs at :attr:`in_level`), ``column`` where it is
    drawn, ``width`` the spec's width (= ``out_channels`` for the built-in blocks), ``block``
    the validated block settings, ``merge`` how its inputs combine (``concat`` adds their
    channels into ``in_channels``; ``sum`` needs them equal; ``product`` multiplies them,
    broadcasting 1-channel inputs). Frozen: passes make new nodes.
    """

    id: str
    name: str
    family: str
    index: tuple[int, ...]
    level: int
    column: int
    width: int
    block: Any = None  # the block's settings model (skipgraph.blocks), validated once
    merge: str = "concat"
    in_channels: int = 0
    out_channels: int = 0
    origin: Origin | None = None
    # loops: the folded id (``E[0]`` for ``E[0]@2``), the loop and 1-based iteration
    folded: str = ""
    loop: str = ""
    step: int = 0
    module: str = ""    # submodule to call when not its own (shared weights and norms)
    tied_to: str = ""   # submodule whose non-norm weights its own submodule shares
    carry_inits: tuple[CarryInit, ...] = ()
    row: int = 0        # drawing offset in half levels up (parallel branches at one level)

    @property
    def module_name(self) -> str:
        return self.module or self.name

    @property
    def in_level(self) -> int:
        """The level its inputs arrive at: ``level`` less the levels its block goes down by
        itself (a strided block, ResNet's stages); edges resample to this level."""
        return self.level - (self.block.levels_down() if self.block is not None else 0)

    @property
    def is_input(self) -> bool:
        return self.id == INPUT_ID


@dataclass(frozen=True)
class IREdge:
    """One edge ``src -> dst`` of an edge family: [edge conv at the source] -> resampling ->
    [edge conv at the target] [-> attention gate]. ``slot`` is its position in the destination's
    concat; ``in_channels`` / ``resampled_channels`` / ``out_channels`` are the channels entering,
    after the resampling and leaving it; ``kind`` is how it is drawn (``encoder``, ``up``,
    ``skip``, ``dense``, ``full_scale``, ``backward``, ``input``).
    """

    src: str
    dst: str
    family: str
    kind: str
    slot: int = 0                       # position among the destination's inputs (concat order)
    resample: Resample | None = None    # None: same level, identity
    conv_width: int | None = None       # optional conv block on the edge (full-scale skips)
    conv_block: Any = None              # its block's settings model
    conv_at: str = "target"             # conv after (target) or before (source) resampling
    gate_by: str = ""                   # attention gate: the edge family giving the gating signal
    gate_inter: int | str = "half"
    collect: str = "last"               # leaving a loop: last iteration, or all of them
    dropout: float = 0.0                # dropout rate on the edge's value in training (0: none)
    dropout_spatial: bool = False       # whole channels (Dropout2d/3d) instead of values
    dropout_at: str = "target"          # on the value received (target) or the source's value
    in_channels: int = 0
    resampled_channels: int = 0         # after resampling, before the edge conv
    out_channels: int = 0
    origin: Origin | None = None
    name: str = ""                      # submodule name, e.g. ``up_X1_0_X0_1``
    module: str = ""                    # as for IRNode
    tied_to: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name",
                               f"{self.family}_{module_name(self.src)}_{module_name(self.dst)}")

    @property
    def module_name(self) -> str:
        return self.module or self.name

    @property
    def gate_name(self) -> str:
        return f"gate_{self.name}"

    @property
    def drop_name(self) -> str:
        """Submodule name of the edge's dropout layer (when ``dropout`` > 0)."""
        return f"drop_{self.name}"

    def dropout_term(self) -> str:
        """The dropout as the IR printout and drawings write it (``drop0.5ch``), or ``""``."""
        return f"drop{self.dropout:g}{'ch' if self.dropout_spatial else ''}" if self.dropout \
            else ""


@dataclass(frozen=True)
class IRHead:
    """An output: the settings of its registered head type (:mod:`skipgraph.heads`, expressions
    evaluated), on ``node``; ``gate`` is the head whose decision gates it, if any. The stages
    read a head only through its contract (``pixelwise``, ``activation``, ``target_rule``,
    ``full_size``, ``stride``); a type's own fields are read from ``settings``."""

    id: str
    node: str
    family: str
    out_channels: int
    settings: Any  # a skipgraph.heads.HeadType
    level: int = 0
    gate: str | None = None
    in_channels: int = 0
    origin: Origin | None = None
    scale: Any = None  # how much smaller its level is than the input (IRGraph.scale)

    @property
    def type(self) -> str:
        return self.settings.type

    # --- the head contract (skipgraph.heads.HeadType): all that training and evaluation read
    # of a head; its other settings stay on ``settings``, read by its own type and builder
    @property
    def pixelwise(self) -> bool:
        """A map (N, C, *spatial) rather than an image-level output."""
        return self.settings.pixelwise

    @property
    def activation(self) -> str:
        """What its output is: ``none`` (logits), ``sigmoid`` or ``softmax``."""
        return self.settings.activation()

    @property
    def target_rule(self) -> str:
        """How a loss shrinks the full-size target for it (``maxpool``, ...)."""
        return self.settings.target_rule()

    @property
    def name(self) -> str:
        return f"{self.settings.module_prefix(self.family)}_{module_name(self.node)}"

    @property
    def full_size(self) -> bool:
        return self.settings.full_size(self.level)

    @property
    def stride(self) -> Any:
        """How much smaller than the input the head's output is (1: full size): an int, or one
        factor per axis on an anisotropic grid."""
        return 1 if self.full_size else self.level_scale

    @property
    def level_scale(self) -> Any:
        """How much smaller than the input its node's level is (an int or one per axis)."""
        return self.scale if self.scale is not None else 2 ** self.level


@dataclass(frozen=True)
class SpecMeta:
    """What the spec says beside the graph, for the stages that need it: the params it was
    expanded with, its file, its training loss (typed ``LossSpec``) and the resolved document
    (what a checkpoint stores)."""

    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    loss: Any = None
    spec_doc: dict[str, Any] = field(default_factory=dict)


@dataclass
class IRGraph:
    """The expanded, validated network: what the compiler, the renderer, the summaries and the
    exporters read. Torch-free; build it with :func:`skipgraph.load_ir`.

    The topology is the networkx ``graph`` (node ``"input"`` is the network input; each node and
    edge carries its :class:`IRNode` / :class:`IREdge` under the ``ir`` attribute, read them with
    :meth:`node`, :meth:`edge`, :meth:`nodes`, :meth:`in_edges`). ``heads`` maps head ids to
    :class:`IRHead`; ``output_mode`` (``select``, ``ensemble`` or ``list``) and
    ``output_heads`` say what eval mode returns, ``main_head`` which head evaluation scores;
    ``dims`` is 2 or 3; ``max_level`` fixes the total stride ``scale(max_level)``
    (``2**max_level``, or per axis with ``strides``) that input sizes must be multiples of; the
    spec's metadata (params, source,
    loss, resolved document) is kept apart in ``meta``. ``str(ir)`` is one line per node.
    """

    name: str
    dims: int
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    heads: dict[str, IRHead] = field(default_factory=dict)
    output_mode: str = "select"
    output_heads: tuple[str, ...] = ()   # the heads the eval output combines (or lists)
    main_head: str = ""  # the head evaluation scores (select: the one; list: `output.head`)
    pad_input: bool = False  # pad inputs to a multiple of the total stride, crop outputs back
    meta: SpecMeta = field(default_factory=SpecMeta)
    strides: tuple = ()  # factor from level l - 1 to level l at [l - 1]; past it: 2 (Spec.strides)

    # --- the grid of levels -------------------------------------------------------------------
    def level_stride(self, level: int) -> tuple[int, ...]:
        """The per-axis factor from ``level - 1`` to ``level`` (``level`` >= 1)."""
        from ..fields.axes import on_axes
        value = self.strides[level - 1] if level - 1 < len(self.strides) else 2
        return on_axes(value, self.dims)

    def factor(self, a: int, b: int) -> Any:
        """How much the resolution changes between levels ``a`` and ``b``: an int when equal on
        every axis (2**|b - a| on the default grid), else one factor per axis."""
        from ..fields.axes import squeeze
        out = [1] * self.dims
        for level in range(min(a, b) + 1, max(a, b) + 1):
            out = [x * f for x, f in zip(out, self.level_stride(level))]
        return squeeze(out)

    def scale(self, level: int) -> Any:
        """How much smaller than the input a node on ``level`` is, per side (``factor(0,
        level)``): its output is ``(N, C, *(spatial / scale))``."""
        return self.factor(0, level)

    @property
    def anisotropic(self) -> bool:
        """Whether some level changes the axes by different factors."""
        return any(not isinstance(self.scale(lv), int) for lv in range(self.max_level + 1))

    # --- the spec's metadata, read through (kept for callers of the flat names) -------------
    @property
    def params(self) -> dict[str, Any]:
        return self.meta.params

    @property
    def source(self) -> str:
        return self.meta.source

    @property
    def spec_doc(self) -> dict[str, Any]:
        return self.meta.spec_doc

    @property
    def loss(self) -> dict[str, Any]:
        """The spec's ``loss:`` settings as keyword arguments of ``DeepSupervisionLoss``."""
        return self.meta.loss.model_dump() if self.meta.loss is not None else {}

    # --- the one way in --------------------------------------------------------------------
    def add_node(self, node: IRNode) -> None:
        self.graph.add_node(node.id, ir=node)

    def add_edge(self, edge: IREdge) -> None:
        self.graph.add_edge(edge.src, edge.dst, ir=edge)

    def add_head(self, head: IRHead) -> None:
        self.heads[head.id] = head

    # --- reading -----------------------------------------------------------------------------
    def node(self, node_id: str) -> IRNode:
        return self.graph.nodes[node_id]["ir"]

    def edge(self, src: str, dst: str) -> IREdge:
        return self.graph.edges[src, dst]["ir"]

    def nodes(self) -> Iterator[IRNode]:
        """Nodes in a deterministic topological order (ties broken by creation order); in
        creation order if the graph has a cycle (so a broken spec can still be drawn)."""
        order = {n: i for i, n in enumerate(self.graph.nodes)}
        try:
            ids = list(nx.lexicographical_topological_sort(self.graph, key=order.__getitem__))
        except nx.NetworkXUnfeasible:
            ids = list(self.graph.nodes)
        for node_id in ids:
            yield self.node(node_id)

    def in_edges(self, node_id: str) -> list[IREdge]:
        """Incoming edges in merge order."""
        edges = [d["ir"] for _, _, d in self.graph.in_edges(node_id, data=True)]
        return sorted(edges, key=lambda e: e.slot)

    def edges(self) -> Iterator[IREdge]:
        for node in self.nodes():
            yield from self.in_edges(node.id)

    @property
    def max_level(self) -> int:
        return max((self.node(n).level for n in self.graph.nodes), default=0)

    @property
    def in_channels(self) -> int:
        return self.node(INPUT_ID).width

    def edge_families(self) -> dict[str, str]:
        """family -> kind, in order of first appearance."""
        out: dict[str, str] = {}
        for e in self.edges():
            out.setdefault(e.family, e.kind)
        return out

    def ancestors(self, node_ids: Any) -> set[str]:
        keep: set[str] = set()
        for n in node_ids:
            keep |= nx.ancestors(self.graph, n) | {n}
        return keep

    def needed_heads(self, head_ids: list[str]) -> list[str]:
        """The heads plus the CGM heads that gate them, in the IR's head order."""
        wanted = set(head_ids) | {self.heads[h].gate for h in head_ids if self.heads[h].gate}
        return [h for h in self.heads if h in wanted]

    def subgraph(self, head_ids: list[str]) -> "IRGraph":
        """The part of the IR that the given heads need (for pruning)."""
        heads = self.needed_heads(head_ids)
        keep = self.ancestors(self.heads[h].node for h in heads)
        return dataclasses.replace(
            self, graph=self.graph.subgraph(keep).copy(),
            heads={h: self.heads[h] for h in heads},
            output_mode="select" if len(head_ids) == 1 else self.output_mode,
            output_heads=tuple(head_ids),
            main_head=self.main_head if self.main_head in head_ids else head_ids[0])

    # notebook display (IPython calls these): the diagram, drawn by the view stage; the one
    # place an earlier stage reaches a later one, lazily (tests/test_rules.py allows it here)
    def _repr_svg_(self) -> str | None:
        from ..view.notebook import diagram_svg
        return diagram_svg(self)

    def _repr_html_(self) -> str | None:
        from ..view.notebook import diagram_html
        return diagram_html(self)

    # --- printing ----------------------------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"# {self.name} ({self.dims}D)"]
        for node in self.nodes():
            if node.is_input:
                lines.append(f"{node.id}: {node.width} channels")
                continue
            terms = {e.slot: self._edge_term(e) for e in self.in_edges(node.id)}
            terms.update({c.slot: f"{c.mode}<{c.family}>" for c in node.carry_inits})
            terms = [terms[k] for k in sorted(terms)]
            merged = (terms[0] if len(terms) == 1
                      else f"{_MERGE_TERM[node.merge]}[{', '.join(terms)}]")
            btype = node.block.type if node.block is not None else "block"
            note = node.block.note() if node.block is not None else ""
            btype = f"{btype}[{note}]" if note else btype
            scale = self.scale(node.level)
            at = f" (1/{axes_text(scale)})" if not isinstance(scale, int) else ""
            lines.append(f"{node.id} = {btype}({merged})  # level {node.level}{at}, "
                         f"{node.in_channels} -> {node.out_channels}")
        for head in self.heads.values():
            term = head.settings.term(head.node, head.level)
            term = f"gate[{head.gate}]({term})" if head.gate is not None else term
            lines.append(f"head {head.id} = {term}  # {head.in_channels} -> {head.out_channels}")
        lines.append(f"output = {self.output_mode}({', '.join(self.output_heads)})")
        return "\n".join(lines)

    @staticmethod
    def _edge_term(e: IREdge) -> str:
        term = e.src
        if e.dropout and e.dropout_at == "source":
            term = f"{e.dropout_term()}({term})"
        if e.conv_width and e.conv_at == "source":
            term = f"conv{e.conv_width}({term})"
        if e.resample is not None:
            term = e.resample.settings.term(term, e.resample.factor)
        if e.conv_width and e.conv_at == "target":
            term = f"conv{e.conv_width}({term})"
        if e.dropout and e.dropout_at == "target":
            term = f"{e.dropout_term()}({term})"
        return f"gate[{e.gate_by}]({term})" if e.gate_by else term

    def to_dict(self) -> dict[str, Any]:
        """Explicit JSON-able form (what ``skipgraph expand --json`` prints)."""
        def clean(obj: Any) -> Any:
            d = _plain(dataclasses.replace(obj, origin=None))
            d.pop("origin", None)
            return d
        grid = {"strides": [_plain(s) for s in self.strides]} if self.strides else {}
        return {
            "name": self.name, "dims": self.dims, **grid, "params": self.params,
            "nodes": [clean(n) for n in self.nodes()],
            "edges": [clean(e) for e in self.edges()],
            "heads": [clean(h) for h in self.heads.values()],
            "output": {"mode": self.output_mode, "heads": list(self.output_heads),
                       "main": self.main_head},
        }


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and settings models -> JSON-able data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True)
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
