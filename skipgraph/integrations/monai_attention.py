"""MONAI's ``AttentionUnet`` as the peer of ``monai_attention_unet``: building it from the
spec's params and renaming its ``state_dict`` keys to skipgraph's.

MONAI nests one ``AttentionLayer`` per level: level ``L``'s layer sits at ``model.1`` followed
by ``L`` times ``.submodule.1``; inside it ``attention.W_g|W_x|psi`` -> the gate on the skip
into ``D[L]`` (``gate_skip_EL_DL``, ``gate_skip_b_...`` at the deepest level),
``upconv.up.conv`` / ``.adn.N`` -> the up edge into ``D[L]`` (``resample`` / ``norm``),
``merge.conv`` / ``merge.adn.A`` -> ``DL.conv1`` / ``DL.act1`` (the PReLU), and its
``submodule.0`` (``submodule`` at the deepest level) -> encoder level ``L + 1``, whose
``conv.0`` is the strided edge conv ``encoder_EL_E{L+1}`` and ``conv.1`` the node's conv.
``model.0`` is level 0 (``conv.0`` -> the stem's conv, ``conv.1`` -> ``E0``), ``model.2`` the
1x1 head ``head_D0``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
import torch.nn as nn

__all__ = ["make_attention_unet", "rename_attention_unet", "infer_attention_unet"]

_UNIT = re.compile(r"conv\.([01])\.(conv|adn\.N)\.(\w+)")


def _widths(p: dict[str, Any]) -> list[int]:
    return list(p["widths"]) if p["widths"] else [p["base"] * 2**i for i in range(p["depth"] + 1)]


def make_attention_unet(p: dict[str, Any]) -> nn.Module:
    """``monai.networks.nets.AttentionUnet`` with the spec's widths, kernels and stride 2."""
    from monai.networks.nets import AttentionUnet
    return AttentionUnet(spatial_dims=p["dims"], in_channels=p["in_channels"],
                         out_channels=p["classes"], channels=_widths(p),
                         strides=[2] * p["depth"], kernel_size=p["kernel"],
                         up_kernel_size=p["up_kernel"])


def _encoder_unit(level: int, rest: str) -> str:
    """``conv.k.*`` of the ConvBlock that makes encoder level ``level``."""
    m = _UNIT.fullmatch(rest)
    if m is None:
        raise KeyError(rest)
    part, p = ("conv" if m[2] == "conv" else "norm"), m[3]
    if m[1] == "1":
        return f"E{level}.{part}1.{p}"
    if level == 0:
        return f"stem_input_E0.conv.{part}1.{p}"
    return f"encoder_E{level - 1}_E{level}.{'resample' if part == 'conv' else 'norm'}.{p}"


def rename_attention_unet(key: str, model: nn.Module) -> str | None:
    """The skipgraph key of an ``AttentionUnet`` key (KeyError: no rule)."""
    depth = len(model.channels) - 1
    if key.startswith("model.0."):
        return _encoder_unit(0, key.removeprefix("model.0."))
    if m := re.fullmatch(r"model\.2\.conv\.(weight|bias)", key):
        return f"head_D0.{m[1]}"
    if not key.startswith("model.1."):
        raise KeyError(key)
    rest, level = key.removeprefix("model.1."), 0
    while rest.startswith("submodule.1.") and level < depth - 1:
        rest, level = rest.removeprefix("submodule.1."), level + 1
    bottom = level == depth - 1
    if m := re.fullmatch(r"attention\.(W_g|W_x|psi)\.([01])\.(?:conv\.)?(\w+)", rest):
        family = "skip_b" if bottom else "skip"
        return f"gate_{family}_E{level}_D{level}.{m[1]}.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"upconv\.up\.(conv|adn\.N)\.(\w+)", rest):
        edge = f"bottom_E{level + 1}_D{level}" if bottom else f"up_D{level + 1}_D{level}"
        return f"{edge}.{'resample' if m[1] == 'conv' else 'norm'}.{m[2]}"
    if m := re.fullmatch(r"merge\.conv\.(weight|bias)", rest):
        return f"D{level}.conv1.{m[1]}"
    if rest == "merge.adn.A.weight":
        return f"D{level}.act1.weight"
    encoder = "submodule." if bottom else "submodule.0."
    if rest.startswith(encoder):
        return _encoder_unit(level + 1, rest.removeprefix(encoder))
    raise KeyError(key)


def infer_attention_unet(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The spec params an ``AttentionUnet`` state_dict's shapes give: ``dims``,
    ``in_channels``, ``classes``, ``depth``, ``widths``, ``kernel``, ``up_kernel`` (the
    strides are not in the weights: 2 is assumed). KeyError: not an AttentionUnet's."""
    first, head = state["model.0.conv.0.conv.weight"], state["model.2.conv.weight"]
    widths, prefix = [first.shape[0]], "model.1."
    while f"{prefix}upconv.up.conv.weight" in state:
        widths.append(state[f"{prefix}upconv.up.conv.weight"].shape[0])
        prefix += "submodule.1."
    last = prefix.removesuffix("submodule.1.")
    return {"dims": first.dim() - 2, "in_channels": first.shape[1], "classes": head.shape[0],
            "depth": len(widths) - 1, "widths": widths, "kernel": first.shape[-1],
            "up_kernel": state[f"{last}upconv.up.conv.weight"].shape[-1]}
