"""Torch classes of ``sepconv``, ``image_pool`` (global or pyramid pooling) and ``dropout``
(settings and papers: :mod:`skipgraph.blocks.context_params`)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .context_params import DropoutParams, ImagePoolParams, SepConvParams
from .conv import half
from .layers import CONV, SPATIAL_DROPOUT, interp_mode, make_act, make_norm

__all__ = ["SepConvStack", "ImagePool", "DropoutBlock"]

class SepConvStack(nn.Sequential):
    """``convs`` x (depthwise conv -> pointwise 1x1 conv -> norm -> act).
    ``(N, in_channels, *S) -> (N, out_channels, *S / stride)``.

    Example:
        >>> SepConvStack(2, 8, 16, SepConvParams(dilation=2, bias=False))
        SepConvStack(
          (dw1): Conv2d(8, 8, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=8, bias=False)
          (pw1): Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
          (act1): ReLU(inplace=True)
        )
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: SepConvParams):
        super().__init__()
        p, c_in = params, in_channels
        for k, c_out in enumerate(p.conv_widths(out_channels), start=1):
            self.add_module(f"dw{k}", CONV[dims](c_in, c_in, p.kernel, groups=c_in,
                                                 stride=p.conv_stride() if k == 1 else 1,
                                                 padding=half(p.kernel, p.dilation),
                                                 dilation=p.dilation, bias=False))
            self.add_module(f"pw{k}", CONV[dims](c_in, c_out, 1, bias=p.bias))
            for name, layer in ((f"norm{k}", make_norm(p.norm, dims, c_out)),
                                (f"act{k}", make_act(p.act))):
                if layer is not None:
                    self.add_module(name, layer)
            c_in = c_out


class ImagePool(nn.Module):
    """Pooling to ``bins`` cells per axis -> [``reduce`` (1x1 conv) -> ``reduce_act``] ->
    ``conv`` (1x1) -> ``norm`` -> ``act``, resized back to the input's size (the bracket with
    ``reduction``: a squeeze-and-excitation bottleneck). One bin is spread over every
    position (global pooling, DeepLabV3's image pooling, SE); more are interpolated
    (bi/tri)linearly with ``align_corners`` false (a level of PSPNet's pyramid pooling
    module). ``(N, C_in, *S) -> (N, out_channels, *S)``.

    Example:
        >>> ImagePool(2, 32, 32, ImagePoolParams(reduction=16, act="sigmoid"))
        ImagePool(
          (reduce): Conv2d(32, 2, kernel_size=(1, 1), stride=(1, 1))
          (reduce_act): ReLU(inplace=True)
          (conv): Conv2d(2, 32, kernel_size=(1, 1), stride=(1, 1))
          (act): Sigmoid()
        )
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: ImagePoolParams):
        super().__init__()
        self.use_max = params.pool == "max"
        self.bins = int(params.bins)
        self.mode = interp_mode("bilinear", dims)
        # torch.nn.functional's adaptive pooling by name (a plain value: `skipgraph eject`
        # copies it, and the forward needs no table of this module)
        self.adaptive = f"adaptive_{params.pool}_pool{dims}d"
        hidden = params.hidden_channels(in_channels)
        if hidden is not None:
            self.reduce = CONV[dims](in_channels, hidden, 1)
            self.reduce_act = make_act(params.hidden_act)
        self.conv = CONV[dims](hidden or in_channels, out_channels, 1, bias=params.bias)
        self.norm = make_norm(params.norm, dims, out_channels)
        self.act = make_act(params.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pooled(x)
        if hasattr(self, "reduce"):
            h = self.reduce(h)
            if self.reduce_act is not None:
                h = self.reduce_act(h)
        h = self.conv(h)
        if self.norm is not None:
            h = self.norm(h)
        if self.act is not None:
            h = self.act(h)
        if self.bins == 1:
            return h.expand(-1, -1, *x.shape[2:]).contiguous()  # later layers may work in place
        return F.interpolate(h, size=x.shape[2:], mode=self.mode, align_corners=False)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` averaged (or maximised) into ``bins`` cells per axis: ``(N, C, *[bins])``;
        cells split the axis as adaptive pooling does (PSPNet's bins)."""
        if self.bins == 1:
            axes = tuple(range(2, x.dim()))
            return x.amax(dim=axes, keepdim=True) if self.use_max else \
                x.mean(dim=axes, keepdim=True)
        if torch.compiler.is_exporting():
            return self.cells(x)
        return getattr(F, self.adaptive)(x, self.bins)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`pooled` for ``bins`` > 1 written axis by axis from the input's size at run
        time, as exports trace it (torch's ONNX decomposition of adaptive pooling keeps the
        cells of the size it traced): cell ``i`` of an axis of length ``L`` spans
        ``[floor(i L / bins), ceil((i + 1) L / bins))``, averaged by a matrix product (or
        maximised under a mask). Equal to adaptive pooling up to float rounding."""
        i = torch.arange(self.bins, device=x.device)
        for axis in range(2, x.dim()):
            length = x.shape[axis]
            start = (i * length) // self.bins
            end = ((i + 1) * length + self.bins - 1) // self.bins
            pos = torch.arange(length, device=x.device)
            inside = (pos >= start[:, None]) & (pos < end[:, None])  # (bins, L)
            h = x.movedim(axis, -1)
            if self.use_max:
                h = torch.where(inside, h.unsqueeze(-2), float("-inf")).amax(dim=-1)
            else:
                h = h @ (inside.to(x.dtype) / (end - start)[:, None].to(x.dtype)).T
            x = h.movedim(-1, axis)
        return x


class DropoutBlock(nn.Sequential):
    """Dropout of values (``nn.Dropout``) or of whole channels (``Dropout2d`` / ``Dropout3d``)
    as child ``drop``. ``(N, C, *S) -> (N, C, *S)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: DropoutParams):
        super().__init__()
        layer = SPATIAL_DROPOUT[dims] if params.spatial else nn.Dropout
        self.add_module("drop", layer(params.rate))
