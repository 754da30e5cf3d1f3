"""Torch side of ``type: convunit`` and ``type: preact`` (settings:
:mod:`skipgraph.blocks.unit_params`).

Kerfoot et al., Left-Ventricle Quantification Using Residual U-Net, STACOM 2018 (MONAI's
``ResidualUnit``); He et al., Identity Mappings in Deep Residual Networks, ECCV 2016 (the
pre-activation unit of Myronenko's SegResNet, BrainLes 2018).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..fields.axes import Size, axiswise
from .conv import half
from .layers import CONV, CONV_T, in_place_act, make_act, make_dropout, make_norm
from .unit_params import ConvUnitParams, PreActParams

__all__ = ["ConvUnit", "TileChannels", "PreActUnit", "PreActBlock"]


def _strided(stride: Size) -> bool:
    return any(s > 1 for s in (stride if isinstance(stride, tuple) else (stride,)))


class ConvUnit(nn.Module):
    """``convs`` x (conv -> norm / dropout / act in ``params.order``) [+ residual].
    ``(N, in_channels, *S) -> (N, out_channels, *S / stride)`` (``* stride`` when transposed).

    Children ``conv1, norm1, drop1, act1, conv2, ...`` in call order (absent ones skipped),
    ``input_drop`` (the input dropout, which the residual bypasses; or None) and ``residual``
    (a conv, or None for the identity), so state_dict keys read ``E1.conv1.weight`` whatever
    the options.

    Example:
        >>> ConvUnit(2, 1, 16, ConvUnitParams(stride=2, convs=2, residual=True)).residual
        Conv2d(1, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: ConvUnitParams):
        super().__init__()
        p, stride = params, params.conv_stride()
        widths = p.conv_widths(out_channels)
        names: list[str] = []
        c_in = in_channels
        for k, c_out in enumerate(widths, start=1):
            first = k == 1
            self.add_module(f"conv{k}", self._conv(dims, c_in, c_out, stride if first else 1,
                                                   p.transposed and first, p))
            names.append(f"conv{k}")
            if not (p.last_conv_only and k == len(widths)):
                names += self._after(dims, k, c_out, p)
            c_in = c_out
        self.layer_names = tuple(names)  # a plain tuple: `skipgraph eject` copies it
        self.input_drop = make_dropout(dims, float(p.input_dropout), p.input_dropout_spatial)
        self.residual = self._residual(dims, in_channels, out_channels, stride, p)
        self.identity_residual = bool(p.residual) and self.residual is None
        self.post_act = make_act(p.act) if p.post_act else None
        if p.residual:  # on the sum, a fresh tensor
            in_place_act(self.post_act)

    @staticmethod
    def _conv(dims: int, c_in: int, c_out: int, stride: Size, transposed: bool,
              p: ConvUnitParams) -> nn.Module:
        if transposed:  # output = input x stride for an odd kernel (MONAI's Convolution)
            extra = axiswise(lambda s: s - 1, stride)
            return CONV_T[dims](c_in, c_out, p.kernel, stride=stride, padding=half(p.kernel),
                                output_padding=extra, bias=p.bias)
        return CONV[dims](c_in, c_out, p.kernel, stride=stride, padding=half(p.kernel),
                          bias=p.bias)

    def _after(self, dims: int, k: int, channels: int, p: ConvUnitParams) -> list[str]:
        layers = {"N": ("norm", make_norm(p.norm, dims, channels)),
                  "D": ("drop", nn.Dropout(p.dropout) if p.dropout > 0 else None),
                  "A": ("act", in_place_act(make_act(p.act)))}  # on a fresh output
        names = []
        for letter in p.order:
            name, layer = layers[letter]
            if layer is not None:
                self.add_module(f"{name}{k}", layer)
                names.append(f"{name}{k}")
        return names

    @staticmethod
    def _residual(dims: int, in_channels: int, out_channels: int, stride: Size,
                  p: ConvUnitParams) -> nn.Module | None:
        if not p.residual or (not _strided(stride) and in_channels == out_channels):
            return None
        if p.residual == "tile":
            return TileChannels(out_channels // in_channels)
        if _strided(stride):
            return CONV[dims](in_channels, out_channels, p.kernel, stride=stride,
                              padding=half(p.kernel), bias=p.bias)
        return CONV[dims](in_channels, out_channels, 1, bias=p.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.input_drop is None else self.input_drop(x)
        for name in self.layer_names:
            h = getattr(self, name)(h)
        if self.residual is not None:
            h = h + self.residual(x)
        elif self.identity_residual:
            h = h + x
        return h if self.post_act is None else self.post_act(h)


class TileChannels(nn.Module):
    """The input's channels repeated ``repeats`` times, ``(N, C, *S) -> (N, C * repeats, *S)``
    (V-Net's input transition adds its input tiled to 16 channels)."""

    def __init__(self, repeats: int):
        super().__init__()
        self.repeats = repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(1, self.repeats, *[1] * (x.dim() - 2))

    def extra_repr(self) -> str:
        return f"repeats={self.repeats}"


class PreActUnit(nn.Module):
    """``convs`` x (norm -> act -> conv) + shortcut (identity, or a 1x1 conv where the width
    changes). Children ``norm1, act1, conv1, ..., shortcut``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, p: PreActParams):
        super().__init__()
        names: list[str] = []
        c_in = in_channels
        for k in range(1, p.convs + 1):
            for name, layer in ((f"norm{k}", make_norm(p.norm, dims, c_in)),
                                (f"act{k}", make_act(p.act)),
                                (f"conv{k}", CONV[dims](c_in, out_channels, p.kernel,
                                                        padding=half(p.kernel), bias=p.bias))):
                if layer is not None:
                    self.add_module(name, layer)
                    names.append(name)
            c_in = out_channels
        self.layer_names = tuple(names)
        self.shortcut = None if in_channels == out_channels else \
            CONV[dims](in_channels, out_channels, 1, bias=p.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for name in self.layer_names:
            h = getattr(self, name)(h)
        # NOTE: in place, as MONAI's ResBlock: h is the last conv's fresh output, which the
        # conv's backward does not need (saves one activation-sized buffer per unit)
        h += x if self.shortcut is None else self.shortcut(x)
        return h


class PreActBlock(nn.Sequential):
    """``units`` pre-activation units ``unit1, unit2, ...``; the first takes the input width.
    ``(N, in_channels, *S) -> (N, out_channels, *S)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: PreActParams):
        super().__init__()
        c_in = in_channels
        for u in range(1, int(params.units) + 1):
            self.add_module(f"unit{u}", PreActUnit(dims, c_in, out_channels, params))
            c_in = out_channels
