"""The input contract of a compiled spec, in one place (torch-free): rank, channels, and the
total stride the spatial sizes must be multiples of (or are padded to, with ``input: {pad:
true}``). The compiled module checks inputs with it, ``build --input`` and the summary check
shapes with it, export and evaluation pad to its stride.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..fields.axes import Size, on_axes
from .ir import IRGraph

__all__ = ["InputShapeError", "InputContract", "total_stride", "head_size", "head_shape",
           "per_axis", "padded_shape"]


class InputShapeError(ValueError):
    """An input the compiled network cannot take (dims, channels, or size vs. stride)."""


def total_stride(ir: IRGraph) -> Size:
    """How much the deepest level shrinks the input: 2**(deepest level) on the default grid,
    one factor per axis on an anisotropic one (``ir.strides``)."""
    return ir.scale(ir.max_level)


def per_axis(stride: Size, dims: int) -> tuple[int, ...]:
    """A stride (an int, or one per axis) as one int per spatial axis."""
    return on_axes(stride, dims)


def head_shape(sizes: Sequence[int], stride: Size) -> list[int]:
    """:func:`head_size` on every spatial axis (``stride``: an int or one per axis)."""
    return [head_size(s, f) for s, f in zip(sizes, per_axis(stride, len(sizes)))]


def head_size(size: int, stride: int) -> int:
    """The side of an output ``stride`` times smaller than an input side ``size`` (a head's
    :attr:`~skipgraph.graph.ir.IRHead.stride`): ``ceil(size / stride)``.

    Under ``input: {pad: true}`` the input is padded up to a multiple of the total stride and
    every output is cropped back to this size (a pixel that covers any input pixel is kept);
    without padding ``size`` is a multiple of ``stride`` and it is exact. The module's crop and
    the losses' target shrinking both use it, so heads and targets always agree. (A floor
    division of positive numbers: exported to ONNX, whose Div truncates, it stays exact.)"""
    return (size + stride - 1) // stride


def padded_shape(ir: IRGraph, shape: Sequence[int]) -> list[int]:
    """The (N, C, *spatial) the network's layers run on for an input ``shape``: spatial sizes
    rounded up to multiples of the total stride under ``input: {pad: true}``, else as given."""
    contract = InputContract.of(ir)
    return list(shape[:2]) + [s + p for s, p in zip(shape[2:], contract.pads(shape))]


@dataclass(frozen=True)
class InputContract:
    """What a network accepts: ``(N, channels, *spatial)`` with ``dims`` spatial sizes that
    are multiples of ``stride`` (an int, or one per axis on an anisotropic grid; ``pad``: any
    size, padded up and the outputs cropped back)."""

    name: str
    dims: int
    channels: int
    stride: Size
    pad: bool = False

    @property
    def strides(self) -> tuple[int, ...]:
        """The total stride on each spatial axis."""
        return per_axis(self.stride, self.dims)

    @classmethod
    def of(cls, ir: IRGraph) -> "InputContract":
        return cls(ir.name, ir.dims, ir.in_channels, total_stride(ir), ir.pad_input)

    def pads(self, shape: Sequence[int]) -> list[int]:
        """Padding per spatial dim up to a multiple of the stride (none unless ``pad``).

        Written as ``ceil(s / stride) * stride - s``: symbolic sizes (torch.export) then stay
        multiples of the stride with no guard on ``s % stride``, and only positive numbers are
        floor-divided (ONNX's Div truncates)."""
        if not self.pad:
            return [0] * len(shape[2:])
        return [head_size(s, f) * f - s for s, f in zip(shape[2:], self.strides)]

    def problem(self, shape: Sequence[int], padded: bool | None = None) -> str | None:
        """What is wrong with ``shape``, or None. ``padded`` (default: the spec's ``pad``)
        says whether sizes the stride does not divide are accepted."""
        shape = tuple(shape)
        if len(shape) != self.dims + 2:
            return (f"expected a {self.dims + 2}-d input (N, C, {self.dims} spatial dims), got "
                    f"shape {shape}")
        if shape[1] != self.channels:
            return f"expected {self.channels} input channels, got {shape[1]} (shape {shape})"
        # the pad test first: with padding no size is checked (symbolic sizes stay unguarded)
        if not (self.pad if padded is None else padded) and \
                any(s % f for s, f in zip(shape[2:], self.strides)):
            stride = self.stride if isinstance(self.stride, int) else tuple(self.stride)
            return (f"spatial size {shape[2:]} is not a multiple of the total stride "
                    f"{stride}{' (per axis)' if not isinstance(stride, int) else ''}; resize "
                    f"the input or set `input: {{pad: true}}` in the spec")
        return None

    def check(self, shape: Sequence[int]) -> list[int]:
        """Raise :class:`InputShapeError` for a wrong shape; return the padding the spec's
        ``pad`` mode adds (zeros for sizes that fit, all zeros without ``pad``)."""
        problem = self.problem(shape)
        if problem is not None:
            raise InputShapeError(f"{self.name}: {problem}")
        return self.pads(shape)
