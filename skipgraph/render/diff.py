"""What spec B adds or removes relative to spec A, read from their IRs."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph.ir import IRGraph

__all__ = ["IRDiff", "diff_irs"]


@dataclass
class IRDiff:
    a: IRGraph
    b: IRGraph
    added_nodes: list[str] = field(default_factory=list)
    removed_nodes: list[str] = field(default_factory=list)
    added_edges: set[tuple[str, str]] = field(default_factory=set)
    removed_edges: set[tuple[str, str]] = field(default_factory=set)
    added_families: dict[str, int] = field(default_factory=dict)    # family -> edge count
    removed_families: dict[str, int] = field(default_factory=dict)
    changed_families: dict[str, tuple[int, int]] = field(default_factory=dict)
    channel_changes: list[tuple[str, tuple[int, int], tuple[int, int]]] = field(
        default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added_nodes or self.removed_nodes or self.added_edges
                    or self.removed_edges or self.channel_changes)

    def format(self, params: tuple[int, int] | None = None) -> str:
        lines = [f"--- {self.a.name} ({self.a.source})", f"+++ {self.b.name} ({self.b.source})"]
        if self.empty:
            lines.append("no structural difference")
        for nid in self.removed_nodes:
            lines.append(f"- node {nid}")
        for nid in self.added_nodes:
            lines.append(f"+ node {nid}")
        for fam, n in self.removed_families.items():
            lines.append(f"- edge family {fam} ({n} edges)")
        for fam, n in self.added_families.items():
            lines.append(f"+ edge family {fam} ({n} edges)")
        for fam, (na, nb) in self.changed_families.items():
            lines.append(f"~ edge family {fam}: {na} -> {nb} edges")
        for nid, (ia, oa), (ib, ob) in self.channel_changes:
            lines.append(f"~ channels {nid}: {ia}->{oa} becomes {ib}->{ob}")
        lines.append(f"summary: {len(self.added_nodes):+d} / -{len(self.removed_nodes)} nodes, "
                     f"+{len(self.added_edges)} / -{len(self.removed_edges)} edges")
        if params is not None:
            pa, pb = params
            lines.append(f"parameters: {pa:,} -> {pb:,} ({pb - pa:+,})")
        return "\n".join(lines)


def _family_edges(ir: IRGraph) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for e in ir.edges():
        out.setdefault(e.family, set()).add((e.src, e.dst))
    return out


def diff_irs(a: IRGraph, b: IRGraph) -> IRDiff:
    d = IRDiff(a, b)
    d.added_nodes = [n for n in b.graph.nodes if n not in a.graph]
    d.removed_nodes = [n for n in a.graph.nodes if n not in b.graph]
    d.added_edges = set(b.graph.edges) - set(a.graph.edges)
    d.removed_edges = set(a.graph.edges) - set(b.graph.edges)
    fa, fb = _family_edges(a), _family_edges(b)
    d.added_families = {f: len(e) for f, e in fb.items() if f not in fa}
    d.removed_families = {f: len(e) for f, e in fa.items() if f not in fb}
    d.changed_families = {f: (len(fa[f]), len(fb[f])) for f in fa
                          if f in fb and fa[f] != fb[f]}
    for nid in a.graph.nodes:
        if nid in b.graph:
            na, nb = a.node(nid), b.node(nid)
            if (na.in_channels, na.out_channels) != (nb.in_channels, nb.out_channels):
                d.channel_changes.append((nid, (na.in_channels, na.out_channels),
                                          (nb.in_channels, nb.out_channels)))
    return d
