"""Spec stage: YAML with positions, safe expressions, the pydantic schema, params and extends."""
from ..fields.expr import Expr, ExprError, Range
from .loader import ResolvedSpec, load_spec, load_spec_text, parse_overrides
from .schema import SCHEMA_VERSION, Spec

__all__ = ["Expr", "ExprError", "Range", "ResolvedSpec", "load_spec", "load_spec_text",
           "parse_overrides", "SCHEMA_VERSION", "Spec"]
