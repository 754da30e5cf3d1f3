"""dynamic_network_architectures' ``ResidualUNet`` (nnU-Net's residual encoder and residual
decoder) against ``specs/nnunet_resunet.yaml``: its constructor and key map (registered in
:data:`skipgraph.integrations.peers.PEERS`).

The encoder, the transposed convs and the heads map as ``ResidualEncoderUNet``'s
(:func:`skipgraph.integrations.peers.load_peer_weights` docs); decoder stage ``t``'s units
``decoder.stages.t.blocks.b`` -> ``D{n-2-t}.unit{b+1}`` (``convk.conv`` / ``convk.norm`` ->
``convk`` / ``normk``, the projection ``skip.0`` -> ``shortcut``).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import torch.nn as nn

__all__ = ["make_residual_unet", "residual_unet_key"]


def make_residual_unet(p: dict[str, Any], make_unet: Callable[..., nn.Module]) -> nn.Module:
    """ResidualUNet built as ``make_unet`` (peers.py's nnU-Net constructor) builds its sibling
    ResidualEncoderUNet from the spec's params."""
    return make_unet(p, "ResidualUNet")


def residual_unet_key(key: str, model: nn.Module,
                      encoder_key: Callable[[str, nn.Module], str | None]) -> str | None:
    """ResidualUNet's decoder units; every other key as ResidualEncoderUNet's
    (``encoder_key``, peers.py's map)."""
    m = re.fullmatch(r"decoder\.stages\.(\d+)\.blocks\.(\d+)\.(conv\d|skip\.0)\.(conv|norm)"
                     r"\.(weight|bias)", key)
    if m is None:
        return encoder_key(key, model)
    unit = f"D{len(model.encoder.stages) - 2 - int(m[1])}.unit{int(m[2]) + 1}"
    if m[3] == "skip.0":
        return f"{unit}.shortcut.{m[4]}.{m[5]}"
    return f"{unit}.{m[4]}{m[3][-1]}.{m[5]}"
