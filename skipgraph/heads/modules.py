"""Torch builders of the built-in head types (imported only when compiling).

A builder has ``module(dims, head) -> nn.Module`` (the head's submodule), ``steps(dims, head)``
(functions applied after it in the generated code, as ``(function, kwargs, name suffix)``) and,
for a gating head type, ``gate(seg, decision_output)``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks.heads import cgm_gate, make_cgm
from ..blocks.layers import CONV, interp_mode

__all__ = ["SegHeadBuilder", "CgmBuilder"]

Step = tuple[Callable[..., Any], dict[str, Any], str]

_ACT_STEPS: dict[str, Step] = {
    "sigmoid": (torch.sigmoid, {}, "sigmoid"),
    "softmax": (torch.softmax, {"dim": 1}, "softmax"),
}


class SegHeadBuilder:
    @staticmethod
    def module(dims: int, head: Any) -> nn.Module:
        s = head.settings
        return CONV[dims](head.in_channels, head.out_channels, s.kernel, padding=s.kernel // 2,
                          bias=s.bias)

    @staticmethod
    def steps(dims: int, head: Any) -> list[Step]:
        s = head.settings
        out: list[Step] = []
        if s.resized(head.level):
            out.append((F.interpolate, {"scale_factor": head.level_scale,
                                        "mode": interp_mode("bilinear", dims),
                                        "align_corners": s.align_corners}, "full"))
        if s.act in _ACT_STEPS:
            out.append(_ACT_STEPS[s.act])
        return out


class CgmBuilder:
    @staticmethod
    def module(dims: int, head: Any) -> nn.Module:
        s = head.settings
        return make_cgm(dims, head.in_channels, s.variant, int(s.layers), int(s.hidden),
                        s.dropout)

    @staticmethod
    def steps(dims: int, head: Any) -> list[Step]:
        return []

    gate = staticmethod(cgm_gate)
