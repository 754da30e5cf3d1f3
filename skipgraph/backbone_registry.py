"""Backbone providers by name (torch-free): where a ``backbone:`` node family's encoder comes
from. timm is the first; another provider is a new file with its builder and one
:func:`register_backbone_provider` line (in your module, loaded with ``--import``).

An entry's settings model (a :class:`BackboneProvider` subclass) states the torch-free facts
expansion needs before the provider's package is imported: the dims it makes and the optional
extra that installs it. Its builder, named by ``"pkg.module:attr"`` and imported only when a
spec with such a family is expanded, is an object with

- ``describe(name, in_channels) -> [StageInfo(channels, reduction, modules, params), ...]``:
  one entry per feature level, shallow to deep (``reduction`` of the input size, a power of 2;
  ``params`` counted exactly; nothing needs to be allocated);
- ``build_stages(name, in_channels, weights, frozen) -> [nn.Module, ...]``: one module per
  level, stage ``k`` mapping feature ``k - 1`` (the input for ``k = 0``) to feature ``k``
  (``weights``: a local file or None; ``frozen[k]``: stage ``k`` takes no gradients).

A provider whose ``dims`` include 3 is called with the spec's dims as a keyword,
``describe(..., dims=3)`` / ``build_stages(..., dims=3)``; a 2D-only provider never gets it.

It raises ValueError (or RuntimeError, TypeError, KeyError) for a name it cannot make; an
error with ``known_model = True`` (a model it makes but cannot use) gets no names hint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel

from .registry import Entry, Registry

__all__ = ["BackboneProvider", "BACKBONE_PROVIDERS", "register_backbone_provider",
           "StageInfo", "TimmProvider", "MonaiProvider", "dims_keyword"]


@dataclass(frozen=True)
class StageInfo:
    """One feature level of a backbone, as a provider's ``describe`` reports it."""

    channels: int
    """Channels of the feature."""
    reduction: int
    """Of the input size (2, 4, 8, ...)."""
    modules: tuple[str, ...]
    """The provider's modules run by this stage (shown by summaries; a provider's own names)."""
    params: int
    """Parameters of those modules, counted exactly."""


class BackboneProvider(BaseModel):
    """Torch-free facts of a backbone provider (override the class variables)."""

    package: ClassVar[str] = ""
    """The Python package it imports (named when it is missing)."""
    extra: ClassVar[str] = ""
    """The skipgraph extra that installs it (`pip install "skipgraph[EXTRA]"`)."""
    dims: ClassVar[tuple[int, ...]] = (2,)
    """Spatial dims its encoders take."""
    names_hint: ClassVar[str] = ""
    """Where a user finds the model names it knows (the hint of an unknown name)."""


class TimmProvider(BackboneProvider):
    """PyTorch Image Models (timm): any model whose ``feature_info`` splits into sequential
    stages (see :mod:`skipgraph.blocks.backbone`)."""

    package: ClassVar[str] = "timm"
    extra: ClassVar[str] = "backbones"
    names_hint: ClassVar[str] = "see timm.list_models()"


class MonaiProvider(BackboneProvider):
    """MONAI's FlexibleUNet encoders (``FLEXUNET_BACKBONE``: EfficientNet b0-b8 / l2, ResNet
    10-200), 2D and 3D (see :mod:`skipgraph.blocks.backbone_monai`)."""

    package: ClassVar[str] = "monai"
    extra: ClassVar[str] = "monai"
    dims: ClassVar[tuple[int, ...]] = (2, 3)
    names_hint: ClassVar[str] = ("see monai.networks.nets.flexible_unet.FLEXUNET_BACKBONE"
                                 ".register_dict (efficientnet-b0 ... efficientnet-l2, "
                                 "resnet10 ... resnet200)")


def dims_keyword(facts: BackboneProvider, dims: int) -> dict[str, int]:
    """The ``dims=`` keyword a provider's ``describe`` / ``build_stages`` get: only providers
    that make 3D encoders take it (a 2D-only provider's functions keep two arguments)."""
    return {"dims": dims} if any(d != 2 for d in facts.dims) else {}


BACKBONE_PROVIDERS: Registry[BackboneProvider] = Registry("backbone provider",
                                                          "skipgraph.backbone_registry")


def register_backbone_provider(name: str, params: type[BackboneProvider],
                               builder: str | Callable[..., Any], description: str = "",
                               replace: bool = False) -> Entry[BackboneProvider]:
    """Add a backbone provider (``backbone: {provider: NAME, name: ...}`` in a spec)."""
    return BACKBONE_PROVIDERS.register(name, params, builder, description, replace)


register_backbone_provider("timm", TimmProvider, "skipgraph.blocks.backbone:TIMM",
                           "timm encoders split at their feature levels (the `backbones` extra)")
register_backbone_provider("monai", MonaiProvider, "skipgraph.blocks.backbone_monai:MONAI",
                           "MONAI's FlexibleUNet encoders, EfficientNet and ResNet, 2D/3D "
                           "(the `monai` extra)")
