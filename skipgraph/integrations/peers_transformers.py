"""Peers with transformer encoders: their constructors from a zoo spec's params and the renaming
of their ``state_dict`` keys to skipgraph's (registered in :data:`skipgraph.integrations.peers.PEERS`).

- MONAI ``UNETR`` (``monai_unetr``): ``vit.patch_embedding.patch_embeddings`` /
  ``position_embeddings`` -> ``P.proj`` / ``P.position``; ``vit.blocks.k`` -> ``T{k+1}`` (the
  same child names: ``norm1``, ``attn.qkv``, ``attn.out_proj``, ``norm2``, ``mlp.linear1``,
  ``mlp.linear2``; ``norm_cross_attn``, which MONAI's forward never calls without
  cross-attention, has no counterpart and is skipped); ``vit.norm`` -> ``Z.norm``;
  ``encoder1.layer`` -> ``E``; ``encoder{k+1}.transp_conv_init`` (k = 1, 2, 3) -> the edge
  ``tap_T{3k+1}_R{k}``; ``encoder{k+1}.blocks.b`` (b = 0, 1): ``.0`` -> the transposed conv into
  ``A[k, 2-b]`` and ``.1`` -> that node; ``decoder5`` -> ``bottom_Z_D3`` and ``D3``;
  ``decoder{l+2}`` (l = 0, 1, 2) -> ``up_D{l+1}_D{l}`` and ``D{l}``; ``out.conv.conv`` ->
  ``head_D0``. Inside a MONAI residual unit ``convk.conv`` / ``normk`` -> ``unit1.convk`` /
  ``unit1.normk`` and ``conv3`` / ``norm3`` (the projected shortcut) -> ``unit1.shortcut.conv``
  / ``.norm``; a plain unit (``res_block: false``) keeps ``convk`` / ``normk``.
- MONAI ``SwinUNETR`` (``monai_swin_unetr``): ``swinViT.patch_embed.proj`` -> ``P.proj``;
  ``swinViT.layers{l}.0.blocks.b`` -> ``S{l}_{b+1}`` (the same child names, the relative
  position index buffer included); ``swinViT.layers{l}.0.downsample`` -> ``M{l+1}``;
  ``encoder1/2/3/4/10`` -> ``E0/1/2/3/5``; ``decoder5`` -> ``bottom_E5_D4`` and ``D4``,
  ``decoder{l+1}`` (l = 0..3) -> ``up_D{l+1}_D{l}`` and ``D{l}``; ``out.conv.conv`` ->
  ``head_D0``; residual units as UNETR's.
"""
from __future__ import annotations

import re
from typing import Any

import torch.nn as nn

__all__ = ["make_unetr", "unetr_key", "make_swin_unetr", "swin_unetr_key"]

# inside MONAI's UnetResBlock / UnetBasicBlock
_MONAI_RES_UNIT = re.compile(r"(conv\d)\.conv\.(\w+)|(norm\d)\.(\w+)")
_SHORTCUT = {"conv3": "shortcut.conv", "norm3": "shortcut.norm"}


def _unit(node: str, rest: str, model: nn.Module) -> str:
    """A MONAI conv unit's key under node ``node`` (``res_block``: skipgraph's ``resblock``)."""
    m = _MONAI_RES_UNIT.fullmatch(rest)
    if m is None:
        raise KeyError(rest)
    layer, param = (m[1], m[2]) if m[1] else (m[3], m[4])
    if not _is_residual(model):
        return f"{node}.{layer}.{param}"
    return f"{node}.unit1.{_SHORTCUT.get(layer, layer)}.{param}"


def _is_residual(model: nn.Module) -> bool:
    return type(model.encoder1.layer).__name__ == "UnetResBlock"


def _transposed(edge: str, rest: str) -> str:
    if m := re.fullmatch(r"conv\.(weight|bias)", rest):
        return f"{edge}.resample.{m[1]}"
    raise KeyError(rest)


def _unetr_vit(rest: str) -> str | None:
    if m := re.fullmatch(r"patch_embedding\.patch_embeddings\.(weight|bias)", rest):
        return f"P.proj.{m[1]}"
    if rest == "patch_embedding.position_embeddings":
        return "P.position"
    if m := re.fullmatch(r"blocks\.(\d+)\.(.*)", rest):
        if m[2].startswith("norm_cross_attn."):
            return None  # allocated by MONAI, used only with cross-attention
        return f"T{int(m[1]) + 1}.{m[2]}"
    if m := re.fullmatch(r"norm\.(weight|bias)", rest):
        return f"Z.norm.{m[1]}"
    raise KeyError(rest)


