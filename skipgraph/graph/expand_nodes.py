"""Node families: the input, index families (`for:`/`if:`, level, width, the block
with its per-node settings) and backbone families (one node per feature level)."""
from __future__ import annotations

from ..fields.expr import ExprError
from ..spec.schema import NodeFamily
from .backbone import BackboneError, backbone_levels
from .ir import INPUT_ID, IREdge, IRNode, Origin, module_name
from .patterns import node_id
from .expand_base import MAX_NODES, MAX_WIDTH, ExpanderBase

__all__ = ["NodeExpansion"]


class NodeExpansion(ExpanderBase):
    """The nodes pass of :class:`skipgraph.graph.expand._Expander`."""

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
                self._evaluated(block, env, self._block_path(path)), env, width, path)
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

    def _check_strides(self) -> None:
        """`strides:` has one entry per level below 0 at most, each for every axis."""
        from ..fields.axes import check_axes
        for k, value in enumerate(self.spec.strides):
            problem = check_axes(value, self.spec.dims)
            if problem:
                self._err("bad-value", f"strides[{k}] (level {k} -> {k + 1}): {problem}",
                          ("strides", k))
        if len(self.spec.strides) > self.ir.max_level:
            self._err("bad-value", f"`strides` lists {len(self.spec.strides)} level changes but "
                      f"the deepest level is {self.ir.max_level}", ("strides",),
                      "one entry per level below the input resolution")

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
                                    lv.channels, lv.block,
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
