"""Loops: the body's node families unrolled `times` times, with loop-carried edges."""
from __future__ import annotations

from typing import Any

from ..errors import did_you_mean
from .unroll import LoopPlan, unroll
from .expand_base import MAX_STEPS, ExpanderBase

__all__ = ["LoopExpansion"]


class LoopExpansion(ExpanderBase):
    """The loops pass of :class:`skipgraph.graph.expand._Expander`."""

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
