"""The compiled model: one ``nn.Module`` owning the node modules, running fx-generated code.

Two fx graphs share the same submodules: the training graph returns every head (deep
supervision), the eval graph returns what the spec's ``output`` says (one head, or the mean of
the heads). ``forward`` picks one by ``self.training``; there is no interpretation at run time.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from ..graph.ir import IRGraph
from .fx_codegen import make_graph
from .modules import build_modules

__all__ = ["SkipGraphModule", "compile_ir"]


class SkipGraphModule(nn.Module):
    """A spec compiled to straight-line PyTorch code.

    Attributes:
        ir: the typed IR it was compiled from.
        heads: head ids, in the order the training output lists them.
        output_heads: the heads the eval output uses.

    ``print(model.code)`` shows the eval-mode code and ``model.train_code`` the training code.
    """

    def __init__(self, ir: IRGraph, modules: "OrderedDict[str, nn.Module]"):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.ir = ir
        self.heads: list[str] = list(ir.heads)
        self.output_heads: list[str] = list(ir.output_heads)
        self.pruned = False  # True for a module cut down to one head's ancestors
        names = set(modules)
        train = make_graph(ir, self.heads, "dict" if len(self.heads) > 1 else "single", names)
        mode = "mean" if ir.output_mode == "ensemble" else "single"
        evalg = make_graph(ir, self.output_heads, mode, names)
        cls_name = _class_name(ir.name)
        # Stored outside _modules: they hold the same submodule objects, not copies.
        object.__setattr__(self, "_train_gm", fx.GraphModule(self, train, cls_name))
        object.__setattr__(self, "_eval_gm", fx.GraphModule(self, evalg, cls_name))

    def forward(self, x: torch.Tensor) -> Any:
        return self._train_gm(x) if self.training else self._eval_gm(x)

    @property
    def code(self) -> str:
        return self._eval_gm.code

    @property
    def train_code(self) -> str:
        return self._train_gm.code

    def graph_module(self, training: bool = False) -> fx.GraphModule:
        """The fx GraphModule used in that mode (for fx passes, export, inspection)."""
        return self._train_gm if training else self._eval_gm

    def prune(self, head: str) -> "SkipGraphModule":
        """A smaller module with only the ancestors of ``head``, sharing this one's parameters."""
        if head not in self.ir.heads:
            raise KeyError(f"`{head}` is not a head of {self.ir.name}; heads: {self.heads}")
        sub = self.ir.subgraph([head])
        wanted = _module_names(sub)
        keep = OrderedDict((n, m) for n, m in self.named_children() if n in wanted)
        pruned = SkipGraphModule(sub, keep)
        pruned.pruned = True
        return pruned

    def __deepcopy__(self, memo: dict) -> "SkipGraphModule":
        import copy
        modules = OrderedDict((n, copy.deepcopy(m, memo)) for n, m in self.named_children())
        return _rebuild(self.ir, modules, self.training, self.pruned)

    def __reduce__(self):
        return (_rebuild, (self.ir, OrderedDict(self.named_children()), self.training,
                           self.pruned))


def _rebuild(ir: IRGraph, modules: "OrderedDict[str, nn.Module]", training: bool,
             pruned: bool = False) -> SkipGraphModule:
    model = SkipGraphModule(ir, modules)
    model.train(training)
    model.pruned = pruned
    return model


def _module_names(ir: IRGraph) -> set[str]:
    names = {ir.node(n).name for n in ir.graph.nodes}
    return names | {e.name for e in ir.edges()} | {h.name for h in ir.heads.values()}


def _class_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name.replace("++", "PP")
                      .replace("+", "P").replace("#", "Sharp"))
    return (cleaned[:1].upper() + cleaned[1:]) or "SkipGraph"


def compile_ir(ir: IRGraph, seed: int | None = None) -> SkipGraphModule:
    """Build the module; with ``seed`` the weights are reproducible (global RNG untouched)."""
    if seed is None:
        return SkipGraphModule(ir, build_modules(ir))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SkipGraphModule(ir, build_modules(ir))
