"""The settings of a backbone node family (torch-free).

``E: {backbone: {name: resnet34, weights: none, trainable: true}}`` declares a pretrained-style
encoder from timm (PyTorch Image Models), or from another registered provider (``provider:
monai``: MONAI's FlexibleUNet encoders): one node per feature level the provider reports, at
the level its reduction gives (reduction 2 -> level 1), with the channels it reports. Nothing
here imports torch or the provider; the family is expanded by :mod:`skipgraph.graph.backbone`.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..registry import RegisteredName

__all__ = ["BackboneSpec", "EXTRA"]

EXTRA = "backbones"  # the optional extra that installs timm: pip install "skipgraph[backbones]"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")  # timm model names: resnet34, convnext_tiny.fb_in1k


class BackboneSpec(BaseModel):
    """An encoder of a backbone provider (timm by default).

    ``name``: the provider's model name (timm: ``timm.list_models()``; monai: a key of
    ``FLEXUNET_BACKBONE.register_dict``). ``weights``: a local safetensors or
    state_dict file (read without executing code; relative paths are taken from the current
    directory), or ``none`` for a randomly initialised encoder; weights are never downloaded.
    ``trainable``: ``true``, ``false`` (the whole encoder frozen) or the number of leading
    stages to freeze (frozen stages keep their BatchNorm statistics).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    provider: Annotated[str, RegisteredName("skipgraph.backbone_registry:BACKBONE_PROVIDERS")] = \
        "timm"
    """Where the encoder comes from: a registered backbone provider (`timm`; `monai`, MONAI's
    FlexibleUNet encoders, 2D/3D; or one a module loaded with `--import` registers)."""
    name: str
    """The provider's model name: timm's (``timm.list_models()``, e.g. ``resnet34``) or MONAI's
    (``efficientnet-b0``, ``resnet34``)."""
    weights: str | None = None
    """A local safetensors or state_dict file in the provider's key names (timm's, or MONAI's
    encoder's), or ``none``; never downloaded."""
    trainable: bool | Annotated[int, Field(ge=0, le=1000)] = True
    """``true``, ``false`` (the whole encoder frozen) or the number of leading stages to freeze."""

    @field_validator("name")
    @classmethod
    def _timm_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"`{value}` is not a timm model name (letters, digits, _ . -)")
        return value

    @field_validator("weights")
    @classmethod
    def _none(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in ("", "none", "null") else value

    def frozen_stages(self, stages: int) -> int:
        """How many leading stages (of ``stages``) are frozen."""
        if self.trainable is True:
            return 0
        if self.trainable is False:
            return stages
        return min(int(self.trainable), stages)
