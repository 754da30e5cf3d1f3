"""MONAI's conv networks as exact peers of zoo specs: constructors and weight-key maps.

Entries of :data:`skipgraph.integrations.peers.PEERS` (see that module for how a map is used):

- MONAI ``UNet`` (``monai_unet``): the recursive ``model`` (``Sequential(down,
  SkipConnection(sub), up)``) is walked level by level: ``model`` + ``.1.submodule`` x L is
  level L's block; its ``.0`` -> ``E[L+1]``, ``.2`` -> the up path at level L (``U[L]``; with
  residual units ``.2.0`` -> ``U[L]`` and ``.2.1`` -> ``D[L]``; at L = 0 the last unit is
  ``T``); the innermost ``.1.submodule`` is the bottom unit ``D[n-1]``. Inside a unit
  ``conv.unitK.conv`` / ``conv.unitK.adn.N`` / ``conv.unitK.adn.A`` (a plain Convolution:
  ``conv`` / ``adn.N`` / ``adn.A``) -> ``conv{K+1}`` / ``norm{K+1}`` / ``act{K+1}``,
  ``residual`` -> ``residual``.
- MONAI ``DynUNet`` (``monai_dynunet``): ``input_block`` -> ``E0``, ``downsamples.s`` ->
  ``E{s+1}``, ``bottleneck`` -> ``E{n-1}`` (``convK.conv`` / ``normK`` -> ``convK`` / ``normK``;
  a residual block's ``conv3.conv`` / ``norm3`` -> ``unit1.shortcut.conv`` / ``.norm``),
  ``upsamples.t`` -> ``D{n-2-t}`` (its ``transp_conv.conv`` -> the up edge into it,
  ``conv_block`` as above), ``output_block.conv.conv`` -> ``head_D0``,
  ``deep_supervision_heads.k.conv.conv`` -> ``head_D{k+1}``.
- MONAI ``SegResNet`` / ``SegResNetDS`` (``monai_segresnet`` / ``monai_segresnet_ds``): see
  :func:`_segresnet` and :func:`_segresnet_ds`.
"""
from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["make_unet", "unet_key", "make_dynunet", "dynunet_key", "dynunet_heads",
           "make_segresnet", "segresnet_key", "make_segresnet_ds", "segresnet_ds_key"]

# inside a MONAI Convolution (``conv``, ``adn.N``, ``adn.A``) or ResidualUnit
# (``conv.unitK.<Convolution>``, ``residual``)
_MONAI_CONV = re.compile(r"(?:conv\.unit(\d+)\.)?(conv|adn\.N|adn\.A)\.(weight|bias)")
_PART = {"conv": "conv", "adn.N": "norm", "adn.A": "act"}


def _monai_unit(node: str, rest: str) -> str:
    """A MONAI Convolution / ResidualUnit's key -> the ``convunit`` block's key."""
    if m := re.fullmatch(r"residual\.(weight|bias)", rest):
        return f"{node}.residual.{m[1]}"
    m = _MONAI_CONV.fullmatch(rest)
    if m is None:
        raise KeyError(rest)
    return f"{node}.{_PART[m[2]]}{int(m[1] or 0) + 1}.{m[3]}"


