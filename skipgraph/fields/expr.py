"""A tiny, safe expression language for spec values.

Expressions are parsed with :mod:`ast` and evaluated by walking a whitelist of node types; nothing
is ever passed to ``eval``. Supported: integer/float/bool/string literals, names (params and index
variables), ``+ - * / // % **``, comparisons, ``and or not``, ``a if c else b`` and the functions
``min max abs int``. During expansion, ``width('E', i)`` is the width of a node made earlier (a
backbone's channels at a level) and ``has('E', i)`` whether it exists. A range is written
``a..b`` (inclusive at both ends), as in the papers' ``j = 0..d-i``, or ``a..b by s`` to count
by ``s`` (``j-1..0 by -1`` counts down).

Example:
    >>> Expr("base * 2**i").evaluate({"base": 32, "i": 3})
    256
    >>> Range.parse("0..depth-i").values({"depth": 4, "i": 1})
    [0, 1, 2, 3]
"""
from __future__ import annotations

import ast
import functools
import operator
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import did_you_mean

__all__ = ["ExprError", "Expr", "Range", "Scalar", "MAX_RANGE"]

Scalar = int | float | bool | str
MAX_RANGE = 4096        # longest range a family may iterate
_MAX_POW_EXPONENT = 64  # keeps 2**depth cheap and refuses 10**10**10
_MAX_ABS_INT = 2**63

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_FUNCS = {"min": min, "max": max, "abs": abs, "int": int, "len": len}
# functions the graph stage supplies through the environment (under a key no name can spell):
# `width('E', i)` is the width of node E[i], e.g. a backbone's channels at level i, and
# `has('E', i)` whether that node exists (a backbone may start at level 2)
_GRAPH_FUNCS = ("width", "has")
_CALLABLE = set(_FUNCS) | set(_GRAPH_FUNCS)


