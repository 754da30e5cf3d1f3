"""Expansion of a backbone node family into one IR node per feature level of its encoder.

The levels, channels and stage boundaries come from the family's backbone provider
(:mod:`skipgraph.backbone_registry`; timm's ``feature_info``, read on the meta device, so no
weights are allocated); a feature at reduction ``r`` is placed at level ``log2(r)`` (ResNet's
first feature, at reduction 2, is level 1). The stages are chained by the family itself:
``input -> E[first] -> ... -> E[last]``, each edge without resampling because the stage strides
by itself. Only backbone specs import the provider (and with it torch).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..extras import pip_install
from ..backbone_registry import BACKBONE_PROVIDERS, dims_keyword
from ..blocks.backbone_params import BackboneStageParams
from ..spec.backbone import BackboneSpec

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
    block: BackboneStageParams  # the node's block: one stage of the encoder


def backbone_levels(spec: BackboneSpec, in_channels: int, dims: int) -> list[BackboneLevel]:
    """One entry per feature level of ``spec.name``, shallow to deep."""
    entry = BACKBONE_PROVIDERS.get(spec.provider)
    facts = entry.params
    if dims not in facts.dims:
        raise BackboneError(f"{spec.provider} backbones are "
                            f"{'/'.join(f'{d}D' for d in facts.dims)}; this spec has dims: {dims}")
    try:
        provider = entry.load_builder()
    except ImportError as exc:
        raise BackboneError(f"backbone `{spec.name}` needs {facts.package or spec.provider} "
                            f"({exc.name} is not installed)", "missing-extra",
                            pip_install(facts.extra) if facts.extra else None
                            ) from None
    try:
        stages = provider.describe(spec.name, in_channels, **dims_keyword(facts, dims))
    except (ValueError, RuntimeError, TypeError, KeyError, AssertionError) as exc:
        # the provider's answer to an unknown name or an impossible model (in_chans, ...)
        raise BackboneError(f"{spec.provider} cannot make `{spec.name}` with {in_channels} "
                            f"input channels: {exc}",
                            hint=None if getattr(exc, "known_model", False)
                            else facts.names_hint or None) from None
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
        block = BackboneStageParams(
            provider=spec.provider, model=spec.name, stage=k, stages=len(stages),
            reduction=st.reduction, modules=tuple(st.modules), params=st.params,
            weights=spec.weights, frozen=k < frozen)
        levels.append(BackboneLevel(level, st.channels, block))
    return levels
