"""The expander's state and the helpers every part of expansion uses: positioned errors,
expressions, `for:`/`if:` iteration, node patterns, per-node evaluation of settings."""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from pydantic import ValidationError

from ..errors import DiagnosticSink, did_you_mean
from ..fields.expr import Expr, ExprError, Range
from ..spec.loader import ResolvedSpec
from .ir import IRGraph, SpecMeta
from .patterns import NodePattern, node_id

__all__ = ["ExpanderBase", "MAX_NODES", "MAX_EDGES", "MAX_STEPS", "MAX_WIDTH"]

MAX_NODES = 10_000
MAX_EDGES = 100_000
MAX_STEPS = 64  # loop iterations
MAX_WIDTH = 1 << 20  # channels of one node: far beyond any real network, refused early


class ExpanderBase:
    """State shared by the parts of expansion (see :mod:`skipgraph.graph.expand`)."""

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

    def _rate(self, value: Any, env: Mapping[str, Any], path: tuple) -> float:
        """A dropout rate (a number or an expression) evaluated for one edge or node: from 0
        to below 1, else an error at ``path`` (and 0)."""
        v = self._eval(value, env, path)
        if v is None:
            return 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            self._err("bad-value", f"a dropout rate must be from 0 (no dropout) to below 1; "
                      f"`{value}` gives {v!r}", path)
            return 0.0
        return float(v)

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

    # --- settings evaluated per node or edge ------------------------------------------------
    def _block_path(self, path: tuple) -> tuple:
        """Where a block's kernel is written: the family's own `block:` or the defaults."""
        own = path + ("block", "kernel")
        return path + ("block",) if own in self.rs.positions.values else ("defaults", "block")

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

    def _written_block(self, block: Any, path: tuple) -> Any:
        """A family's block settings (the loader merged them over ``defaults.block``), or
        the defaults'; a block made only by expansion (a backbone's stage) is an error."""
        params = block if block is not None else self.spec.defaults.block
        problem = params.written_problem()
        if problem:
            where = path + ("block", "type") if block is not None else ("defaults", "block")
            self._err("bad-value", problem, where)
        return params

    def _block_at(self, block: Any, env: Mapping[str, Any], width: int, path: tuple) -> Any:
        """``block`` with its expression settings (``block.expressions``: stride, widths, ...)
        evaluated for one node or edge conv whose output is ``width`` channels; None if one
        failed (reported at the setting)."""
        if not block.expressions:
            return block
        scope = {**env, "width": width}
        try:
            # a float minimum marks a rate (dropout), an int one a count or size
            return block.resolve(lambda value, sub, minimum: self._rate(
                value, scope, path + ("block",) + sub) if isinstance(minimum, float)
                else self._int(value, scope, path + ("block",) + sub, minimum))
        except ValidationError as exc:
            for err in exc.errors():
                self._err("bad-value", f"block `{block.type}`: "
                          f"{err['msg'].removeprefix('Value error, ')}",
                          path + ("block",) + tuple(err["loc"]))
            return None
