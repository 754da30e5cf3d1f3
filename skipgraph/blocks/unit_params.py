"""Settings of the conv-unit blocks of MONAI's networks, registered by name (torch-free).

- ``convunit``: ``convs`` x (conv -> norm / dropout / act in the order ``order`` names), as
  MONAI's ``Convolution`` (``adn_ordering``); ``residual: true`` adds Kerfoot et al.'s residual
  (MONAI's ``ResidualUnit``: identity, or a conv with the unit's kernel and stride where the
  unit strides, a 1x1 conv where only the channels change; no activation after the sum);
  ``transposed: true`` makes the first conv a transposed conv that strides *up*, so the node
  sits ``log2(stride)`` levels above its inputs (MONAI UNet's up path).
- ``preact``: ``units`` pre-activation residual units, ``convs`` x (norm -> act -> conv) +
  identity (a 1x1 conv where the width changes), He et al. 2016 (Identity Mappings in Deep
  Residual Networks); MONAI's SegResNet / SegResNetDS ``ResBlock``.

Torch classes: :mod:`skipgraph.blocks.units`.
"""
from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..fields.axes import KernelSize, volume
from ..fields.types import ActSetting, DropoutRate, ExprText, KernelExpr, NormSetting
from .builtin import StridedStack, check_odd_kernel, check_positive
from .registry import BlockParams, register_block

__all__ = ["ConvUnitParams", "PreActParams", "ORDERS"]


# every order of one, two or three of N (norm), D (dropout), A (activation): MONAI's ADN
ORDERS = tuple("".join(p) for n in (1, 2, 3) for p in itertools.permutations("NDA", n))
Order = Literal[ORDERS]  # type: ignore[valid-type]


