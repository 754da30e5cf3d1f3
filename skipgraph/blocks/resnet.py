"""Residual units with the activation after the sum (ResNet's BasicBlock, ResNet-D / nnU-Net's
BasicBlockD) and the conv-free identity block; the torch side of ``type: resblock`` and
``type: identity`` (settings: :mod:`skipgraph.blocks.builtin`).

He et al., Deep Residual Learning for Image Recognition, CVPR 2016; He et al., Bag of Tricks
for Image Classification with CNNs, CVPR 2019 (the ResNet-D shortcut).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .builtin import IdentityParams, ResBlockParams
from .conv import half
from .layers import CONV, in_place_act, make_act, make_norm, output_free_backward

__all__ = ["ResUnit", "ResBlock", "IdentityBlock"]


def _axes(stride: int | tuple[int, ...]) -> tuple[int, ...]:
    return stride if isinstance(stride, tuple) else (stride,)


def _avg_pool(dims: int, stride: int | tuple[int, ...]) -> nn.Module:
    return (nn.AvgPool2d if dims == 2 else nn.AvgPool3d)(stride, stride)


class ResUnit(nn.Module):
    """One unit: ``convs`` x (conv -> norm -> act) + shortcut, the last act after the sum
    (``post_act``) or before it. ``(N, C_in, *S) -> (N, C_out, *S / stride)``.

    Children: ``conv1, norm1, act1, ..., convK, normK`` (``actK`` only without ``post_act``),
    ``shortcut`` (absent when it is the identity: a ``Sequential`` of ``pool``, ``conv``,
    ``norm`` as the settings need) and ``act`` (with ``post_act``). ReLU / LeakyReLU run in
    place, and the shortcut is added in place into the last conv's or norm's output (same
    dtype), as the peers' blocks do: no activation-sized buffer per unit beyond theirs."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, stride: int,
                 params: ResBlockParams):
        super().__init__()
        p = params
        widths = p.conv_widths(out_channels)
        names: list[str] = []  # flat child names (unit1.conv1, not unit1.body.0), in call order
        c_in = in_channels
        for k, c_out in enumerate(widths, start=1):
            layers = {f"conv{k}": CONV[dims](c_in, c_out, p.kernel,
                                             padding=half(p.kernel, p.dilation),
                                             dilation=p.dilation,
                                             stride=stride if k == 1 else 1, bias=p.bias),
                      f"norm{k}": make_norm(p.norm, dims, c_out),
                      f"act{k}": (None if p.post_act and k == len(widths)
                                  else in_place_act(make_act(p.act)))}
            for name, layer in layers.items():
                if layer is not None:
                    self.add_module(name, layer)
                    names.append(name)
            c_in = c_out
        self.layer_names = tuple(names)  # a plain tuple: `skipgraph eject` copies it
        self.shortcut = self._shortcut(dims, in_channels, out_channels, stride, p)
        self.act = in_place_act(make_act(p.act)) if p.post_act else None  # on the sum
        # the sum goes into the last layer's output where its backward does not read it (as
        # torchvision's BasicBlock, nnU-Net's BasicBlockD and MONAI's UnetResBlock add)
        self.add_in_place = output_free_backward(getattr(self, names[-1]))

    @staticmethod
    def _shortcut(dims: int, in_channels: int, out_channels: int, stride: int,
                  p: ResBlockParams) -> nn.Module | None:
        strided = any(s > 1 for s in _axes(stride))
        if not strided and in_channels == out_channels:
            return None
        parts = nn.Sequential()
        norm = make_norm(p.norm, dims, out_channels)
        conv_stride = stride
        if p.shortcut == "pool_conv":
            if strided:
                parts.add_module("pool", _avg_pool(dims, stride))
            conv_stride = 1
            if in_channels == out_channels:
                return parts
        # a 1x1 conv computes the same with any dilation; dilated as smp's make_dilated does
        # (every conv of the stage), the same kernel runs: bitwise equal to smp's encoders
        parts.add_module("conv", CONV[dims](in_channels, out_channels, 1, stride=conv_stride,
                                            dilation=p.dilation, bias=norm is None))
        if norm is not None:
            parts.add_module("norm", norm)
        return parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for name in self.layer_names:
            h = getattr(self, name)(h)
        s = x if self.shortcut is None else self.shortcut(x)
        h = h.add_(s) if self.add_in_place and h.dtype == s.dtype else h + s
        return h if self.act is None else self.act(h)


class ResBlock(nn.Sequential):
    """``units`` residual units ``unit1, unit2, ...``; the first takes the stride and the input
    channels. ``(N, in_channels, *S) -> (N, out_channels, *S / stride)``.

    Example:
        >>> ResBlock(2, 64, 128, ResBlockParams(units=2, stride=2))[0].shortcut
        Sequential(
          (conv): Conv2d(64, 128, kernel_size=(1, 1), stride=(2, 2), bias=False)
          (norm): BatchNorm2d(128, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
        )
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: ResBlockParams):
        super().__init__()
        c_in, stride = in_channels, params.conv_stride()
        for u in range(1, params.units + 1):
            self.add_module(f"unit{u}", ResUnit(dims, c_in, out_channels, stride, params))
            c_in, stride = out_channels, 1


class IdentityBlock(nn.Sequential):
    """The merged input, then ``norm`` and ``act`` where set (children ``norm``, ``act``); no
    weights besides the norm's. ``(N, C, *S) -> (N, C, *S)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: IdentityParams):
        super().__init__()
        for name, layer in (("norm", make_norm(params.norm, dims, in_channels)),
                            ("act", make_act(params.act))):
            if layer is not None:
                self.add_module(name, layer)