def _unetr_encoder(k: int, rest: str, model: nn.Module) -> str:
    """``encoder{k+1}``: MONAI's UnetrPrUpBlock for the tap of chain ``k`` (1..3)."""
    if rest.startswith("transp_conv_init."):
        return _transposed(f"tap_T{3 * k + 1}_R{k}", rest.removeprefix("transp_conv_init."))
    m = re.fullmatch(r"blocks\.(\d)\.([01])\.(.*)", rest)
    if m is None:
        raise KeyError(rest)
    level = 2 - int(m[1])
    source = f"R{k}" if level == 2 else f"A{k}_{level + 1}"
    if m[2] == "0":
        family = "tap_up" if level == 2 else "pr_up"
        return _transposed(f"{family}_{source}_A{k}_{level}", m[3])
    return _unit(f"A{k}_{level}", m[3], model)


def _unetr_decoder(level: int, rest: str, model: nn.Module) -> str:
    """MONAI's UnetrUpBlock into D[level] (``decoder5`` -> level 3, ..., ``decoder2`` -> 0)."""
    if rest.startswith("transp_conv."):
        edge = "bottom_Z_D3" if level == 3 else f"up_D{level + 1}_D{level}"
        return _transposed(edge, rest.removeprefix("transp_conv."))
    if rest.startswith("conv_block."):
        return _unit(f"D{level}", rest.removeprefix("conv_block."), model)
    raise KeyError(rest)


def unetr_key(key: str, model: nn.Module) -> str | None:
    """The skipgraph key of MONAI UNETR's ``key`` (None: skipped; KeyError: no rule)."""
    head, _, rest = key.partition(".")
    if head == "vit":
        return _unetr_vit(rest)
    if head == "encoder1" and rest.startswith("layer."):
        return _unit("E", rest.removeprefix("layer."), model)
    if m := re.fullmatch(r"encoder([234])", head):
        return _unetr_encoder(int(m[1]) - 1, rest, model)
    if m := re.fullmatch(r"decoder([2345])", head):
        return _unetr_decoder(int(m[1]) - 2, rest, model)
    if m := re.fullmatch(r"out\.conv\.conv\.(weight|bias)", key):
        return f"head_D0.{m[1]}"
    raise KeyError(key)


def make_unetr(p: dict[str, Any]) -> nn.Module:
    """MONAI's UNETR at the spec's params (``monai_unetr``)."""
    from monai.networks.nets import UNETR
    return UNETR(in_channels=p["in_channels"], out_channels=p["classes"], img_size=p["img_size"],
                 feature_size=p["feature_size"], hidden_size=p["hidden_size"],
                 mlp_dim=p["mlp_dim"], num_heads=p["num_heads"], norm_name=p["norm"],
                 res_block=p["res_block"], dropout_rate=p["dropout_rate"],
                 spatial_dims=p["dims"], qkv_bias=p["qkv_bias"])


_SWIN_ENCODERS = {"encoder1": "E0", "encoder2": "E1", "encoder3": "E2", "encoder4": "E3",
                  "encoder10": "E5"}


def swin_unetr_key(key: str, model: nn.Module) -> str | None:
    """The skipgraph key of MONAI SwinUNETR's ``key`` (KeyError: no rule)."""
    if m := re.fullmatch(r"swinViT\.patch_embed\.proj\.(weight|bias)", key):
        return f"P.proj.{m[1]}"
    if m := re.fullmatch(r"swinViT\.layers(\d)\.0\.blocks\.(\d+)\.(.*)", key):
        return f"S{m[1]}_{int(m[2]) + 1}.{m[3]}"
    if m := re.fullmatch(r"swinViT\.layers(\d)\.0\.downsample\.((?:norm|reduction)\.\w+)", key):
        return f"M{int(m[1]) + 1}.{m[2]}"
    head, _, rest = key.partition(".")
    if head in _SWIN_ENCODERS and rest.startswith("layer."):
        return _unit(_SWIN_ENCODERS[head], rest.removeprefix("layer."), model)
    if m := re.fullmatch(r"decoder([1-5])", head):
        level = int(m[1]) - 1
        if rest.startswith("transp_conv."):
            edge = "bottom_E5_D4" if level == 4 else f"up_D{level + 1}_D{level}"
            return _transposed(edge, rest.removeprefix("transp_conv."))
        if rest.startswith("conv_block."):
            return _unit(f"D{level}", rest.removeprefix("conv_block."), model)
    if m := re.fullmatch(r"out\.conv\.conv\.(weight|bias)", key):
        return f"head_D0.{m[1]}"
    raise KeyError(key)


def make_swin_unetr(p: dict[str, Any]) -> nn.Module:
    """MONAI's SwinUNETR at the spec's params (``monai_swin_unetr``)."""
    from monai.networks.nets import SwinUNETR
    return SwinUNETR(in_channels=p["in_channels"], out_channels=p["classes"],
                     depths=tuple(p["depths"]), num_heads=tuple(p["num_heads"]),
                     window_size=p["window_size"], qkv_bias=p["qkv_bias"],
                     mlp_ratio=p["mlp_ratio"], feature_size=p["feature_size"],
                     norm_name=p["norm"], drop_rate=p["drop_rate"],
                     attn_drop_rate=p["attn_drop_rate"], spatial_dims=p["dims"],
                     downsample=p["merge"])
