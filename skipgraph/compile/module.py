"""The compiled model: one ``nn.Module`` owning the node modules, running fx-generated code.

Two fx graphs share the same submodules: the training graph returns every head (deep
supervision), the eval graph returns what the spec's ``output`` says (one head, the mean of
the heads, or a list of them). ``forward`` picks one by ``self.training``; there is no
interpretation at run time.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Iterable

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..graph.contract import InputContract, InputShapeError, head_shape
from ..graph.estimate import Budget, check_budget
from ..graph.ir import IRGraph
from .fx_codegen import make_graph
from .modules import build_modules

__all__ = ["SkipGraphModule", "compile_ir", "InputShapeError", "class_name", "recompute_names"]


class SkipGraphModule(nn.Module):
    """A spec compiled to straight-line PyTorch code (build it with :func:`skipgraph.build`).

    Submodules are named after the IR (node ``X[1,2]`` is ``X1_2``, an edge
    ``up_X2_1_X1_2``, a head ``head_X0_4``), so ``state_dict`` keys are stable and readable.
    ``print(model.code)`` shows the eval-mode code and ``model.train_code`` the training code.

    Attributes:
        ir: the typed IR it was compiled from (:class:`~skipgraph.graph.IRGraph`).
        heads: head ids, in the order the training output lists them.
        output_heads: the heads the eval output uses (one for ``select``, several for
            ``ensemble`` and ``list``, in the list's order).
        main_head: the head evaluation scores (:meth:`main_output` picks it from an eval
            output).
        pruned: True for a module cut down to one head by :meth:`prune`.
    """

    def __init__(self, ir: IRGraph, modules: "OrderedDict[str, nn.Module]",
                 recompute: Iterable[str] = ()):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.ir = ir
        self.heads: list[str] = list(ir.heads)
        self.output_heads: list[str] = list(ir.output_heads)
        self.main_head: str = ir.main_head or self.output_heads[0]
        self.pruned = False  # True for a module cut down to one head's ancestors
        self.norms_folded = False  # True for an inference copy from speed.fold_batchnorm
        # plain facts for the input check (forward must not touch the networkx IR: it would
        # break torch.compile's graph)
        self.contract = InputContract.of(ir)
        self._head_stride = {h.id: h.stride for h in ir.heads.values()}
        self._name = ir.name
        names = set(modules)
        self.recompute = frozenset(recompute)
        _check_recompute_names(ir, self.recompute)
        train, segments = make_graph(ir, self.heads, "dict" if len(self.heads) > 1 else
                                     "single", names, self.recompute)
        mode = {"ensemble": "mean", "list": "list"}.get(ir.output_mode, "single")
        evalg, _ = make_graph(ir, self.output_heads, mode, names)
        cls_name = class_name(ir.name)
        # Checkpointed loop iterations: plain attributes (not submodules, so the state_dict
        # stays as it is) that the training graph calls.
        for seg_name, seg in segments.items():
            object.__setattr__(self, seg_name, fx.GraphModule(self, seg, f"{cls_name}_{seg_name}"))
        self.segments: list[str] = list(segments)
        # Stored outside _modules: they hold the same submodule objects, not copies.
        object.__setattr__(self, "_train_gm", fx.GraphModule(self, train, cls_name))
        object.__setattr__(self, "_eval_gm", fx.GraphModule(self, evalg, cls_name))

    def forward(self, x: torch.Tensor) -> Any:
        """Run the network on ``x``, ``(N, C_in, *spatial)`` (2 or 3 spatial dims, per the spec).

        Returns:
            Training mode: every head. With one head, a tensor ``(N, C_out, *spatial_h)``; with
            several, a dict by head id in :attr:`heads` order. A head on level ``l`` that does
            not resize itself has ``spatial_h = ceil(spatial / 2**l)`` (UNet#'s deep heads); a
            classification-guided module gives ``(N, 2)`` (image-level probabilities).
            Eval mode: the spec's ``output``: one tensor ``(N, C_out, *spatial)``, the selected
            head or the element-wise mean of the ``ensemble`` heads; or (``mode: list``) a list
            of tensors, one per head of :attr:`output_heads` in that order, each shaped as in
            training mode. Values are what the head's
            activation gives: probabilities in [0, 1] for ``sigmoid``/``softmax``, logits for
            ``none``. With ``input: {pad: true}`` any size is accepted: the input is padded to a
            multiple of the total stride and the outputs are cropped back.

        Raises:
            InputShapeError: ``x`` is not a tensor, has the wrong number of dimensions or
                channels, or (without ``pad``) a spatial size that is not a multiple of the
                total stride ``2**max_level``. The message names the expected shape.
        """
        return self.run_graph(x, training=self.training)

    def run_graph(self, x: torch.Tensor, training: bool) -> Any:
        """The training graph (every head) or the eval graph (the output) on ``x``, with the
        input check and, for ``input: {pad: true}`` specs, the padding and cropping back;
        the layers stay in the mode they are in."""
        pads = self._check_input(x)
        if training and x.shape[0] < 2:  # a batch of 1: no BatchNorm on 1 value can train
            self._explain_batch_norm(x)
        gm = self._train_gm if training else self._eval_gm
        if not self.contract.pad:
            return gm(x)
        # `pad` specs always pad and crop (by zero for fitting sizes): no branch on the size,
        # so torch.export and ONNX keep the spatial sizes symbolic
        sizes = list(x.shape[2:])
        out = gm(F.pad(x, [p for pad in reversed(pads) for p in (0, pad)]))
        return self._crop(out, sizes)

    def train(self, mode: bool = True) -> "SkipGraphModule":
        """Switch between training (every head) and eval (the spec's output) mode.

        Raises:
            RuntimeError: training mode asked of a copy whose BatchNorm layers were folded.
        """
        if mode and self.norms_folded:
            raise RuntimeError(f"{self._name}: this copy has its BatchNorm layers folded into "
                               "the convolutions for inference and cannot be trained")
        return super().train(mode)

    def _explain_batch_norm(self, x: torch.Tensor) -> None:
        """torch's "Expected more than 1 value per channel" names no layer: say which module
        (a CGM by its head id, a pooling block by its type) and the batch rule, before the step
        runs (at a batch of 1)."""
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules()):
            return  # (computed here: a cached_property takes a lock torch.compile cannot trace)
        from .batch_norm import batch_norm_problems
        problems = batch_norm_problems(self, list(x.shape[2:]), int(x.shape[0]))
        if problems:
            raise InputShapeError(problems[0].replace("--batch 2 or more", "a batch of 2 or "
                                                      "more (or eval mode)"))

    def _check_input(self, x: torch.Tensor) -> list[int]:
        """Raise InputShapeError for a wrong input; return the padding the `pad` mode needs."""
        if not isinstance(x, torch.Tensor):
            raise InputShapeError(f"{self._name}: expected a tensor, got {type(x).__name__}")
        return self.contract.check(x.shape)

    def main_output(self, out: Any) -> torch.Tensor:
        """The main head's tensor in an eval output (a ``list`` output holds every listed
        head; the others are one tensor already)."""
        if isinstance(out, (list, tuple)):
            return out[self.output_heads.index(self.main_head)]
        return out

    def _crop(self, out: Any, sizes: list[int]) -> Any:
        if isinstance(out, dict):
            return {k: self._crop_one(v, sizes, self._head_stride[k]) for k, v in out.items()}
        if isinstance(out, list):
            return [self._crop_one(v, sizes, self._head_stride[k])
                    for k, v in zip(self.output_heads, out)]
        return self._crop_one(out, sizes, self._head_stride[self.output_heads[0]])

    @staticmethod
    def _crop_one(t: torch.Tensor, sizes: list[int], stride: Any) -> torch.Tensor:
        if t.dim() <= 2:  # an image-level (CGM) output
            return t
        # a negative pad crops; unlike slicing it adds no guard on the (symbolic) sizes when
        # exported
        cut = [have - want for have, want in zip(t.shape[2:], head_shape(sizes, stride))]
        return F.pad(t, [-c for c in reversed(cut) for c in (0, c)])

    @property
    def code(self) -> str:
        """The generated eval-mode ``forward`` (Python source)."""
        return self._eval_gm.code

    @property
    def train_code(self) -> str:
        """The training-mode code, followed by that of each checkpointed loop iteration."""
        parts = [self._train_gm.code] + [f"# {name}{getattr(self, name).code}"
                                         for name in self.segments]
        return "\n".join(parts)

    def graph_module(self, training: bool = False) -> fx.GraphModule:
        """The fx GraphModule used in that mode (for fx passes, export, inspection)."""
        return self._train_gm if training else self._eval_gm

    @property
    def class_name(self) -> str:
        """The class name the generated code and an ejected file use."""
        return class_name(self._name)

    @property
    def checkpoint(self) -> frozenset[str]:
        """Deprecated name of :attr:`recompute`."""
        return self.recompute

    def with_recompute(self, names: Iterable[str] = ()) -> "SkipGraphModule":
        """The same module (shared submodules and weights) with other families or loops
        recomputed in the backward pass (activation checkpointing; none by default)."""
        return _rebuild(self.ir, OrderedDict(self.named_children()), self.training,
                        self.pruned, names, self.norms_folded)

    def prune(self, head: str) -> "SkipGraphModule":
        """A smaller module with only what ``head`` needs (its ancestors; UNet++'s L1..L4).

        The pruned module shares this one's parameter tensors (no copy: training one trains the
        other). It takes the same input and returns that head's output ``(N, C_out, *spatial)``;
        in training mode a dict that adds the CGM heads gating it, when there are any.

        Raises:
            KeyError: ``head`` is not one of :attr:`heads`.
        """
        if head not in self.ir.heads:
            raise KeyError(f"`{head}` is not a head of {self.ir.name}; heads: {self.heads}")
        sub = self.ir.subgraph([head])
        wanted = _module_names(sub)
        keep = OrderedDict((n, m) for n, m in self.named_children() if n in wanted)
        pruned = SkipGraphModule(sub, keep, self.recompute)
        pruned.pruned, pruned.norms_folded = True, self.norms_folded
        return pruned

    # notebook display (IPython calls these): the diagram, drawn by the view stage; the one
    # place an earlier stage reaches a later one, lazily (tests/test_rules.py allows it here)
    def _repr_svg_(self) -> str | None:
        from ..view.notebook import diagram_svg
        return diagram_svg(self)

    def _repr_html_(self) -> str | None:
        from ..view.notebook import diagram_html
        return diagram_html(self)

    def __deepcopy__(self, memo: dict) -> "SkipGraphModule":
        import copy
        modules = OrderedDict((n, copy.deepcopy(m, memo)) for n, m in self.named_children())
        return _rebuild(self.ir, modules, self.training, self.pruned, self.recompute,
                        self.norms_folded)

    def __reduce__(self):
        return (_rebuild, (self.ir, OrderedDict(self.named_children()), self.training,
                           self.pruned, self.recompute, self.norms_folded))


def _check_recompute_names(ir: IRGraph, names: frozenset[str]) -> None:
    known = {ir.node(n).family for n in ir.graph.nodes} | {ir.node(n).loop
                                                           for n in ir.graph.nodes}
    unknown = names - known
    if unknown:
        from ..errors import Diagnostic, SpecError, did_you_mean
        raise SpecError([Diagnostic("unknown-family", f"recompute: `{u}` is neither a node "
                                    "family nor a loop", hint=did_you_mean(u, known - {""}))
                         for u in sorted(unknown)])


def _rebuild(ir: IRGraph, modules: "OrderedDict[str, nn.Module]", training: bool,
             pruned: bool = False, recompute: Iterable[str] = (),
             norms_folded: bool = False) -> SkipGraphModule:
    model = SkipGraphModule(ir, modules, recompute)
    model.train(training)
    model.pruned, model.norms_folded = pruned, norms_folded
    return model


def _module_names(ir: IRGraph) -> set[str]:
    names = {ir.node(n).name for n in ir.graph.nodes}
    edges = {n for e in ir.edges() for n in (e.name, e.drop_name, e.gate_name)}
    return names | edges | {h.name for h in ir.heads.values()}


def class_name(name: str) -> str:
    """A Python class name for a spec name (``unet++`` -> ``UnetPP``)."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name.replace("++", "PP")
                      .replace("+", "P").replace("#", "Sharp"))
    return (cleaned[:1].upper() + cleaned[1:]) or "SkipGraph"


_class_name = class_name  # the old private name (tests and scripts that used it)


def compile_ir(ir: IRGraph, seed: int | None = None, recompute: Iterable[str] = (),
               budget: Budget | None = None, *, weights: bool = True,
               checkpoint: Iterable[str] | None = None) -> SkipGraphModule:
    """Build the module; with ``seed`` the weights are reproducible (global RNG untouched).
    ``recompute`` names node families or loops whose activations are recomputed in the
    backward pass (activation checkpointing: less memory, one more forward pass);
    ``checkpoint`` is its deprecated name. ``weights=False`` leaves backbone weight files unread
    (a checkpoint brings the weights). The resource guard runs first: nothing is allocated
    for a model over the budget."""
    recompute = recompute_names(recompute, checkpoint)
    check_budget(ir, budget)
    if seed is None:
        return SkipGraphModule(ir, build_modules(ir, weights), recompute)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SkipGraphModule(ir, build_modules(ir, weights), recompute)


def recompute_names(recompute: Iterable[str] = (), checkpoint: Iterable[str] | None = None,
                    stacklevel: int = 3) -> tuple[str, ...]:
    """``recompute``, or the deprecated ``checkpoint=`` (with a DeprecationWarning: the word
    also means checkpoint files)."""
    if checkpoint is None:
        return tuple(recompute)
    warnings.warn("`checkpoint=` (activation checkpointing) is deprecated; use `recompute=`",
                  DeprecationWarning, stacklevel=stacklevel)
    return tuple(recompute) + tuple(checkpoint)
