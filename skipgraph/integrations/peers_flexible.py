"""MONAI's ``FlexibleUNet`` as the exact peer of ``specs/monai_flexible_unet.yaml``: its
constructor and the map of its ``state_dict`` keys to the compiled spec's.

An entry of :data:`skipgraph.integrations.peers.PEERS` (see that module for how a map is used):

- ``encoder.<module>.*`` -> ``E{k+1}.<module>.*``, ``k`` the stage that runs the module (the
  split of :func:`skipgraph.blocks.backbone_monai.split`; EfficientNet's stacks
  ``encoder._blocks.i`` -> ``E{k+1}._blocks_i``). The EfficientNet classification head
  FlexibleUNet never runs (``encoder._conv_head``, ``_bn1``, ``_fc``) has no counterpart.
- ``decoder.blocks.b`` (MONAI's UpCat, deep to shallow) -> ``D{4-b}``: its
  ``upsample.preconv`` -> the up edge's conv into it (``bottom_E5_D4`` for ``b = 0``, else
  ``up_D{5-b}_D{4-b}``; the last block has none), ``convs.conv_k.conv`` / ``convs.conv_k.adn.N``
  -> ``conv{k+1}`` / ``norm{k+1}``.
- ``segmentation_head.0`` -> ``head_D0``.
"""
from __future__ import annotations

import re
from typing import Any

import torch.nn as nn

__all__ = ["make_flexible_unet", "flexible_unet_key", "UNUSED_ENCODER_MODULES"]

UNUSED_ENCODER_MODULES = ("_conv_head", "_bn1", "_fc")
"""EfficientNet's classification head: built by MONAI's encoder, never run by FlexibleUNet."""


def make_flexible_unet(p: dict[str, Any]) -> nn.Module:
    """MONAI's FlexibleUNet for the spec's resolved params (random init, no download)."""
    from monai.networks.nets import FlexibleUNet
    return FlexibleUNet(in_channels=p["in_channels"], out_channels=p["classes"],
                        backbone=p["encoder"], pretrained=False,
                        decoder_channels=tuple(p["decoder"]), spatial_dims=p["dims"])


def _encoder_modules(peer: nn.Module) -> dict[str, str]:
    """MONAI's module path in the encoder -> the spec's (``_blocks.3`` -> ``E4._blocks_3``)."""
    cached = getattr(peer, "_skipgraph_encoder_map", None)
    if cached is None:
        from ..blocks.backbone_monai import split
        cached = {}
        for k, group in enumerate(split(peer.encoder)):
            for name, _ in group:
                cached[re.sub(r"^_blocks_(\d+)$", r"_blocks.\1", name)] = f"E{k + 1}.{name}"
        peer._skipgraph_encoder_map = cached
    return cached


def flexible_unet_key(key: str, peer: nn.Module) -> str | None:
    """The compiled spec's key of FlexibleUNet's ``key`` (None: a module FlexibleUNet never
    runs)."""
    if key.startswith("encoder."):
        rest = key[len("encoder."):]
        for path, name in _encoder_modules(peer).items():
            if rest.startswith(path + "."):
                return name + rest[len(path):]
        if rest.split(".", 1)[0] in UNUSED_ENCODER_MODULES:
            return None
        raise KeyError(key)
    if m := re.fullmatch(r"decoder\.blocks\.(\d)\.upsample\.preconv\.(weight|bias)", key):
        b = int(m[1])
        edge = "bottom_E5_D4" if b == 0 else f"up_D{5 - b}_D{4 - b}"
        return f"{edge}.resample.conv.{m[2]}"
    if m := re.fullmatch(r"decoder\.blocks\.(\d)\.convs\.conv_(\d)\.(conv|adn\.N)\.(\w+)", key):
        part = "conv" if m[3] == "conv" else "norm"
        return f"D{4 - int(m[1])}.{part}{int(m[2]) + 1}.{m[4]}"
    if m := re.fullmatch(r"segmentation_head\.0\.(weight|bias)", key):
        return f"head_D0.{m[1]}"
    raise KeyError(key)
