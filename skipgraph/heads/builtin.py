"""The built-in head types, registered by name (torch-free): ``seg`` and ``cgm``."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from ..fields.axes import axes_text, squeeze
from ..fields.types import ExprText, odd_kernel
from . import HeadType, register_head

__all__ = ["SegHead", "CgmHead"]


class SegHead(HeadType):
    """A segmentation head: ``kernel`` conv to ``out`` channels [-> resize] [-> act]."""

    type: Literal["seg"] = "seg"
    """A segmentation head (the default type)."""
    out: ExprText = "classes"
    """Output channels (classes)."""
    kernel: Annotated[int, Field(ge=1, le=15), AfterValidator(odd_kernel)] = 1
    """Kernel of the head's conv (odd: 1, or 3 for UNet#'s low-resolution heads)."""
    bias: bool = True
    """Bias in the head's conv."""
    act: Literal["none", "sigmoid", "softmax"] = "none"
    """Output activation: raw logits (`none`), `sigmoid` or `softmax` over channels."""
    resize: Literal["none", "full"] = "none"
    """`full`: bilinear up-sampling of a low-resolution head to the input size (UNet3+)."""
    align_corners: bool = False
    """With `resize: full`: align the corner pixels (torch's `align_corners=True`, as smp's
    segmentation heads' `nn.Upsample`); default false."""
    target: Literal["maxpool", "avgpool", "nearest"] = "maxpool"
    """How a loss shrinks the full-size target for a low-resolution head (UNet#: max-pool)."""

    expressions: ClassVar[dict[str, int]] = {"out": 1}

    @model_validator(mode="after")
    def _align_needs_resize(self) -> "SegHead":
        if self.align_corners and self.resize != "full":
            raise ValueError("`align_corners` applies to `resize: full` only")
        return self

    def out_channels(self) -> int:
        return int(self.out)

    def activation(self) -> str:
        return self.act

    def target_rule(self) -> str:
        return self.target

    def full_size(self, level: int) -> bool:
        return level == 0 or self.resize == "full"

    def resized(self, level: int) -> bool:
        """Up-sampled to the input size by the head itself (UNet3+'s low-resolution heads)."""
        return self.resize == "full" and level > 0

    def term(self, node: str, level: int) -> str:
        term = f"conv{self.kernel}x{self.kernel}({node})"
        if self.resize == "full":
            term = f"resize_full({term})"
        return term if self.act == "none" else f"{self.act}({term})"

    def drawing(self, level: int, scale: Any = None) -> tuple[str, list[str]]:
        extra = [] if self.act == "none" else [self.act]
        if self.resized(level):  # by the level's per-axis factor: x(1,4,4) on nnU-Net grids
            scale = 2 ** level if scale is None else scale
            extra.append(f"up x{axes_text(scale if isinstance(scale, int) else squeeze(scale))}")
        return str(self.out_channels()), extra

    def estimate_params(self, dims: int, in_channels: int) -> int:
        out = self.out_channels()
        return (self.kernel ** dims) * in_channels * out + (out if self.bias else 0)


class CgmHead(HeadType):
    """A classification-guided module: an image-level organ/no-organ decision that gates
    segmentation heads (``gates: all`` or the head on the ``same`` node) and has its own loss.

    ``variant: conv_max`` is UNet3+'s (dropout -> 1x1 conv -> global max pool -> sigmoid);
    ``pooled_mlp`` is UNet#'s ([avg-pool, max-pool] -> ``layers`` x (BN1d -> dropout -> linear),
    ReLU between them, ``hidden`` units -> 2-way softmax).
    """

    type: Literal["cgm"]
    """A classification-guided module."""
    variant: Literal["conv_max", "pooled_mlp"] = "conv_max"
    """`conv_max` (UNet3+: dropout, 1x1 conv, global max pool, sigmoid) or `pooled_mlp`
    (UNet#: [avg, max] pools, BN1d -> dropout -> linear stages, softmax)."""
    layers: ExprText = 1
    """Linear stages before the 2-way output (`pooled_mlp`)."""
    hidden: ExprText = 256
    """Units of the hidden stages (`pooled_mlp`)."""
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    """Dropout rate before each linear stage or the conv."""
    gates: Literal["all", "same", "none"] = "all"
    """Which segmentation heads its 0/1 decision multiplies: all, the head on the same node, or
    none."""

    pixelwise: ClassVar[bool] = False
    loss: ClassVar[str | None] = "cgm_bce"
    expressions: ClassVar[dict[str, int]] = {"layers": 1, "hidden": 1}

    def out_channels(self) -> int:
        return 2

    def head_id(self, family: str, node: str) -> str:
        return f"{family}@{node}"

    def module_prefix(self, family: str) -> str:
        return family

    def full_size(self, level: int) -> bool:
        return True  # not a map: nothing to crop or resize

    def gating(self) -> str:
        return self.gates

    def term(self, node: str, level: int) -> str:
        return f"cgm[{self.variant}]({node})"

    def drawing(self, level: int, scale: Any = None) -> tuple[str, list[str]]:
        return "CGM", [self.variant]

    def estimate_params(self, dims: int, in_channels: int) -> int:
        widths = [2 * in_channels] + [int(self.hidden)] * (int(self.layers) - 1) + [2]
        return sum(a * b for a, b in zip(widths, widths[1:])) + 2 * in_channels


register_head("seg", SegHead, "skipgraph.heads.modules:SegHeadBuilder",
              "kernel conv to `out` channels [-> resize to full size] [-> act]")
register_head("cgm", CgmHead, "skipgraph.heads.modules:CgmBuilder",
              "classification-guided module: an image-level decision gating seg heads")
from . import identity  # noqa: E402,F401  (registers `identity`: the node itself as a head)
