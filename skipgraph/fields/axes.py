"""Per-axis sizes (torch-free): a kernel, stride or factor is one int for every axis, or one int
per spatial axis (``[1, 3, 3]``: depth, height, width), as nnU-Net's anisotropic 3D plans need.

A value equal on every axis is kept as the plain int, so an isotropic spec builds the very same
layers (``kernel_size=3``) as before per-axis values existed; a per-axis value is a tuple.
"""
from __future__ import annotations

from typing import Annotated, Callable, Sequence, Union

from pydantic import Field

__all__ = ["Size", "PerAxis", "KernelSize", "Padding", "on_axes", "squeeze", "axiswise", "volume",
           "axes_text", "check_axes"]

Size = Union[int, tuple[int, ...]]
"""One int for every axis, or one per spatial axis."""

KernelSize = Union[Annotated[int, Field(ge=1, le=15)],
                   tuple[Annotated[int, Field(ge=1, le=15)], ...]]
"""A kernel size in a spec: `3`, or one size per spatial axis such as `[1, 3, 3]` (depth,
height, width)."""

Padding = Union[Annotated[int, Field(ge=0, le=15)], tuple[Annotated[int, Field(ge=0, le=15)], ...]]
"""Padding per side in a spec: `1`, or one per spatial axis such as `[0, 1, 1]`."""

PerAxis = Union[Annotated[int, Field(ge=1, le=64)], tuple[Annotated[int, Field(ge=1, le=64)], ...]]
"""A resampling factor in a spec: `2`, or one factor per spatial axis such as `[1, 2, 2]`."""


def on_axes(value: Size, dims: int) -> tuple[int, ...]:
    """``value`` as one int per axis (a per-axis value must have ``dims`` entries)."""
    if isinstance(value, int):
        return (value,) * dims
    if len(value) != dims:
        raise ValueError(f"{list(value)} has {len(value)} entries; a {dims}D spec needs one "
                         f"per spatial axis ({dims})")
    return tuple(value)


def check_axes(value: Size, dims: int) -> str | None:
    """What is wrong with ``value`` for a ``dims``-D spec, or None."""
    try:
        on_axes(value, dims)
    except ValueError as exc:
        return str(exc)
    return None


def squeeze(values: Sequence[int]) -> Size:
    """Per-axis ints -> the plain int when they are all equal (isotropic), else a tuple."""
    values = tuple(int(v) for v in values)
    return values[0] if values and all(v == values[0] for v in values) else values


def axiswise(fn: Callable[..., int], *values: Size) -> Size:
    """``fn`` applied axis by axis (plain ints stay plain when every argument is one)."""
    if all(isinstance(v, int) for v in values):
        return fn(*values)
    dims = max(len(v) for v in values if not isinstance(v, int))
    return tuple(fn(*args) for args in zip(*(on_axes(v, dims) for v in values)))


def volume(value: Size, dims: int) -> int:
    """Product over the axes (``kernel ** dims`` for an int)."""
    out = 1
    for v in on_axes(value, dims):
        out *= v
    return out


def axes_text(value: Size) -> str:
    """``2`` -> ``"2"``, ``(1, 2, 2)`` -> ``"(1,2,2)"`` (drawings, the IR printout)."""
    return str(value) if isinstance(value, int) else f"({','.join(map(str, value))})"
