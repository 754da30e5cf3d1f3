"""Field types shared by the spec schema and the registered settings models (torch-free).

Values that may depend on params or index variables are kept as source text (``ExprText``) and
checked to parse here; they are evaluated during expansion.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from .expr import Expr, ExprError, Range

__all__ = ["SpecModel", "ExprText", "KernelExpr", "RangeText", "NormText", "ActText", "odd_kernel",
           "check_identifiers"]


def _check_expr(value: int | float | str) -> int | float | str:
    if isinstance(value, str):
        try:
            Expr(value)
        except ExprError as exc:
            raise ValueError(f"invalid expression: {exc}") from None
    return value


def _check_range(value: int | str) -> int | str:
    try:
        Range.parse(value)
    except ExprError as exc:
        raise ValueError(f"invalid range: {exc}") from None
    return value


ExprText = Annotated[int | float | str, AfterValidator(_check_expr)]
RangeText = Annotated[int | str, AfterValidator(_check_range)]
KernelExpr = Annotated[str, AfterValidator(_check_expr)]
"""A kernel written as an expression over params and index variables (`kernels[i]`),
evaluated per node or edge when the spec is expanded."""
NormText = str | dict[str, Any]   # a name, or {type: name, **kwargs}; checked by the block layer
ActText = str | dict[str, Any]


def odd_kernel(kernel: int) -> int:
    if kernel % 2 == 0:
        raise ValueError(f"a size-preserving conv needs an odd kernel, not {kernel}")
    return kernel


def check_identifiers(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if not name.isidentifier():
            raise ValueError(f"`{name}` is not a valid name (letters, digits and _ only)")
    return value


class SpecModel(BaseModel):
    """Base of every spec section: unknown keys are errors, values are frozen."""

    # a string literal under a field is its description (JSON Schema, editor hover help)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              use_attribute_docstrings=True)
