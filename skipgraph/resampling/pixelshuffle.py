"""``op: pixelshuffle``: sub-pixel convolution up-sampling (torch-free settings).

Shi et al. 2016 ("Real-time single image and video super-resolution using an efficient sub-pixel
convolutional neural network"), as MONAI's ``UpSample(mode="pixelshuffle")`` /
``SubpixelUpsample``: a size-preserving ``kernel`` conv to ``out * factor**dims`` channels, then a
pixel shuffle that moves those channels into a ``factor`` x larger grid (2D and 3D). With
``pad_pool`` (MONAI's default) a zero pad and a ``factor`` average pool with stride 1 follow,
which removes checkerboard artefacts (Aitken et al. 2017); ``icnr`` initialises the conv so the
shuffled output starts as a nearest-neighbour up-sampling (Aitken et al. 2017; MONAI default).
The torch module is :class:`skipgraph.resampling.pixelshuffle_modules.SubpixelUp`.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from ..fields.axes import KernelSize, Size, volume
from ..fields.types import KernelExpr
from . import ResampleOp

__all__ = ["PixelShuffle"]


class PixelShuffle(ResampleOp):
    """Sub-pixel convolution: conv to ``out * factor**dims`` channels -> pixel shuffle
    [-> pad + average pool]."""

    op: Literal["pixelshuffle"] = "pixelshuffle"
    """A registered resampling op (this one: its name)."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel of the size-preserving conv (odd; one int or one per axis)."""
    pad_pool: bool = True
    """Zero pad and a `factor` average pool with stride 1 after the shuffle (MONAI's
    default: no checkerboard artefacts)."""
    icnr: bool = True
    """ICNR initialisation of the conv (MONAI's default)."""

    uses: ClassVar[frozenset[str] | None] = frozenset(
        {"kernel", "out", "bias", "norm", "act", "order", "pad_pool", "icnr"})

    direction: ClassVar[Literal["up", "down"]] = "up"
    parametric: ClassVar[bool] = True

    @model_validator(mode="after")
    def _odd_kernel(self) -> "PixelShuffle":
        self.require_odd_kernel()
        return self

    def problem(self, dims: int, factor: Size) -> str | None:
        if not isinstance(factor, int):
            return (f"pixelshuffle up-samples by one factor on every axis; this edge's factor "
                    f"is {list(factor)} (use `transpose` or an interpolation on anisotropic "
                    f"levels)")
        return super().problem(dims, factor)

    def estimate_params(self, dims: int, in_channels: int, out_channels: int,
                        factor: int) -> int:
        return (volume(self.kernel, dims) * in_channels + 1) * out_channels * factor ** dims
