"""Torch builder of ``type: identity`` heads (imported only when compiling)."""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from .modules import _ACT_STEPS, Step

__all__ = ["IdentityHeadBuilder"]


class IdentityHeadBuilder:
    @staticmethod
    def module(dims: int, head: Any) -> nn.Module:
        return nn.Identity()

    @staticmethod
    def steps(dims: int, head: Any) -> list[Step]:
        act = head.settings.act
        return [_ACT_STEPS[act]] if act in _ACT_STEPS else []
