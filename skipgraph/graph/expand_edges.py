"""Edge families: their pairs of nodes, resampling to the destination's input level, edge
blocks and gates, and the concat order at each node (slots)."""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import did_you_mean
from ..fields.axes import axes_text
from ..fields.expr import ExprError
from ..resampling import resample_settings
from ..spec.schema import EdgeFamily
from .ir import INPUT_ID, IREdge, Origin, Resample
from .patterns import node_id
from .expand_base import MAX_EDGES, ExpanderBase

__all__ = ["EdgeExpansion"]


class EdgeExpansion(ExpanderBase):
    """The edges pass of :class:`skipgraph.graph.expand._Expander`."""

    def _expand_edge_family(self, name: str, fam: EdgeFamily) -> None:
        path = ("edges", name)
        to = self._pattern(fam.to, path + ("to",), binding=True)
        src = self._pattern(fam.from_, path + ("from",))
        if to is None or src is None:
            return
        origin = Origin(name, self.rs.span(*path))
        count = passed = 0
        self.considered = 0
        for dst_id, bound in to.bind_all(self.members[to.family], self.env):
            for env in self._iterate(fam.for_, fam.if_, {**self.env, **bound}, path):
                passed += 1
                try:
                    src_id = src.evaluate(env)
                except ExprError as exc:
                    self._err(exc.code, str(exc), path + ("from",), exc.hint)
                    return
                if src_id not in self.ir.graph:
                    continue  # boundary of the grid: the term does not exist for this node
                if to.family in self.backbones:
                    self._err("bad-value", f"edge family `{name}` leads into {dst_id}, a stage "
                              f"of backbone `{to.family}`; a backbone's stages take no other "
                              "input", path + ("to",))
                    return
                if self.ir.graph.has_edge(src_id, dst_id):
                    other = self.ir.edge(src_id, dst_id).family
                    self._err("duplicate-node", f"edge {src_id} -> {dst_id} of family `{name}` "
                              f"already exists (family `{other}`)", path)
                    return
                # the provisional slot is the enumeration order (see _assign_slots)
                self.ir.add_edge(self._make_edge(name, fam, src_id, dst_id, env, origin,
                                                 slot=count))
                count += 1
                if count > MAX_EDGES:
                    self._err("resource-limit", f"more than {MAX_EDGES:,} edges", path)
                    return
        if count == 0 and (passed or not self.considered):
            self._err("empty-family", f"edge family `{name}` ({fam.from_} -> {fam.to}) "
                      "connects no pair of existing nodes", path,
                      "check the index arithmetic of `from:`/`to:` and the `if:` condition")

    def _make_edge(self, name: str, fam: EdgeFamily, src_id: str, dst_id: str,
                   env: dict[str, Any], origin: Origin, slot: int) -> IREdge:
        change = self.ir.node(dst_id).level - self.ir.node(src_id).level
        # a strided block goes down by itself: the edge resamples only to its input level
        shift = self.ir.node(dst_id).in_level - self.ir.node(src_id).level
        resample = None
        if shift != 0:
            key = "down" if shift > 0 else "up"
            own = getattr(fam, key)
            settings = resample_settings(own or getattr(self.spec.defaults, key))
            settings = self._evaluated(settings, env, ("edges", name, key) if own is not None
                                       else ("defaults", key))
            resample = Resample(settings, self.ir.factor(self.ir.node(src_id).level,
                                                         self.ir.node(dst_id).in_level))
            kernel = getattr(settings, "kernel", None)
            unevaluated = isinstance(kernel, str) and kernel != "factor"  # its error is out
            problem = None if unevaluated else settings.problem(self.spec.dims, resample.factor)
            if problem and (name, problem) not in self.reported:  # once per family and problem
                self.reported.add((name, problem))
                where = ("edges", name, key) if own is not None else ("edges", name)
                self._err("bad-value", f"edge {src_id} -> {dst_id} ({name}): `{settings.op}` "
                          f"by x{axes_text(resample.factor)}: {problem}", where,
                          None if own is not None else f"the op comes from `defaults.{key}`")
        kind = fam.kind or ("input" if src_id == INPUT_ID else "skip" if change == 0 else
                            ("encoder" if change == 1 else "up" if change == -1
                             else "full_scale"))
        conv_width = conv_block = None
        if fam.conv is not None:
            conv_width = self._int(fam.conv.width, env, ("edges", name, "conv", "width"), 1)
            conv_path = ("edges", name, "conv")
            conv_block = self._evaluated(self._written_block(fam.conv.block, conv_path), env,
                                         self._block_path(conv_path))
            conv_block = self._block_at(conv_block, env, conv_width or 1, conv_path)
            if conv_block is not None and conv_block.levels_down():
                self._err("bad-value", f"edge family `{name}`: a block on an edge keeps the "
                          f"resolution (the edge's resampling changes it); drop its `stride`",
                          conv_path + ("block", "stride"))
        gate_by, gate_inter = "", "half"
        if fam.gate is not None:
            gate_by = fam.gate.by
            if gate_by not in self.spec.edges or gate_by == name:
                self._err("unknown-family", f"`gate.by` names `{gate_by}`, not another edge "
                          "family", ("edges", name, "gate", "by"),
                          did_you_mean(gate_by, [f for f in self.spec.edges if f != name]))
            if fam.gate.inter != "half":
                gate_inter = self._int(fam.gate.inter, env, ("edges", name, "gate", "inter"), 1)
        dropout = 0.0
        if fam.dropout is not None:
            dropout = self._rate(fam.dropout.rate, env, ("edges", name, "dropout", "rate"))
        return IREdge(src_id, dst_id, name, kind, slot=slot, resample=resample,
                      conv_width=conv_width,
                      conv_block=conv_block, conv_at=fam.conv.at if fam.conv else "target",
                      gate_by=gate_by, gate_inter=gate_inter, collect=fam.collect,
                      dropout=dropout,
                      dropout_spatial=bool(fam.dropout and fam.dropout.spatial),
                      dropout_at=fam.dropout.at if fam.dropout else "target", origin=origin)

    def _assign_slots(self) -> None:
        """Concat order: edge families as the node family's `order:` lists them (else as
        written, loop-carried families last); within a family, the order the family enumerated
        the edges (their provisional slot), then (copies of one edge out of a loop) the
        sources' creation order."""
        written = list(self.spec.edges) + [c for lp in self.spec.loops.values() for c in lp.carry]
        written += self.backbones
        created = {n: i for i, n in enumerate(self.ir.graph.nodes)}
        for node_id in list(self.ir.graph.nodes):
            if node_id == INPUT_ID:
                continue
            node = self.ir.node(node_id)
            order = self.spec.nodes[node.family].order or []
            for f in order:
                if f not in written:
                    self._err("unknown-family", f"`order` names edge family `{f}`, which does "
                              "not exist", ("nodes", node.family, "order"),
                              did_you_mean(f, written))
            rank = {f: i for i, f in enumerate(order + [f for f in written if f not in order])}
            edges = [d["ir"] for _, _, d in self.ir.graph.in_edges(node_id, data=True)]
            items = [(rank[e.family], e.slot, created[e.src], e) for e in edges]
            items += [(rank[c.family], -1, -1, c) for c in node.carry_inits]
            inits = []
            for slot, (*_, item) in enumerate(sorted(items, key=lambda x: x[:3])):
                if isinstance(item, IREdge):
                    self.ir.add_edge(dataclasses.replace(item, slot=slot))
                else:
                    inits.append(dataclasses.replace(item, slot=slot))
            if inits:
                self.ir.add_node(dataclasses.replace(node, carry_inits=tuple(inits)))
