"""Settings of the blocks for context aggregation in segmentation decoders (torch-free):
depthwise-separable convolutions (``sepconv``), image pooling, global or to a pyramid bin
(``image_pool``, also a squeeze-and-excitation channel gate with ``reduction``) and dropout on
a merged input (``dropout``). Their torch classes are in :mod:`skipgraph.blocks.context`.

Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic Image
Segmentation (DeepLabV3+), ECCV 2018: atrous separable convs and the image pooling branch of
ASPP; Liu et al., ParseNet, 2015 (global context by image pooling); Zhao et al., Pyramid
Scene Parsing Network, CVPR 2017 (the pyramid pooling module's bins); Tompson et al., Efficient
Object Localization Using Convolutional Networks, CVPR 2015 (spatial dropout: whole channels);
Hu, Shen, Sun, Squeeze-and-Excitation Networks, CVPR 2018 (the bottleneck of ``reduction``).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import Field, ValidationInfo, field_validator

from ..fields.axes import KernelSize, volume
from ..fields.types import ActSetting, ExprText, KernelExpr, NormSetting
from .builtin import StridedStack, check_odd_kernel, check_positive
from .options import channel_problem, resolve_norm
from .registry import BlockParams, register_block

__all__ = ["SepConvParams", "ImagePoolParams", "DropoutParams", "MAX_BINS"]


class SepConvParams(StridedStack):
    """``convs`` x (depthwise ``kernel`` conv -> pointwise 1x1 conv -> norm -> act): each conv of
    a ``conv`` block factorised into a per-channel spatial conv (``groups`` = its input
    channels, no bias) and a 1x1 conv across channels (``bias``), as Xception and DeepLabV3+'s
    ASPP and decoder. ``stride``, ``dilation`` (atrous) and ``widths`` as for ``conv``; they
    apply to the depthwise convs. Submodules ``dw1, pw1, norm1, act1, dw2, ...``."""

    type: Literal["sepconv"] = "sepconv"
    """Depthwise then pointwise convs (smp's SeparableConv2d; DeepLabV3+'s ASPP branches)."""
    convs: int = Field(1, ge=1, le=64)
    """Separable convs in a row."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel of the depthwise convs (odd; one per axis or an expression)."""
    bias: bool = True
    """Bias of the pointwise convs (the depthwise convs have none)."""
    norm: NormSetting = "none"
    """Normalisation after each pointwise conv."""
    act: ActSetting = "relu"
    """Activation after each norm."""

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: per conv a depthwise conv (no bias), a pointwise conv (``bias``), the norm
        and act (:class:`~skipgraph.blocks.context.SepConvStack`)."""
        from .options import layer_params
        total, c_in = 0, in_channels
        for c_out in self.conv_widths(out_channels):
            total += volume(self.kernel, dims) * c_in + c_in * c_out + \
                (c_out if self.bias else 0) + layer_params(self.norm, self.act, c_out)
            c_in = c_out
        return total


MAX_BINS = 256


class ImagePoolParams(BlockParams):
    """Image pooling: the input averaged (``pool: avg``; ``max``: its maximum) into ``bins``
    cells per axis (adaptive pooling; ``bins: 1``, the default, is global pooling over all
    positions), a 1x1 conv -> norm -> act, then resized back to the input's size, so the node
    keeps its input's size and carries image- or region-level context. A single bin is spread
    over every position (DeepLabV3's ASPP pooling branch, ParseNet); more are resized
    (bi/tri)linearly with ``align_corners`` false, as PSPNet's pyramid pooling module (and
    smp's PSPModule): one node per bin size, concatenated, is PSPNet's pyramid (bins 1, 2, 3,
    6; ``specs/smp_upernet.yaml``). ``(N, C_in, *S) -> (N, width, *S)``; children ``conv``,
    ``norm``, ``act``.

    With ``reduction: r`` the 1x1 conv becomes a squeeze-and-excitation bottleneck (Hu et al.,
    CVPR 2018): a 1x1 conv (with bias) to ``max(1, C_in // r)`` channels -> ``hidden_act`` ->
    the 1x1 conv to ``width`` -> norm -> act (children ``reduce``, ``reduce_act`` first). With
    ``act: sigmoid`` that is a channel gate, one weight per channel spread over the map, which
    a ``merge: product`` node multiplies into a feature (the SE blocks of MAnet's MFAB,
    ``specs/smp_manet.yaml``)."""

    type: Literal["image_pool"] = "image_pool"
    """Pooling (global, or to `bins` cells per axis), 1x1 conv(s), norm, act, resized back over
    the map (DeepLabV3's image pooling, a level of PSPNet's pyramid; with `reduction`, a
    squeeze-and-excitation gate)."""
    pool: Literal["avg", "max"] = "avg"
    """Average (`avg`, DeepLabV3, PSPNet, SE's squeeze) or max pooling."""
    bins: ExprText = 1
    """Cells per axis of the pooled map (adaptive pooling): 1 is global pooling, spread back
    over the map; more are resized back (bi/tri)linearly, align_corners false (PSPNet's bins
    1, 2, 3, 6). An expression such as `bins[k - 1]` is evaluated per node."""
    bias: bool = True
    """Bias of the (last) 1x1 conv; the bottleneck's first conv always has one."""
    reduction: int | None = Field(None, ge=1, le=2**20)
    """Squeeze-and-excitation bottleneck: a 1x1 conv to max(1, input channels // reduction)
    channels and `hidden_act` before the 1x1 conv to `width` (SE's reduction ratio r, 16 in
    the paper and smp's MAnet). None: one 1x1 conv."""
    hidden_act: ActSetting = "relu"
    """Activation inside the bottleneck (with `reduction`; SE's ReLU)."""
    norm: NormSetting = "none"
    """Normalisation after the conv (on the bins^d pooled map: with one bin, batch norm needs
    batches of 2+ and instance norm is refused)."""
    act: ActSetting = "relu"
    """Activation after the norm (`sigmoid`: a channel gate in 0..1, SE's excitation)."""

    expressions = {"bins": 1}

    _bins = field_validator("bins")(classmethod(
        lambda cls, v: check_positive(v, "bins", MAX_BINS)))

    @field_validator("norm")
    @classmethod
    def _norm(cls, value: Any, info: ValidationInfo) -> Any:
        if resolve_norm(value)[0] == "instance" and info.data.get("bins") == 1:
            raise ValueError("instance norm normalises over positions, and the pooled map has "
                             "one; use batch, group or layer norm (or none), or `bins` > 1")
        return value

    def norm_positions(self, shape: Sequence[int]) -> int:
        """The norm runs on the pooled map: ``bins`` cells per axis, whatever the map's size."""
        return int(self.bins) ** len(shape)

    def hidden_channels(self, in_channels: int) -> int | None:
        """Channels of the squeeze-and-excitation bottleneck, None without ``reduction``."""
        return None if self.reduction is None else max(1, in_channels // self.reduction)

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        found = super().problems(dims, in_channels, out_channels)
        hidden = self.hidden_channels(in_channels)
        problem = hidden is not None and channel_problem("none", self.hidden_act, hidden)
        if problem:
            found.append(f"hidden_act (in the {hidden}-channel SE bottleneck): {problem}")
        return found

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: the SE bottleneck's conv (with bias) and act, the 1x1 conv (``bias``), the
        norm and act (:class:`~skipgraph.blocks.context.ImagePool`)."""
        from .options import layer_params
        hidden = self.hidden_channels(in_channels)
        total = 0 if hidden is None else (in_channels + 1) * hidden + \
            layer_params("none", self.hidden_act, hidden)
        return total + (hidden or in_channels) * out_channels + \
            (out_channels if self.bias else 0) + layer_params(self.norm, self.act, out_channels)

    def note(self) -> str:
        pooled = f"global {self.pool}" if self.bins == 1 else f"{self.pool} {self.bins} bins"
        return pooled + (f" /{self.reduction}" if self.reduction else "")


class DropoutParams(BlockParams):
    """Dropout on the merged input (no weights; keeps the input's channels, so the node's
    ``width`` must equal them): element-wise (``spatial: false``, torch's ``Dropout``) or
    whole channels (``spatial: true``: ``Dropout2d`` / ``Dropout3d``, smp's FPN after its
    merge). Active in training only. Child ``drop``."""

    type: Literal["dropout"] = "dropout"
    """Dropout on the merged input, element-wise or whole channels (no weights)."""
    rate: float = Field(0.5, gt=0.0, lt=1.0)
    """Probability of zeroing a value (or a channel); the rest is scaled by 1 / (1 - rate)."""
    spatial: bool = False
    """Drop whole channels (every position of a channel together) instead of values."""

    def out_channels(self, in_channels: int, width: int) -> int:
        if width != in_channels:
            raise ValueError(f"a dropout block keeps its {in_channels} input channels, but the "
                             f"node's width is {width}")
        return width

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        return 0

    def note(self) -> str:
        return f"{self.rate:g}" + (" ch" if self.spatial else "")


register_block("sepconv", SepConvParams, "skipgraph.blocks.context:SepConvStack",
               "convs x (depthwise conv -> pointwise 1x1 -> norm -> act): separable, atrous")
register_block("image_pool", ImagePoolParams, "skipgraph.blocks.context:ImagePool",
               "pooling (global or to `bins` cells) -> 1x1 conv (or an SE bottleneck) -> norm "
               "-> act, resized back to the input's size")
register_block("dropout", DropoutParams, "skipgraph.blocks.context:DropoutBlock",
               "dropout of values or whole channels on the merged input (keeps channels)")