class ExprError(ValueError):
    """An expression that cannot be parsed or evaluated; ``code`` is a diagnostic slug."""

    def __init__(self, message: str, code: str = "bad-expression", hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.hint = hint


@dataclass(frozen=True)
class Expr:
    """A parsed expression; ``names`` are its free variables."""

    source: str

    def __post_init__(self) -> None:
        tree, names = _parse(self.source)
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "names", names)

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return _Evaluator(env, self.source).visit(self._tree.body)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return self.source


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> tuple[ast.Expression, frozenset[str]]:
    """Parse and vet once per distinct source text (specs repeat the same few expressions)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse expression `{source}`: {exc.msg}") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        _check_allowed(node, source)
        if isinstance(node, ast.Name) and node.id not in _CALLABLE:
            names.add(node.id)
    return tree, frozenset(names)


def _check_allowed(node: ast.AST, source: str) -> None:
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
               ast.Name, ast.Constant, ast.Call, ast.Load, ast.And, ast.Or, ast.Subscript,
               *_BINOPS, *_CMPOPS, *_UNARY)
    if not isinstance(node, allowed):
        raise ExprError(f"`{type(node).__name__}` is not allowed in an expression: `{source}`",
                        hint="expressions allow numbers, names, + - * / // % **, comparisons, "
                             "and/or/not, `a if c else b`, list[i] and min/max/abs/int/len")
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)):
        raise ExprError(f"literal {node.value!r} is not allowed in `{source}`")
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in _CALLABLE) or node.keywords:
            raise ExprError(f"only min/max/abs/int/len/width/has may be called in `{source}`")


class _Evaluator:
    def __init__(self, env: Mapping[str, Any], source: str):
        self.env = env
        self.source = source

    def visit(self, node: ast.AST) -> Any:
        return getattr(self, "visit_" + type(node).__name__)(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        if node.id not in self.env:
            raise ExprError(f"unknown name `{node.id}` in `{self.source}`", code="eval-error",
                            hint=did_you_mean(node.id, [k for k in self.env if k[:1] != "\0"]))
        return self.env[node.id]

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) \
                and abs(right) > _MAX_POW_EXPONENT:
            raise ExprError(f"exponent {right} is too large in `{self.source}`", "eval-error")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (ZeroDivisionError, TypeError, OverflowError, ValueError) as exc:
            raise ExprError(f"cannot evaluate `{self.source}`: {exc}", "eval-error") from None
        if isinstance(value, int) and abs(value) > _MAX_ABS_INT:
            raise ExprError(f"`{self.source}` evaluates to a number too large", "eval-error")
        return value

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        try:
            return _UNARY[type(node.op)](self.visit(node.operand))
        except TypeError as exc:
            raise ExprError(f"cannot evaluate `{self.source}`: {exc}", "eval-error") from None

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            return all(self.visit(v) for v in node.values)
        return any(self.visit(v) for v in node.values)

    def visit_Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, comp in zip(node.ops, node.comparators):
            right = self.visit(comp)
            try:
                if not _CMPOPS[type(op)](left, right):
                    return False
            except TypeError as exc:
                raise ExprError(f"cannot compare in `{self.source}`: {exc}", "eval-error") from None
            left = right
        return True

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        """``kernels[i]``: an item of a list param (nnU-Net's per-stage kernels, strides)."""
        value, index = self.visit(node.value), self.visit(node.slice)
        if not isinstance(value, (list, tuple)) or isinstance(index, bool) \
                or not isinstance(index, int):
            raise ExprError(f"`{self.source}`: only a list may be indexed, by an integer",
                            "eval-error")
        if not -len(value) <= index < len(value):
            raise ExprError(f"`{self.source}`: index {index} is outside the list of "
                            f"{len(value)}", "eval-error")
        return value[index]

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Call(self, node: ast.Call) -> Any:
        args = [self.visit(a) for a in node.args]
        name = node.func.id  # type: ignore[attr-defined]
        fn = _FUNCS.get(name) or self.env.get("\0" + name)
        if fn is None:
            raise ExprError(f"`{name}()` is not available here (`{self.source}`): it reads "
                            "the nodes made so far, so only families may use it", "eval-error")
        try:
            return fn(*args)
        except (TypeError, ValueError) as exc:
            raise ExprError(f"cannot evaluate `{self.source}`: {exc}", "eval-error") from None


@dataclass(frozen=True)
class Range:
    """An inclusive integer range ``start..stop`` whose ends are expressions, counting up by 1;
    ``start..stop by step`` counts by ``step`` (a non-zero integer expression), so
    ``j-1..0 by -1`` counts down from ``j-1`` to ``0``. A range whose ``stop`` lies before its
    ``start`` in the step's direction is empty (``0..j-1`` for ``j = 0``)."""

    start: Expr
    stop: Expr
    step: Expr | None = None

    @classmethod
    def parse(cls, text: Any) -> "Range":
        if isinstance(text, bool) or not isinstance(text, (int, str)):
            raise ExprError(f"expected a range like `0..depth`, got {text!r}")
        if isinstance(text, int):
            return cls(Expr(str(text)), Expr(str(text)))
        body, by, step = text.rpartition(" by ") if " by " in text else (text, "", "")
        if by and not step.strip():
            raise ExprError(f"expected a step after `by` in `{text}`, e.g. `j-1..0 by -1`")
        parts = body.split("..")
        if len(parts) != 2 or "..." in body or not all(p.strip() for p in parts):
            raise ExprError(f"expected a range like `0..depth` or `j-1..0 by -1`, got `{text}`")
        return cls(Expr(parts[0]), Expr(parts[1]), Expr(step) if by else None)

    @property
    def names(self) -> frozenset[str]:
        return self.start.names | self.stop.names | (self.step.names if self.step else
                                                      frozenset())

    def values(self, env: Mapping[str, Any]) -> list[int]:
        lo, hi = self.start.evaluate(env), self.stop.evaluate(env)
        step = self.step.evaluate(env) if self.step is not None else 1
        for end in (lo, hi, step):
            if isinstance(end, bool) or not isinstance(end, int):
                raise ExprError(f"range `{self}` has a non-integer end or step {end!r}",
                                "eval-error")
        if step == 0:
            raise ExprError(f"range `{self}` has step 0", "bad-value")
        values = range(lo, hi + (1 if step > 0 else -1), step)
        if len(values) > MAX_RANGE:
            raise ExprError(f"range `{self}` = {lo}..{hi} has more than {MAX_RANGE} values",
                            "resource-limit")
        return list(values)

    def __str__(self) -> str:
        return f"{self.start}..{self.stop}" + (f" by {self.step}" if self.step else "")