def make_unet(p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets import UNet
    channels = tuple(p["channels"])
    return UNet(spatial_dims=p["dims"], in_channels=p["in_channels"], out_channels=p["classes"],
                channels=channels, strides=(2,) * (len(channels) - 1),
                kernel_size=p["kernel"], up_kernel_size=p["up_kernel"],
                num_res_units=p["res_units"], act=p["act"], norm=p["norm"],
                dropout=p["dropout"])


def unet_key(key: str, model: nn.Module) -> str | None:
    m = re.fullmatch(r"model((?:\.1\.submodule)*)\.(.*)", key)
    if m is None:
        raise KeyError(key)
    level, rest = m[1].count(".1.submodule"), m[2]
    residual = model.num_res_units > 0
    if not rest[0].isdigit():  # the innermost submodule: the bottom unit
        return _monai_unit(f"D{level}", rest)
    pos, _, rest = rest.partition(".")
    if pos == "0":
        return _monai_unit(f"E{level + 1}", rest)
    if pos != "2":
        raise KeyError(key)
    if residual:  # Sequential(transposed Convolution, ResidualUnit)
        sub, _, rest = rest.partition(".")
        node = f"U{level}" if sub == "0" else ("T" if level == 0 else f"D{level}")
        return _monai_unit(node, rest)
    return _monai_unit("T" if level == 0 else f"U{level}", rest)


def _stage_lists(p: dict[str, Any]) -> tuple[list, list, list]:
    """DynUNet's kernel_size, strides (stage 0's is 1) and filters from the spec's params."""
    n = p["stages"]
    cap = p["max_width"] or (320 if p["dims"] == 3 else 512)
    filters = list(p["filters"]) or [min(p["base"] * 2**s, cap) for s in range(n)]
    return (list(p["kernels"]) or [p["kernel"]] * n), [1] + (list(p["strides"]) or [2] * (n - 1)), \
        filters[:n]


def make_dynunet(p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets import DynUNet
    kernels, strides, filters = _stage_lists(p)
    return DynUNet(spatial_dims=p["dims"], in_channels=p["in_channels"],
                   out_channels=p["classes"], kernel_size=kernels, strides=strides,
                   upsample_kernel_size=strides[1:], filters=filters,
                   norm_name=("INSTANCE", {"affine": True}),
                   act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
                   deep_supervision=p["ds"], deep_supr_num=p["ds_num"],
                   res_block=p["res_block"], trans_bias=p["trans_bias"])


def _dynunet_block(node: str, rest: str, residual: bool) -> str:
    """A UnetBasicBlock / UnetResBlock key -> the ``conv`` / ``resblock`` block's key."""
    m = re.fullmatch(r"(conv|norm)(\d)(?:\.conv)?\.(weight|bias)", rest)
    if m is None:
        raise KeyError(rest)
    part, k = m[1], int(m[2])
    if not residual:
        return f"{node}.{part}{k}.{m[3]}"
    if k == 3:  # the shortcut's 1x1 conv and norm
        return f"{node}.unit1.shortcut.{part}.{m[3]}"
    return f"{node}.unit1.{part}{k}.{m[3]}"


def dynunet_key(key: str, model: nn.Module) -> str | None:
    if key.startswith("skip_layers."):
        return None  # the recursive skip layers hold the same modules under a second name
    n = len(model.strides)
    residual = model.conv_block.__name__ == "UnetResBlock"
    head, _, rest = key.partition(".")
    if head == "input_block":
        return _dynunet_block("E0", rest, residual)
    if head == "bottleneck":
        return _dynunet_block(f"E{n - 1}", rest, residual)
    if m := re.fullmatch(r"downsamples\.(\d+)\.(.*)", key):
        return _dynunet_block(f"E{int(m[1]) + 1}", m[2], residual)
    if m := re.fullmatch(r"upsamples\.(\d+)\.(transp_conv\.conv|conv_block)\.(.*)", key):
        t, level = int(m[1]), n - 2 - int(m[1])
        if m[2] == "conv_block":
            return _dynunet_block(f"D{level}", m[3], False)
        edge = f"bottom_E{n - 1}_D{level}" if t == 0 else f"up_D{level + 1}_D{level}"
        return f"{edge}.resample.{m[3]}"
    if m := re.fullmatch(r"output_block\.conv\.conv\.(weight|bias)", key):
        return f"head_D0.{m[1]}"
    if m := re.fullmatch(r"deep_supervision_heads\.(\d+)\.conv\.conv\.(weight|bias)", key):
        return f"head_D{int(m[1]) + 1}.{m[2]}"
    raise KeyError(key)

def make_segresnet(p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets import SegResNet
    return SegResNet(spatial_dims=p["dims"], init_filters=p["init_filters"],
                     in_channels=p["in_channels"], out_channels=p["classes"],
                     norm=("GROUP", {"num_groups": p["groups"]}),
                     blocks_down=tuple(p["blocks_down"]), blocks_up=tuple(p["blocks_up"]))


def _preact_unit(node: str, k: int, rest: str) -> str:
    """A SegResNet ResBlock / SegResBlock key (``norm1``, ``conv1[.conv]``) -> ``unit{k}``."""
    m = re.fullmatch(r"(norm|conv)(\d)(?:\.conv)?\.(\w+)", rest)  # buffers too
    if m is None:
        raise KeyError(rest)
    return f"{node}.unit{k}.{m[1]}{m[2]}.{m[3]}"


def _up_edge(level: int, deepest: int) -> str:
    """The edge into decoder node D[level]: from the encoder's bottom or from D[level + 1]."""
    return f"bottom_E{deepest}_D{level}" if level == deepest - 1 else f"up_D{level + 1}_D{level}"


def segresnet_key(key: str, model: nn.Module) -> str | None:
    """``convInit`` -> the stem's conv; ``down_layers.i.0`` (i > 0) -> the strided conv into
    ``E[i]``, ``down_layers.i.k`` -> ``E{i}.unit{k}``; ``up_samples.i.0`` -> the 1x1 conv on
    the up edge into ``D[l]`` (l = n_up - 1 - i), ``up_layers.i.k`` -> ``D{l}.unit{k+1}``;
    ``conv_final.0`` -> ``F.norm``, ``conv_final.2`` -> ``head_F``."""
    n_up = len(model.blocks_up)
    if m := re.fullmatch(r"convInit\.conv\.weight", key):
        return "stem_input_E0.conv.conv1.weight"
    if m := re.fullmatch(r"down_layers\.(\d+)\.(\d+)\.(.*)", key):
        i, k = int(m[1]), int(m[2])
        if k == 0:
            return f"encoder_E{i - 1}_E{i}.resample.{m[3].removeprefix('conv.')}"
        return _preact_unit(f"E{i}", k, m[3])
    if m := re.fullmatch(r"up_layers\.(\d+)\.(\d+)\.(.*)", key):
        return _preact_unit(f"D{n_up - 1 - int(m[1])}", int(m[2]) + 1, m[3])
    if m := re.fullmatch(r"up_samples\.(\d+)\.0\.conv\.weight", key):
        return f"{_up_edge(n_up - 1 - int(m[1]), n_up)}.conv.conv1.weight"
    if m := re.fullmatch(r"conv_final\.0\.(weight|bias)", key):
        return f"F.norm.{m[1]}"
    if m := re.fullmatch(r"conv_final\.2\.conv\.(weight|bias)", key):
        return f"head_F.{m[1]}"
    raise KeyError(key)


def make_segresnet_ds(p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets import SegResNetDS
    return SegResNetDS(spatial_dims=p["dims"], init_filters=p["init_filters"],
                       in_channels=p["in_channels"], out_channels=p["classes"], act=p["act"],
                       norm=p["norm"], blocks_down=tuple(p["blocks_down"]),
                       blocks_up=tuple(p["blocks_up"]), dsdepth=p["dsdepth"])


def segresnet_ds_key(key: str, model: nn.Module) -> str | None:
    """``encoder.conv_init`` -> the stem's conv; ``encoder.layers.i.blocks.k`` ->
    ``E{i}.unit{k+1}``, ``.downsample`` -> the strided conv into ``E[i+1]``;
    ``up_layers.i`` (l = n_up - 1 - i): ``upsample.deconv`` -> the transposed conv into
    ``D[l]``, ``blocks.k`` -> ``D{l}.unit{k+1}``, ``head`` -> ``head_D{l}``."""
    n_up = len(model.up_layers)
    if key == "encoder.conv_init.weight":
        return "stem_input_E0.conv.conv1.weight"
    if m := re.fullmatch(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.*)", key):
        return _preact_unit(f"E{m[1]}", int(m[2]) + 1, m[3])
    if m := re.fullmatch(r"encoder\.layers\.(\d+)\.downsample\.weight", key):
        return f"encoder_E{m[1]}_E{int(m[1]) + 1}.resample.weight"
    if m := re.fullmatch(r"up_layers\.(\d+)\.(.*)", key):
        level, rest = n_up - 1 - int(m[1]), m[2]
        if m := re.fullmatch(r"blocks\.(\d+)\.(.*)", rest):
            return _preact_unit(f"D{level}", int(m[1]) + 1, m[2])
        if m := re.fullmatch(r"upsample\.deconv\.weight", rest):
            return f"{_up_edge(level, n_up)}.resample.weight"
        if m := re.fullmatch(r"head\.(weight|bias)", rest):
            return f"head_D{level}.{m[1]}"
    raise KeyError(key)


def make_vnet(p: dict[str, Any]) -> nn.Module:
    """MONAI's VNet with the spec's dropout rates (``dropout_down`` -> ``dropout_prob_down``,
    ``dropout_up`` / ``dropout_skip`` -> ``dropout_prob_up``; 0 is MONAI's None).

    MONAI builds every dropout as ``Dropout3d`` whatever ``spatial_dims`` (VNet never passes
    its ``dropout_dim`` on to its transitions). In 3D that is the spec's ``spatial_dropout``
    and the peer is MONAI's as it is; on 2D tensors ``(N, C, H, W)`` torch's ``dropout3d``
    reads one unbatched volume and zeroes whole samples, so the 2D peer (and one with
    ``spatial_dropout: false``) gets ``Dropout2d`` (``nn.Dropout``) at the same rates, the
    dropout the spec gives (specs/monai_vnet.yaml states the difference)."""
    from monai.networks.nets import VNet
    net = VNet(spatial_dims=p["dims"], in_channels=p["in_channels"], out_channels=p["classes"],
               dropout_prob_down=p["dropout_down"] or None,
               dropout_prob_up=(p["dropout_up"] or None, p["dropout_skip"]))
    if p["dims"] == 3 and p["spatial_dropout"]:
        return net
    layer = nn.Dropout2d if p["spatial_dropout"] else nn.Dropout
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Dropout3d):
                setattr(module, name, layer(child.p))
    return net


_VNET_DOWN = {"down_tr32": 1, "down_tr64": 2, "down_tr128": 3, "down_tr256": 4}
_VNET_UP = {"up_tr256": 3, "up_tr128": 2, "up_tr64": 1, "up_tr32": 0}
_VNET_UP_EDGE = {3: "bottom_E4_D3", 2: "up2_D3_D2", 1: "up1_D2_D1", 0: "up0_D1_D0"}


def vnet_key(key: str, model: nn.Module) -> str | None:
    """``in_tr`` -> ``I``; ``down_trN.down_conv`` / ``bn1`` -> the strided conv / norm on the
    edge into ``E[l]``, ``up_trN.up_conv`` / ``bn1`` -> the transposed conv / norm on the edge
    into ``D[l]``; ``ops.k.conv_block.conv`` / ``.adn.N`` -> ``conv{k+1}`` / ``norm{k+1}``;
    ``out_tr.conv_block`` -> ``O``, ``out_tr.conv2`` -> ``head_O``."""
    head, _, rest = key.partition(".")
    unit = re.fullmatch(r"(?:ops\.(\d+)\.)?conv_block\.(conv|adn\.N)\.(\w+)", rest)
    node = {"in_tr": "I", "out_tr": "O"}.get(head) or (
        f"E{_VNET_DOWN[head]}" if head in _VNET_DOWN else
        f"D{_VNET_UP[head]}" if head in _VNET_UP else None)
    if node is None:
        raise KeyError(key)
    if unit is not None:
        return f"{node}.{'conv' if unit[2] == 'conv' else 'norm'}{int(unit[1] or 0) + 1}.{unit[3]}"
    if head == "out_tr" and (m := re.fullmatch(r"conv2\.(weight|bias)", rest)):
        return f"head_O.{m[1]}"
    if m := re.fullmatch(r"(down_conv|up_conv|bn1)\.(\w+)", rest):
        edge = (f"{'down1_I' if node == 'E1' else f'encoder_E{_VNET_DOWN[head] - 1}'}_{node}"
                if head in _VNET_DOWN else _VNET_UP_EDGE[_VNET_UP[head]])
        return f"{edge}.{'norm' if m[1] == 'bn1' else 'resample'}.{m[2]}"
    raise KeyError(key)

def peer_outputs(spec: str, model: nn.Module, out: Any, peer: bool = False) -> list[torch.Tensor]:
    """The heads of a compiled spec (``peer=False``) or of its MONAI peer as one list of
    tensors in the same order, comparable element by element. DynUNet stacks its deep-
    supervision heads, up-sampled (nearest) to the full size, along dim 1 in training; the
    spec's low-resolution heads are up-sampled the same way (nearest up-sampling by an integer
    factor copies each value, so equal after it means equal before)."""
    if isinstance(out, dict):
        out = list(out.values())
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if spec != "monai_dynunet" or len(outs) == 1 and outs[0].dim() == model.ir.dims + 2:
        return outs
    if peer:
        return list(outs[0].unbind(1))
    size = outs[0].shape[2:]
    return [o if o.shape[2:] == size else F.interpolate(o, size) for o in outs]
