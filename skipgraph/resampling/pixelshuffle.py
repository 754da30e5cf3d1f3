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

from pydantic import Field, model_validator

from . import ResampleOp

__all__ = ["PixelShuffle"]


class PixelShuffle(ResampleOp):
    """Sub-pixel convolution: conv to ``out * factor**dims`` channels -> pixel shuffle
    [-> pad + average pool]."""

    op: Literal["pixelshuffle"] = "pixelshuffle"
    kernel: int = Field(3, ge=1, le=15)
    pad_pool: bool = True
    icnr: bool = True

    direction: ClassVar[Literal["up", "down"]] = "up"
    parametric: ClassVar[bool] = True

    @model_validator(mode="after")
    def _odd_kernel(self) -> "PixelShuffle":
        self.require_odd_kernel()
        return self

    def estimate_params(self, dims: int, in_channels: int, out_channels: int,
                        factor: int) -> int:
        return (self.kernel ** dims * in_channels + 1) * out_channels * factor ** dims
