"""Field types shared by the spec schema and the registered settings models (torch-free).

Values that may depend on params or index variables are kept as source text (``ExprText``) and
checked to parse here; they are evaluated during expansion.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from ..registry import load_object
from .expr import Expr, ExprError, Range

__all__ = ["SpecModel", "ExprText", "DropoutRate", "check_rate", "KernelExpr", "RangeText", "NormSetting", "ActSetting", "NormText", "ActText", "odd_kernel",
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


def check_rate(value: Any) -> Any:
    """A dropout rate written as a number must be from 0 to below 1 (an expression is checked
    once evaluated)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and not 0.0 <= value < 1.0:
        raise ValueError(f"a dropout rate must be from 0 (no dropout) to below 1, not {value}")
    return value


DropoutRate = Annotated[int | float | str, AfterValidator(_check_expr), AfterValidator(check_rate)]
"""A dropout rate from 0 (none) to below 1, or an expression over params and index variables
evaluated per node or edge."""
KernelExpr = Annotated[str, AfterValidator(_check_expr)]
"""A kernel written as an expression over params and index variables (`kernels[i]`),
evaluated per node or edge when the spec is expanded."""


class LayerChoice:
    """A ``norm:`` / ``act:`` setting: a registered name or ``{type: name, **options}``
    (skipgraph.blocks.options checks it: an unknown name or option is a ValueError, so the
    spec loader reports it at the setting's file:line:col). The value is kept as written;
    its JSON Schema lists the names registered when the schema is generated."""

    def __init__(self, registry: str, check: str, description: str):
        self.registry, self.check, self.description = registry, check, description

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema
        check = self.check

        def validate(value: Any) -> Any:
            return load_object(check)(value)
        return core_schema.no_info_after_validator_function(validate, core_schema.union_schema(
            [core_schema.str_schema(), core_schema.dict_schema()]))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        names = load_object(self.registry).names()
        return {"description": self.description, "anyOf": [
            {"enum": names, "type": "string"},
            {"type": "object", "properties": {"type": {
                "enum": names, "type": "string", "description": "The registered name."}},
             "required": ["type"], "description": "The name and its options."}]}


NormSetting = Annotated[str | dict[str, Any], LayerChoice(
    "skipgraph.blocks.options:NORMS", "skipgraph.blocks.options:check_norm",
    "A registered normalisation (none, batch, instance, group, layer, or one a module loaded "
    "with --import registers), or {type: NAME, **options} (`{type: group, groups: 8}`).")]
ActSetting = Annotated[str | dict[str, Any], LayerChoice(
    "skipgraph.blocks.options:ACTS", "skipgraph.blocks.options:check_act",
    "A registered activation (none, relu, elu, leaky_relu, prelu, gelu, silu, tanh, sigmoid, "
    "or one a module loaded with --import registers), or {type: NAME, **options}.")]
NormText, ActText = NormSetting, ActSetting  # their former names


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
