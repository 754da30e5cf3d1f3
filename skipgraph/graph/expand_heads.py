"""Heads and output: head families on their nodes (expressions evaluated once), gating
heads linked, and what eval mode returns (output mode, main head)."""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import did_you_mean
from .ir import IRHead, Origin
from .expand_base import ExpanderBase

__all__ = ["HeadExpansion"]


class HeadExpansion(ExpanderBase):
    """The heads pass of :class:`skipgraph.graph.expand._Expander`."""

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
