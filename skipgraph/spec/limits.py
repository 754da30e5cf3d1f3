"""Allowed values of a spec's params (``limits:``), checked once the ``--set`` values are in.

A value outside its range would otherwise surface far from its cause (``--set depth=0``: "edge
family `encoder` connects no pair of existing nodes"); the limit names the param, the value and
the range, at the limit's position in the file.
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import Field, model_validator

from ..errors import DiagnosticSink
from ..fields.types import SpecModel

__all__ = ["ParamLimit", "check_limits"]


class ParamLimit(SpecModel):
    """The values a param may take (`depth: {min: 1, max: 6}`, `up: {choices: [a, b]}`)."""

    min: int | float | None = None
    """Smallest allowed value (inclusive); for a list param, of every entry."""
    max: int | float | None = None
    """Largest allowed value (inclusive); for a list param, of every entry."""
    choices: list[Any] | None = Field(default=None, min_length=1)
    """The only values allowed."""
    why: str = ""
    """What goes wrong outside the range (shown with the error)."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> "ParamLimit":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is larger than max {self.max}")
        return self

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low = "" if self.min is None else f"{self.min}"
        high = "" if self.max is None else f"{self.max}"
        return f"in {low}..{high}" if low and high else (f">= {low}" if low else f"<= {high}")

    def allows(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        values = value if isinstance(value, list) else [value]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return len(numbers) == len(values) and all(
            (self.min is None or v >= self.min) and (self.max is None or v <= self.max)
            for v in numbers)


def check_limits(limits: Mapping[str, ParamLimit], params: Mapping[str, Any],
                 overrides: Mapping[str, Any], positions: Any, sink: DiagnosticSink) -> None:
    """One `bad-value` error per param whose value its limit does not allow; one
    `unknown-param` error per limit on a param the spec does not declare."""
    from ..errors import did_you_mean
    for name, limit in limits.items():
        span = positions.span(("limits", name))
        if name not in params:
            sink.error("unknown-param", f"`limits` names `{name}`, which is not a param", span,
                       hint=did_you_mean(name, params))
            continue
        value = params[name]
        if limit.allows(value):
            continue
        origin = f"--set {name}={value!r}" if name in overrides else f"param `{name}` = {value!r}"
        sink.error("bad-value", f"{origin}: `{name}` must be {limit.describe()}"
                   + (f" ({limit.why})" if limit.why else ""), span)
