"""The input contract of a compiled spec, in one place (torch-free): rank, channels, and the
total stride the spatial sizes must be multiples of (or are padded to, with ``input: {pad:
true}``). The compiled module checks inputs with it, ``build --input`` and the summary check
shapes with it, export and evaluation pad to its stride.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .ir import IRGraph

__all__ = ["InputShapeError", "InputContract", "total_stride"]


class InputShapeError(ValueError):
    """An input the compiled network cannot take (dims, channels, or size vs. stride)."""


def total_stride(ir: IRGraph) -> int:
    """How much the deepest level shrinks the input: 2**(deepest level)."""
    return 2 ** ir.max_level


@dataclass(frozen=True)
class InputContract:
    """What a network accepts: ``(N, channels, *spatial)`` with ``dims`` spatial sizes that
    are multiples of ``stride`` (``pad``: any size, padded up and the outputs cropped back)."""

    name: str
    dims: int
    channels: int
    stride: int
    pad: bool = False

    @classmethod
    def of(cls, ir: IRGraph) -> "InputContract":
        return cls(ir.name, ir.dims, ir.in_channels, total_stride(ir), ir.pad_input)

    def pads(self, shape: Sequence[int]) -> list[int]:
        """Padding per spatial dim up to a multiple of the stride."""
        return [(-s) % self.stride for s in shape[2:]]

    def problem(self, shape: Sequence[int], padded: bool | None = None) -> str | None:
        """What is wrong with ``shape``, or None. ``padded`` (default: the spec's ``pad``)
        says whether sizes the stride does not divide are accepted."""
        shape = tuple(shape)
        if len(shape) != self.dims + 2:
            return (f"expected a {self.dims + 2}-d input (N, C, {self.dims} spatial dims), got "
                    f"shape {shape}")
        if shape[1] != self.channels:
            return f"expected {self.channels} input channels, got {shape[1]} (shape {shape})"
        if any(self.pads(shape)) and not (self.pad if padded is None else padded):
            return (f"spatial size {shape[2:]} is not a multiple of the total stride "
                    f"{self.stride}; resize the input or set `input: {{pad: true}}` in the spec")
        return None

    def check(self, shape: Sequence[int]) -> list[int]:
        """Raise :class:`InputShapeError` for a wrong shape; return the padding the spec's
        ``pad`` mode needs ([] when none)."""
        problem = self.problem(shape)
        if problem is not None:
            raise InputShapeError(f"{self.name}: {problem}")
        pads = self.pads(shape)
        return pads if any(pads) else []
