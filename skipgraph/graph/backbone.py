"""Expansion of a backbone node family into one IR node per feature level of a timm encoder.

The levels, channels and stage boundaries come from timm's ``feature_info`` (read on the meta
device, so no weights are allocated); a feature at reduction ``r`` is placed at level
``log2(r)`` (ResNet's first feature, at reduction 2, is level 1). The stages are chained by the
family itself: ``input -> E[first] -> ... -> E[last]``, each edge without resampling because the
stage strides by itself. Only backbone specs import timm (and with it torch).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..extras import pip_install
from ..spec.backbone import EXTRA, BackboneSpec

__all__ = ["BackboneError", "BackboneLevel", "backbone_levels"]


class BackboneError(ValueError):
    """A backbone that cannot be expanded; ``code`` is a diagnostic slug."""

    def __init__(self, message: str, code: str = "bad-value", hint: str | None = None):
        super().__init__(message)
        self.code, self.hint = code, hint


@dataclass(frozen=True)
class BackboneLevel:
    level: int
    channels: int
    block: dict  # the `backbone` block settings of the node (see BackboneStageParams)


def backbone_levels(spec: BackboneSpec, in_channels: int, dims: int) -> list[BackboneLevel]:
    """One entry per feature level of ``spec.name``, shallow to deep."""
    if dims != 2:
        raise BackboneError(f"timm backbones are 2D; this spec has dims: {dims}")
    try:
        from ..blocks.backbone import describe
    except ImportError as exc:
        raise BackboneError(f"backbone `{spec.name}` needs timm ({exc.name} is not installed)",
                            "missing-extra", pip_install(EXTRA)) from None
    try:
        stages = describe(spec.name, in_channels)
    except (ValueError, RuntimeError, TypeError, KeyError, AssertionError) as exc:
        # timm's answer to an unknown name or an impossible model (in_chans, ...)
        raise BackboneError(f"timm cannot make `{spec.name}` with {in_channels} input "
                            f"channels: {exc}", hint="see timm.list_models()") from None
    frozen = spec.frozen_stages(len(stages))
    levels: list[BackboneLevel] = []
    for k, st in enumerate(stages):
        level = st.reduction.bit_length() - 1
        if st.reduction != 1 << level or level == 0:
            raise BackboneError(f"`{spec.name}` feature {k} has reduction {st.reduction}; "
                                "a backbone level needs a reduction of 2, 4, 8, ...")
        if levels and level <= levels[-1].level:
            raise BackboneError(f"`{spec.name}` reports two features at reduction "
                                f"{st.reduction}; one node per level is possible")
        block = {"type": "backbone", "model": spec.name, "stage": k, "stages": len(stages),
                 "reduction": st.reduction, "modules": list(st.modules), "params": st.params,
                 "weights": spec.weights, "frozen": k < frozen}
        levels.append(BackboneLevel(level, st.channels, block))
    return levels
