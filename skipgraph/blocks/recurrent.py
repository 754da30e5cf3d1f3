"""Recurrent convolutional layers (RCL) and the recurrent/residual units built from them
(RU-Net, R2U-Net, ResU-Net; Alom et al.)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .builtin import RecurrentParams, ResidualParams
from ..fields.axes import Size
from .conv import half
from .layers import CONV, make_act, make_norm

__all__ = ["RCL", "RecurrentUnit", "ResidualUnit"]


class RCL(nn.Module):
    """``h(0) = act(W_f x)``, ``h(k) = act(W_f x + W_r h(k-1))`` for k = 1..steps.

    ``tied=True`` is the widely used public code: one conv applied to ``x + h`` (so W_f = W_r,
    with one bias). ``tied=False`` is the paper's equation with separate W_f and W_r. Norms are
    one module shared by all steps, or one per step (``norm1`` is ``h(0)``'s, ...).
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, steps: int, tied: bool,
                 kernel: Size, bias: bool, norm, act, norm_per_step: bool):
        super().__init__()
        if steps and tied and in_channels != out_channels:
            raise ValueError("a tied RCL needs in_channels == out_channels (use a projection)")
        self.steps, self.tied = steps, tied
        pad = half(kernel)
        self.conv = CONV[dims](in_channels, out_channels, kernel, padding=pad, bias=bias)
        if steps and not tied:
            self.conv_r = CONV[dims](out_channels, out_channels, kernel, padding=pad, bias=False)
        n_norms = steps + 1 if norm_per_step else 1
        norms = [make_norm(norm, dims, out_channels) for _ in range(n_norms)]
        self.norms = nn.ModuleList([n for n in norms if n is not None])
        self.act = make_act(act) or nn.Identity()
        if hasattr(self.act, "inplace"):
            self.act.inplace = False  # W_f x is reused at every step: never overwrite it

    def _post(self, h: torch.Tensor, k: int) -> torch.Tensor:
        if len(self.norms):
            h = self.norms[min(k, len(self.norms) - 1)](h)
        return self.act(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tied:
            h = self._post(self.conv(x), 0)
            for k in range(1, self.steps + 1):
                h = self._post(self.conv(x + h), k)
            return h
        fx = self.conv(x)
        h = self._post(fx, 0)
        for k in range(1, self.steps + 1):
            h = self._post(fx + self.conv_r(h), k)
        return h


class RecurrentUnit(nn.Module):
    """[1x1 projection] -> ``layers`` RCLs [+ residual]. ``projection: first`` projects the input
    and adds it back (R2U-Net's RRCU in the public code); ``shortcut`` runs the RCLs on the
    input and projects only the residual path; ``none`` has no projection."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: RecurrentParams):
        super().__init__()
        p = params
        self.residual = p.residual
        self.project_first = p.projection == "first"
        self.proj = CONV[dims](in_channels, out_channels, 1) if p.projection != "none" else None
        c = out_channels if self.project_first else in_channels
        self.rcls = nn.ModuleList()
        for _ in range(p.layers):
            self.rcls.append(RCL(dims, c, out_channels, p.steps, p.tied, p.kernel, p.bias,
                                 p.norm, p.act, p.norm_per_step))
            c = out_channels
        if self.residual and self.proj is None and in_channels != out_channels:
            raise ValueError("a residual unit without projection needs in == out channels")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.project_first:
            x = self.proj(x)
        h = x
        for rcl in self.rcls:
            h = rcl(h)
        if not self.residual:
            return h
        return h + (x if self.proj is None or self.project_first else self.proj(x))


class ResidualUnit(RecurrentUnit):
    """ResU-Net's unit: the recurrent unit with no recurrence (``convs`` conv-norm-act layers)
    and a residual connection through a 1x1 projection."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, params: ResidualParams):
        super().__init__(dims, in_channels, out_channels, RecurrentParams(
            type="recurrent", steps=0, layers=params.convs, residual=True,
            projection=params.projection, kernel=params.kernel, bias=params.bias,
            norm=params.norm, act=params.act))
