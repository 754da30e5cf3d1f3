"""Node patterns such as ``X[i-1,0]``, ``X[i,k]`` or ``input``: a family name plus index
expressions. A pattern *binds* free variables when matched against existing nodes (``to:`` and
``on:``) and *evaluates* to a node id when all its names are known (``from:``).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..fields.expr import Expr, ExprError

__all__ = ["NodePattern", "node_id"]


def node_id(family: str, index: tuple[int, ...]) -> str:
    return f"{family}[{','.join(map(str, index))}]" if index else family


@dataclass(frozen=True)
class NodePattern:
    family: str
    index: tuple[Expr, ...]
    source: str

    @classmethod
    def parse(cls, text: Any) -> "NodePattern":
        if not isinstance(text, str) or not text.strip():
            raise ExprError(f"expected a node pattern like `X[i,j]`, got {text!r}")
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            raise ExprError(f"`{text}` is not a node pattern like `X[i-1,0]`") from None
        if isinstance(tree, ast.Name):
            return cls(tree.id, (), text)
        if not (isinstance(tree, ast.Subscript) and isinstance(tree.value, ast.Name)):
            raise ExprError(f"`{text}` is not a node pattern like `X[i-1,0]`")
        elts = tree.slice.elts if isinstance(tree.slice, ast.Tuple) else [tree.slice]
        return cls(tree.value.id, tuple(Expr(ast.unparse(e)) for e in elts), text)

    def evaluate(self, env: Mapping[str, Any]) -> str:
        values = []
        for e in self.index:
            v = e.evaluate(env)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ExprError(f"index `{e}` of `{self.source}` is {v!r}, not an integer",
                                "eval-error")
            values.append(v)
        return node_id(self.family, tuple(values))

    def match(self, index: tuple[int, ...], env: Mapping[str, Any]) -> dict[str, int] | None:
        """Bind this pattern's free names to ``index``; None if the node does not match."""
        if len(index) != len(self.index):
            return None
        bound: dict[str, int] = {}
        for expr, value in zip(self.index, index):
            name = expr.source.strip()
            if name.isidentifier() and name not in env:
                if bound.setdefault(name, value) != value:
                    return None
            elif expr.evaluate({**env, **bound}) != value:
                return None
        return bound

    def bind_all(self, nodes: list[tuple[str, tuple[int, ...]]], env: Mapping[str, Any]
                 ) -> Iterator[tuple[str, dict[str, int]]]:
        for nid, index in nodes:
            bound = self.match(index, env)
            if bound is not None:
                yield nid, bound
