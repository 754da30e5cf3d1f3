"""The block settings of one backbone stage (torch-free).

A backbone family (``E: {backbone: {name: resnet34}}``) expands into one node per feature level;
each node's block is a ``backbone`` stage: the timm modules that turn the previous feature into
this one. Its channels and parameter count were read from timm during expansion, so channel
inference, the resource guard and summaries need neither torch nor timm.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .registry import BlockParams, register_block

__all__ = ["BackboneStageParams"]


class BackboneStageParams(BlockParams):
    """Stage ``stage`` (0-based, of ``stages``) of the model ``model`` of a backbone provider
    (timm by default). Made by expansion only, never written in a spec."""

    type: Literal["backbone"] = "backbone"
    provider: str = "timm"
    """The backbone provider (skipgraph.backbone_registry) that builds the whole encoder."""
    model: str
    stage: int = Field(ge=0)
    stages: int = Field(ge=1)
    reduction: int = Field(ge=1)   # of the input size, as timm's feature_info reports it
    modules: tuple[str, ...] = ()  # the timm feature-net children this stage runs
    params: int = Field(0, ge=0)   # counted on timm's model (exact)
    weights: str | None = None     # local file the whole backbone is loaded from
    frozen: bool = False

    built_by_family: ClassVar[bool] = True  # the provider builds every stage at once
    written: ClassVar[bool] = False

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        return self.params

    def label(self) -> str:
        return self.model

    def written_problem(self) -> str | None:
        return ("block type `backbone` is a stage of a timm encoder; declare the encoder as a "
                "family: `E: {backbone: {name: resnet34}}`")


register_block("backbone", BackboneStageParams, "skipgraph.blocks.backbone:stage_module",
               "one stage of a timm encoder (made by a `backbone:` node family)")
