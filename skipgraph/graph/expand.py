"""Expansion: a resolved spec -> explicit IR nodes, edges and heads (channels filled later).

Node families iterate their ``for:`` ranges in the order written (later ranges may use earlier
variables) and keep the combinations where ``if:`` holds. Edge families bind the ``to:`` pattern
against existing nodes, iterate their own ``for:`` ranges, and add an edge wherever the ``from:``
node exists: Eq. 1 of a paper is defined "where defined", so ``X[i+1,j-1]`` for ``j = 0`` simply
yields nothing. A family that yields nothing at all is an error (it is almost always a typo).

Concat order (documented and deterministic): edge families in the order of the node family's
``order:`` list, else as written under ``edges:`` (loop-carried families, then backbone stage
chains, after them); within a family, the order the family enumerates its sources for that
node: its ``for:`` bindings in the order written and counted (``for: {k: j-1..0 by -1}`` puts
``X[i,j-1]`` first); the copies of one edge out of a loop (``collect: all``) by iteration.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

from pydantic import ValidationError

from ..blocks.registry import merge_block, parse_block_config
from ..errors import DiagnosticSink, did_you_mean
from ..spec.axes import axes_text
from ..spec.expr import Expr, ExprError, Range
from ..spec.loader import ResolvedSpec
from ..resampling import resample_settings
from ..spec.schema import EdgeFamily, NodeFamily
from .backbone import BackboneError, backbone_levels
from .ir import (INPUT_ID, IREdge, IRGraph, IRHead, IRNode, Origin, Resample, SpecMeta,
                 module_name)
from .patterns import NodePattern, node_id
from .unroll import LoopPlan, drop_dead_copies, tie_copies, unroll

__all__ = ["expand", "MAX_NODES", "MAX_EDGES", "MAX_STEPS"]

MAX_NODES = 10_000
MAX_EDGES = 100_000
MAX_STEPS = 64  # loop iterations
MAX_WIDTH = 1 << 20  # channels of one node: far beyond any real network, refused early


def expand(rs: ResolvedSpec) -> IRGraph:
    """Build the IR of ``rs`` (channels are left 0: see :func:`skipgraph.graph.infer.infer`)."""
    ex = _Expander(rs)
    ex.run()
    ex.sink.raise_if_any()
    return ex.ir


class _Expander:
    def __init__(self, rs: ResolvedSpec):
        self.rs = rs
        self.spec = rs.spec
        self.env: dict[str, Any] = dict(rs.params)
        self.sink = DiagnosticSink()
        self.ir = IRGraph(self.spec.name, self.spec.dims, pad_input=self.spec.input.pad,
                          meta=SpecMeta(params=dict(rs.params), source=rs.path,
                                        loss=self.spec.loss, spec_doc=dict(rs.raw)),
                          strides=tuple(self.spec.strides))
        self.members: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        # combinations seen before `if:` filtering: a family emptied by its `if:` (a feature
        # switched off by a param) is fine; one that finds no node at all is an error.
        self.considered = 0
        self.last_step: dict[str, str] = {}  # folded id of a loop node -> its last iteration
        self.backbones: list[str] = []  # backbone node families (their stage chains are edges)
        self.reported: set[tuple[str, str]] = set()  # (edge family, resampling problem)
        # `width('E', i)` in an expression: the width of a node made earlier (a backbone's
        # channels at level i, for decoders whose widths follow the encoder's)
        self.env["\0width"] = self._width_of
        self.env["\0has"] = lambda family, *index: node_id(family, index) in self.ir.graph

    def run(self) -> None:
        self._add_input()
        for name in self.spec.nodes:
            self._expand_node_family(name)
        self._check_strides()
        if self.sink.items:
            return
        for name, fam in self.spec.edges.items():
            self._expand_edge_family(name, fam)
        if self.sink.items:
            return
        self._expand_loops()
        if self.sink.items:
            return
        self._assign_slots()
        for name in self.spec.heads:
            self._expand_head_family(name)
        self._link_gates()
        drop_dead_copies(self.ir)
        tie_copies(self.ir, {n: lp.norm for n, lp in self.spec.loops.items()})
        self._set_output()

    # --- helpers ---------------------------------------------------------------------------
    def _err(self, code: str, msg: str, path: tuple, hint: str | None = None) -> None:
        self.sink.error(code, msg, self.rs.span(*path), hint=hint, key=".".join(map(str, path)))

    def _eval(self, value: Any, env: Mapping[str, Any], path: tuple) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return Expr(value).evaluate(env)
        except ExprError as exc:
            self._err(exc.code, str(exc), path, exc.hint)
            return None

    def _int(self, value: Any, env: Mapping[str, Any], path: tuple, minimum: int) -> int | None:
        v = self._eval(value, env, path)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self._err("bad-value", f"expected an integer >= {minimum}, `{value}` gives {v!r}",
                      path)
            return None
        return v

    def _iterate(self, ranges: dict[str, str | int], cond: Any, env: dict[str, Any],
                 path: tuple) -> Iterator[dict[str, Any]]:
        """All bindings of ``ranges`` (in order) under ``env`` where ``cond`` holds."""
        names = list(ranges)

        def rec(i: int, cur: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(names):
                self.considered += 1
                if cond is None or self._eval(cond, cur, path + ("if",)):
                    yield cur
                return
            try:
                values = Range.parse(ranges[names[i]]).values(cur)
            except ExprError as exc:
                self._err(exc.code, str(exc), path + ("for", names[i]), exc.hint)
                return
            for v in values:
                yield from rec(i + 1, {**cur, names[i]: v})

        for name in names:
            if name in self.env:
                self._err("bad-value", f"index variable `{name}` hides the param of that name",
                          path + ("for", name), hint="rename the index variable")
                return iter(())
        return rec(0, dict(env))

    def _pattern(self, text: str, path: tuple, binding: bool = False) -> NodePattern | None:
        """Parse a node pattern; a ``binding`` one (``to:``, ``on:``) may only hold variables
        and values fixed by params, since it is matched against existing nodes."""
        try:
            pat = NodePattern.parse(text)
        except ExprError as exc:
            self._err("bad-expression", str(exc), path)
            return None
        if binding:
            for e in pat.index:
                if not e.source.strip().isidentifier() and not e.names <= set(self.env):
                    self._err("bad-expression", f"`{text}`: index `{e}` of a `to:`/`on:` pattern "
                              "must be a variable or a fixed value", path,
                              "put the arithmetic in `from:` (e.g. from: X[i-1,j], to: X[i,j])")
                    return None
        if pat.family not in self.members:
            self._err("unknown-family", f"`{text}` names the node family `{pat.family}`, "
                      "which is not declared", path, did_you_mean(pat.family, self.members))
            return None
        arity = len(self.members[pat.family][0][1]) if self.members[pat.family] else 0
        if len(pat.index) != arity:
            self._err("bad-expression", f"`{text}` has {len(pat.index)} indices but family "
                      f"`{pat.family}` has {arity}", path)
            return None
        return pat

    # --- nodes -----------------------------------------------------------------------------
    def _add_input(self) -> None:
        channels = self._int(self.spec.input.channels, self.env, ("input", "channels"), 1)
        self.ir.add_node(IRNode(INPUT_ID, INPUT_ID, INPUT_ID, (), 0, -1, channels or 1,
                                origin=Origin("input", self.rs.span("input"))))
        self.members[INPUT_ID] = [(INPUT_ID, ())]

    def _expand_node_family(self, name: str) -> None:
        fam = self.spec.nodes[name]
        path = ("nodes", name)
        if name == INPUT_ID:
            self._err("duplicate-node", "`input` is reserved for the network input", path)
            return
        if fam.backbone is not None:
            self._expand_backbone(name, fam)
            return
        vars_ = list(fam.for_)
        if not vars_ and fam.level is None:
            self._err("missing-key", f"node family `{name}` has no index; give it a `level:`",
                      path)
            return
        block = self._written_block(fam.block, path)
        origin = Origin(name, self.rs.span(*path))
        members: list[tuple[str, tuple[int, ...]]] = []
        for env in self._iterate(fam.for_, fam.if_, self.env, path):
            index = tuple(env[v] for v in vars_)
            level = self._int(fam.level if fam.level is not None else vars_[0], env,
                              path + ("level",), 0)
            column = self._int(fam.column if fam.column is not None else
                               (vars_[1] if len(vars_) > 1 else 0), env, path + ("column",), 0)
            row = 0 if fam.row is None else self._int(fam.row, env, path + ("row",), -64)
            width = self._int(fam.width, env, path + ("width",), 1)
            if None in (level, column, row, width):
                return
            if width > MAX_WIDTH:
                self._err("resource-limit", f"node {node_id(name, index)} would have {width:,} "
                          f"channels (limit {MAX_WIDTH:,})", path + ("width",),
                          "check the width expression and the depth")
                return
            nid = node_id(name, index)
            if nid in self.ir.graph:
                self._err("duplicate-node", f"node `{nid}` is created twice", path)
                return
            node_block = self._block_at(
                self._evaluated(block, env, self._block_path(path, fam.block)), env, width, path)
            if node_block is None:
                return
            if level - node_block.levels_down() < 0:
                self._err("level-mismatch", f"node {nid} sits at level {level} but its block "
                          f"strides by {2 ** node_block.levels_down()}: its inputs would arrive at level "
                          f"{level - node_block.levels_down()}", path + ("level",),
                          "a strided block's node sits at the level of its output: raise "
                          "`level:` or lower `stride`")
                return
            down = node_block.levels_down()
            if down and self.ir.factor(level - down, level) != node_block.stride:
                # an anisotropic grid: the block strides by the grid's factor per axis
                node_block = node_block.on_grid(self.ir.factor(level - down, level))
            members.append((nid, index))
            self.ir.add_node(IRNode(nid, module_name(nid), name, index, level, column, width,
                                    node_block, fam.merge, origin=origin, row=row))
            if self.ir.graph.number_of_nodes() > MAX_NODES:
                self._err("resource-limit", f"the spec expands to more than {MAX_NODES:,} nodes",
                          path)
                return
        if not members:
            self._err("empty-family", f"node family `{name}` expands to no node", path,
                      "check its `for:` ranges and `if:` condition against the params")
        self.members[name] = members

    @staticmethod
    def _block_path(path: tuple, block: dict[str, Any]) -> tuple:
        """Where a block's kernel is written: the family's own `block:` or the defaults."""
        return path + ("block",) if "kernel" in block else ("defaults", "block")

    def _evaluated(self, settings: Any, env: Mapping[str, Any], path: tuple) -> Any:
        """``settings`` (a block's or a resampling op's) with a kernel written as an expression
        (`kernels[i]`, nnU-Net's per-stage kernels) evaluated for this node or edge."""
        kernel = getattr(settings, "kernel", None)
        if not isinstance(kernel, str) or kernel == "factor":
            return settings
        value = self._eval(kernel, env, path + ("kernel",))
        if value is None:
            return settings
        value = tuple(value) if isinstance(value, list) else value
        try:
            return type(settings).model_validate(
                {**settings.model_dump(exclude_unset=True), "kernel": value})
        except ValidationError as exc:
            reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            self._err("bad-value", f"`kernel: {kernel}` gives {value!r}: {reasons}",
                      path + ("kernel",))
            return settings

    def _check_strides(self) -> None:
        """`strides:` has one entry per level below 0 at most, each for every axis."""
        from ..spec.axes import check_axes
        for k, value in enumerate(self.spec.strides):
            problem = check_axes(value, self.spec.dims)
            if problem:
                self._err("bad-value", f"strides[{k}] (level {k} -> {k + 1}): {problem}",
                          ("strides", k))
        if len(self.spec.strides) > self.ir.max_level:
            self._err("bad-value", f"`strides` lists {len(self.spec.strides)} level changes but "
                      f"the deepest level is {self.ir.max_level}", ("strides",),
                      "one entry per level below the input resolution")

    def _written_block(self, block: dict[str, Any], path: tuple) -> Any:
        """A block written in the spec (over ``defaults.block``); a ``backbone`` stage is made
        only by a backbone family, which builds all its stages from one timm model."""
        params = parse_block_config(merge_block(self.spec.defaults.block, block))
        if params.type == "backbone":
            self._err("bad-value", "block type `backbone` is a stage of a timm encoder; declare "
                      "the encoder as a family: `E: {backbone: {name: resnet34}}`",
                      path + ("block", "type"))
        return params

    def _block_at(self, block: Any, env: Mapping[str, Any], width: int, path: tuple) -> Any:
        """``block`` with its expression settings (``block.expressions``: stride, widths, ...)
        evaluated for one node or edge conv whose output is ``width`` channels; None if one
        failed (reported at the setting)."""
        if not block.expressions:
            return block
        scope = {**env, "width": width}
        try:
            return block.resolve(lambda value, sub, minimum: self._int(
                value, scope, path + ("block",) + sub, minimum))
        except ValidationError as exc:
            for err in exc.errors():
                self._err("bad-value", f"block `{block.type}`: "
                          f"{err['msg'].removeprefix('Value error, ')}",
                          path + ("block",) + tuple(err["loc"]))
            return None

    def _expand_backbone(self, name: str, fam: NodeFamily) -> None:
        """The family's nodes ``name[level]``, chained from the input (see graph/backbone.py)."""
        path = ("nodes", name, "backbone")
        try:
            levels = backbone_levels(fam.backbone, self.ir.in_channels, self.spec.dims)
        except BackboneError as exc:
            self._err(exc.code, str(exc), path + ("name",), exc.hint)
            return
        origin = Origin(name, self.rs.span(*path))
        members, prev = [], INPUT_ID
        for lv in levels:
            nid = node_id(name, (lv.level,))
            members.append((nid, (lv.level,)))
            self.ir.add_node(IRNode(nid, module_name(nid), name, (lv.level,), lv.level, 0,
                                    lv.channels, parse_block_config(lv.block),
                                    origin=origin))
            self.ir.add_edge(IREdge(prev, nid, name, "input" if prev == INPUT_ID else "encoder",
                                    origin=origin))
            prev = nid
        self.members[name] = members
        self.backbones.append(name)

    def _width_of(self, family: str, *index: int) -> int:
        nid = node_id(family, tuple(index))
        if nid not in self.ir.graph:
            raise ExprError(f"width(): no node {nid} (nodes are made family by family, in the "
                            "order written)", "unknown-node")
        return self.ir.node(nid).width

    # --- edges -----------------------------------------------------------------------------
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
                                         self._block_path(conv_path, fam.conv.block))
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
        return IREdge(src_id, dst_id, name, kind, slot=slot, resample=resample,
                      conv_width=conv_width,
                      conv_block=conv_block, conv_at=fam.conv.at if fam.conv else "target",
                      gate_by=gate_by, gate_inter=gate_inter, collect=fam.collect,
                      origin=origin)

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

    # --- loops -------------------------------------------------------------------------------
    def _expand_loops(self) -> None:
        in_loop: dict[str, str] = {}
        for name, lp in self.spec.loops.items():
            path = ("loops", name)
            for fam in lp.nodes:
                if fam not in self.spec.nodes:
                    self._err("unknown-family", f"loop `{name}` names node family `{fam}`, "
                              "which is not declared", path + ("nodes",),
                              did_you_mean(fam, self.spec.nodes))
                elif in_loop.setdefault(fam, name) != name:
                    self._err("bad-value", f"node family `{fam}` is in two loops", path)
            times = self._int(lp.times, self.env, path + ("times",), 1)
            if self.sink.items or times is None:
                return
            if times > MAX_STEPS:
                self._err("resource-limit", f"loop `{name}` runs {times} times; the limit is "
                          f"{MAX_STEPS}", path + ("times",))
                return
            body = {nid for fam in lp.nodes for nid, _ in self.members[fam]}
            plan = LoopPlan(name, body, times, lp.norm)
            for cname, carry in lp.carry.items():
                plan.carries += self._expand_carry(cname, carry, body, path + ("carry", cname))
            channels = {src: self.ir.node(src).block.out_channels(
                0, self.ir.node(src).width) for src, _, _, _ in plan.carries}
            if not self.sink.items:
                self.last_step.update(unroll(self.ir, plan, channels))

    def _expand_carry(self, name: str, carry: Any, body: set[str], path: tuple
                      ) -> list[tuple[str, str, str, str]]:
        to = self._pattern(carry.to, path + ("to",), binding=True)
        src = self._pattern(carry.from_, path + ("from",))
        if to is None or src is None:
            return []
        pairs = []
        for dst_id, bound in to.bind_all(self.members[to.family], self.env):
            for env in self._iterate(carry.for_, carry.if_, {**self.env, **bound}, path):
                src_id = src.evaluate(env)
                if src_id not in self.ir.graph:
                    continue
                if src_id not in body or dst_id not in body:
                    self._err("bad-value", f"loop-carried edge {src_id} -> {dst_id} must join "
                              "two nodes of the loop", path)
                    return []
                if self.ir.node(src_id).level != self.ir.node(dst_id).level:
                    self._err("level-mismatch", f"loop-carried edge {src_id} -> {dst_id} "
                              "changes level; carried edges stay on one level", path)
                    return []
                pairs.append((src_id, dst_id, name, carry.init))
        return pairs

    # --- heads and output --------------------------------------------------------------------
    def _expand_head_family(self, name: str) -> None:
        fam = self.spec.heads[name]
        path = ("heads", name)
        pat = self._pattern(fam.on, path + ("on",), binding=True)
        if pat is None:
            return
        matched = 0
        for folded, bound in pat.bind_all(self.members[pat.family], self.env):
            matched += 1
            nid = self.last_step.get(folded, folded)  # a head on a loop node: last iteration
            env = {**self.env, **bound}
            if fam.if_ is not None and not self._eval(fam.if_, env, path + ("if",)):
                continue
            head = self._make_head(name, fam, nid, env, path)
            if head is None:
                return
            if head.id in self.ir.heads:
                self._err("duplicate-node", f"node `{nid}` carries two heads of that type", path)
                return
            self.ir.add_head(head)
        if matched == 0:  # emptied by `if:` is fine (a head switched off by a param)
            self._err("empty-family", f"head family `{name}` ({fam.on}) matches no node", path)

    def _make_head(self, name: str, fam: Any, nid: str, env: dict[str, Any],
                   path: tuple) -> IRHead | None:
        """The head of type ``fam.type`` on ``nid``: its expression fields evaluated once."""
        settings = fam.resolve(lambda field, minimum: self._int(
            getattr(fam, field), env, path + (field,), minimum))
        if settings is None:
            return None
        level = self.ir.node(nid).level
        return IRHead(id=settings.head_id(name, nid), node=nid, family=name,
                      out_channels=settings.out_channels(), settings=settings, level=level,
                      scale=self.ir.scale(level), origin=Origin(name, self.rs.span(*path)))

    def _link_gates(self) -> None:
        """Point each pixel-wise head at the head whose decision gates it (a CGM)."""
        for gating in list(self.ir.heads.values()):
            mode = gating.settings.gating()
            if mode == "none":
                continue
            for head in list(self.ir.heads.values()):
                if not head.pixelwise or (mode == "same" and head.node != gating.node):
                    continue
                if head.gate is not None:
                    self._err("duplicate-node", f"head {head.id} is gated by both {head.gate} "
                              f"and {gating.id}", ("heads", gating.family))
                    return
                self.ir.add_head(dataclasses.replace(head, gate=gating.id))

    def _set_output(self) -> None:
        out = self.spec.output
        self.ir.output_mode = out.mode
        seg = [h.id for h in self.ir.heads.values() if h.pixelwise]
        if not seg:
            self._err("empty-family", "the spec has no segmentation head", ("heads",))
            return
        full = [h for h in seg if self.ir.heads[h].full_size]
        if out.mode == "select":
            # default: the last full-resolution head (a low-resolution one is a training aid)
            chosen = [out.head or (full or seg)[-1]]
        elif out.mode == "list":
            chosen = out.heads or seg  # the heads' declared (expansion) order
        else:
            chosen = out.heads or full
        key = ("output", "head" if out.mode == "select" else "heads")
        for h in chosen:
            if h not in self.ir.heads:
                self._err("unknown-node", f"output head `{h}` is not a head", key,
                          did_you_mean(h, self.ir.heads))
                return
        if len(set(chosen)) < len(chosen):
            self._err("bad-value", f"`output.heads` lists a head twice: {', '.join(chosen)}", key)
            return
        levels = {(self.ir.heads[h].full_size, self.ir.heads[h].level) for h in chosen}
        if out.mode == "ensemble" and len({0 if f else lv for f, lv in levels}) > 1:
            self._err("level-mismatch", "an ensemble averages heads of one resolution; "
                      f"{', '.join(chosen)} differ", ("output",),
                      "list full-size heads in `output.heads` or give the others resize: full")
            return
        self.ir.output_heads = tuple(chosen)
        self.ir.main_head = self._main_head(out, chosen)

    def _main_head(self, out: Any, chosen: list[str]) -> str:
        """The main head (evaluation scores it): the selected one; in `list` mode `output.head`, by
        default the last full-size segmentation head of the list (nnU-Net's and MONAI's final
        output)."""
        if out.mode != "list":
            if out.mode == "ensemble" and out.head is not None:
                self._err("bad-value", "`output.head` is for `select` and `list`; an ensemble "
                          "scores the mean of `output.heads`", ("output", "head"))
            return chosen[-1]  # select: the one; ensemble: the last (nnU-Net's output 0)
        pixel = [h for h in chosen if self.ir.heads[h].pixelwise]
        full = [h for h in pixel if self.ir.heads[h].full_size]
        main = out.head or ((full or pixel or chosen)[-1])
        if main not in chosen:
            self._err("unknown-node", f"`output.head` `{main}` is not one of the listed heads "
                      f"({', '.join(chosen)})", ("output", "head"), did_you_mean(main, chosen))
        elif not self.ir.heads[main].pixelwise:
            self._err("bad-value", f"`output.head` `{main}` is an image-level head; evaluation "
                      "scores a segmentation head", ("output", "head"))
        return main