class ConvUnitParams(StridedStack):
    """``convs`` x (conv -> [norm, dropout, act] in ``order``), optionally residual or with a
    transposed first conv. Submodules: ``conv1, norm1, drop1, act1, conv2, ...`` (absent ones
    skipped) and ``residual`` (a conv, when the residual is not the identity)."""

    type: Literal["convunit"] = "convunit"
    """MONAI's Convolution / ResidualUnit: convs x (conv -> norm / dropout / act in `order`)."""
    convs: ExprText = 1
    """Convs in the unit (MONAI's `subunits`, 1 to 64); the first takes `stride` and the input
    width. An expression over params and index variables is evaluated per node."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel size of each conv: an int, one per axis ([1, 3, 3]), or an expression (`kernels[i]`)."""
    bias: bool = True
    """Bias of each conv."""
    norm: NormSetting = "instance"
    act: ActSetting = "prelu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Element-wise dropout rate after each conv, placed by `order` (0: no dropout layer)."""
    order: Order = "NDA"
    """What follows each conv, in order: N (norm), D (dropout), A (activation); MONAI's
    `adn_ordering` (`NDA`: conv -> norm -> dropout -> act; `AN`: act then norm, no dropout)."""
    residual: bool | Literal["tile"] = False
    """`true`: add Kerfoot's residual, the input itself where the unit keeps the shape, else a
    conv (the unit's kernel and stride where it strides, 1x1 where only the width changes,
    with `bias`; MONAI's `ResidualUnit`). `tile`: the input itself, its channels repeated to
    the width where it grows (V-Net's input transition; the width must be a multiple of the
    input's, no stride)."""
    post_act: bool = False
    """One more activation after the sum (after the unit without a residual): V-Net's
    `act(convs(x) + x)`; MONAI's ResidualUnit has none."""
    transposed: bool = False
    """The first conv is transposed and strides up by `stride` (output = input x stride, for
    an odd kernel: padding kernel // 2, output padding stride - 1): the node sits log2(stride)
    levels above its inputs (MONAI UNet's up-sampling convs)."""
    last_conv_only: bool = False
    """The last conv without norm, dropout and activation (MONAI's `conv_only` /
    `last_conv_only`: the output layer of MONAI's UNet)."""
    input_dropout: DropoutRate = 0.0
    """Dropout on the unit's input before its first conv, in training; the residual adds the
    input as it came, undropped (V-Net's down transitions, MONAI's `DownTransition`). From 0
    (no dropout layer) to below 1; an expression is evaluated per node
    (`"0.5 if i >= 3 else 0"`)."""
    input_dropout_spatial: bool = False
    """The input dropout zeroes whole channels (`Dropout2d` / `Dropout3d`) instead of single
    values."""

    expressions = {"stride": 1, "widths": 1, "convs": 1, "input_dropout": 0.0}

    @field_validator("dilation")
    @classmethod
    def _no_dilation(cls, value: Any) -> Any:
        if value not in (1, "1"):  # MONAI's units do not dilate: refused, never ignored
            raise ValueError("`convunit` convs do not dilate (MONAI's units have no dilation); "
                             "use a `conv` or `resblock` block for atrous convs")
        return value

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))
    _convs = field_validator("convs")(classmethod(lambda cls, v: check_positive(v, "convs", 64)))

    @model_validator(mode="after")
    def _transposed_alone(self) -> "ConvUnitParams":
        if self.transposed and self.residual:
            raise ValueError("a `transposed` unit has no residual (MONAI's up-sampling conv is "
                             "a plain Convolution); put a residual unit on a node after it")
        return self

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        found = super().problems(dims, in_channels, out_channels)
        if self.residual == "tile" and (out_channels % in_channels or self.stride != 1):
            found.append(f"`residual: tile` repeats the {in_channels} input channels to the "
                         f"width: {out_channels} must be a multiple of them, with stride 1")
        return found

    def levels_down(self) -> int:
        levels = super().levels_down()
        return -levels if self.transposed else levels

    def note(self) -> str:
        parts = [f"x{self.convs}" if self.convs != 1 else "", "res" if self.residual else "",
                 "drop" if isinstance(self.input_dropout, (int, float)) and self.input_dropout
                 else ""]
        if self.stride != 1:
            parts.append(f"up x{self.stride}" if self.transposed else f"/{self.stride}")
        return " ".join(p for p in parts if p)

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: the convs of :class:`~skipgraph.blocks.units.ConvUnit` (norms and acts but
        after the last with ``last_conv_only``), the residual conv and the post-sum act."""
        from .options import layer_params
        total = self.stack_params(dims, in_channels, out_channels,
                                  layers_after_last=not self.last_conv_only,
                                  norm=self.norm if "N" in self.order else "none",
                                  act=self.act if "A" in self.order else "none")
        stride = self.conv_stride()
        strided = any(f > 1 for f in (stride if isinstance(stride, tuple) else (stride,)))
        if self.residual and self.residual != "tile" and (strided or in_channels != out_channels):
            k = volume(self.kernel, dims) if strided else 1
            total += k * in_channels * out_channels + (out_channels if self.bias else 0)
        if self.post_act:
            total += layer_params("none", self.act, out_channels)
        return total


class PreActParams(BlockParams):
    """``units`` x (``convs`` x (norm -> act -> conv) + shortcut): pre-activation residual
    units. The first unit takes the input width; its shortcut is the identity, or a 1x1 conv
    (``bias``) where the width changes. Submodules: ``unit1.norm1, unit1.act1, unit1.conv1,
    ..., unit1.shortcut``."""

    type: Literal["preact"] = "preact"
    """Pre-activation residual units (norm -> act -> conv) + shortcut: SegResNet's ResBlock."""
    units: ExprText = 1
    """Residual units in the node (SegResNet's `blocks_down`: 1, 2, 2, 4); an expression over
    params and index variables is evaluated per node (`blocks[i]`)."""
    convs: int = Field(2, ge=1, le=16)
    """(norm -> act -> conv) steps per unit."""
    kernel: KernelSize | KernelExpr = 3
    """Kernel size of each conv: an int, one per axis ([1, 3, 3]), or an expression (`kernels[i]`)."""
    bias: bool = False
    """Bias of each conv."""
    norm: NormSetting = "batch"
    act: ActSetting = "relu"

    expressions = {"units": 1}

    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))
    _units = field_validator("units")(classmethod(lambda cls, v: check_positive(v, "units", 64)))

    def note(self) -> str:
        return f"x{self.units}" if self.units != 1 else ""

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        from .options import channel_problem
        # the first unit's first norm/act run on the input channels
        found = [channel_problem(self.norm, self.act, in_channels)]
        return [p for p in found if p] + super().problems(dims, in_channels, out_channels)

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: every unit's norms, acts and convs (:class:`~skipgraph.blocks.units.
        PreActUnit`) and the 1x1 shortcut where the width changes."""
        from .options import layer_params
        units = self.units if isinstance(self.units, int) else 1
        k, bias = volume(self.kernel, dims), out_channels if self.bias else 0
        total = in_channels * out_channels + bias if in_channels != out_channels else 0
        c_in = in_channels
        for _ in range(units * self.convs):
            total += layer_params(self.norm, self.act, c_in) + k * c_in * out_channels + bias
            c_in = out_channels
        return total


register_block("convunit", ConvUnitParams, "skipgraph.blocks.units:ConvUnit",
               "convs x (conv -> norm/dropout/act in `order`) [+ residual] [transposed]: "
               "MONAI's Convolution / ResidualUnit")
register_block("preact", PreActParams, "skipgraph.blocks.units:PreActBlock",
               "units x (convs x (norm -> act -> conv) + shortcut): pre-activation residual "
               "units (SegResNet)")
