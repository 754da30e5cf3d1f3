"""segmentation_models_pytorch's decoders over a ResNet encoder written in the spec: the peers'
constructors and how their ``state_dict`` keys map onto the zoo specs' (registered in
:data:`skipgraph.integrations.peers.PEERS`).

The encoder (``specs/resnet_unet.yaml``, shared by every spec here): ``encoder.conv1`` /
``bn1`` -> the stem ``S.conv1`` / ``S.norm1``; ``encoder.layerL.b`` -> ``E{L+1}.unit{b+1}``
(``bnk`` -> ``normk``, ``downsample.0`` / ``.1`` -> ``shortcut.conv`` / ``shortcut.norm``).
Each decoder's rule is in its function's docstring. smp's ``segmentation_head.0`` is the
spec's head conv (``head_<node>``).
"""
from __future__ import annotations

import re
from typing import Any

import torch.nn as nn

__all__ = ["smp_encoder_key", "smp_model", "make_linknet", "linknet_key", "make_fpn", "fpn_key",
           "make_deeplabv3plus", "deeplabv3plus_key", "make_manet", "manet_key", "make_pan",
           "pan_key", "make_upernet", "upernet_key"]

_RESNET_PARTS = {"conv1": "conv1", "bn1": "norm1", "conv2": "conv2", "bn2": "norm2",
                 "downsample.0": "shortcut.conv", "downsample.1": "shortcut.norm"}
# inside smp's Conv2dReLU / a Sequential(conv, norm, act): .0 is the conv, .1 the norm
_CONV_NORM = {"0": "conv1", "1": "norm1"}


def smp_encoder_key(key: str) -> str | None:
    """The skipgraph key of an smp ResNet encoder key, None if ``key`` is not the encoder's."""
    if m := re.fullmatch(r"encoder\.(conv1|bn1)\.(\w+)", key):
        return f"S.{_RESNET_PARTS[m[1]]}.{m[2]}"
    if m := re.fullmatch(r"encoder\.layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.\d)\.(\w+)", key):
        return f"E{int(m[1]) + 1}.unit{int(m[2]) + 1}.{_RESNET_PARTS[m[3]]}.{m[4]}"
    return None


def smp_model(name: str, p: dict[str, Any], **kwargs: Any) -> nn.Module:
    """smp's ``name`` class over the spec's ResNet (``p``: the spec's resolved params), no
    pretrained weights, a sigmoid output as the zoo specs' heads. Raises ValueError for a
    configuration smp cannot build (3D, another base width)."""
    if p["dims"] != 2:
        raise ValueError(f"segmentation_models_pytorch's {name} is 2D; build the spec with dims=2")
    if p["base"] != 64:
        raise ValueError(f"smp's ResNets have base width 64, not {p['base']}")
    from ..blocks import backbone  # noqa: F401  (makes torchvision importable beside CPU torch)
    import segmentation_models_pytorch as smp
    return getattr(smp, name)(p["encoder"], encoder_weights=None, in_channels=p["in_channels"],
                              classes=p["classes"], activation="sigmoid", **kwargs)


def _decoder_key(key: str, table: dict[str, str]) -> str:
    """``decoder.PREFIX.tensor`` -> ``table[PREFIX].tensor``; KeyError for a key not in it."""
    m = re.fullmatch(r"decoder\.(.+)\.(\w+)", key)
    if m is None or m[1] not in table:
        raise KeyError(key)
    return f"{table[m[1]]}.{m[2]}"


def _head(key: str, node: str) -> str | None:
    m = re.fullmatch(r"segmentation_head\.0\.(weight|bias)", key)
    return f"head_{node}.{m[1]}" if m else None


def make_linknet(p: dict[str, Any]) -> nn.Module:
    return smp_model("Linknet", p, decoder_use_norm="batchnorm")


def linknet_key(key: str, model: nn.Module) -> str | None:
    """smp ``Linknet``: decoder block ``b`` (level ``5 - b`` to ``4 - b``) is ``block.0`` (1x1
    conv + BN) -> ``A{5-b}``, ``block.1`` (transposed conv + BN) -> the edge
    ``up_A{5-b}_B{4-b}`` (``resample`` / ``norm``), ``block.2`` -> ``B{4-b}``."""
    if name := smp_encoder_key(key) or _head(key, "B0"):
        return name
    m = re.fullmatch(r"decoder\.blocks\.(\d)\.block\.([012])\.([01])\.(\w+)", key)
    if m is None:
        raise KeyError(key)
    level = 5 - int(m[1])
    if m[2] == "1":
        part = "resample" if m[3] == "0" else "norm"
        return f"up_A{level}_B{level - 1}.{part}.{m[4]}"
    node = f"A{level}" if m[2] == "0" else f"B{level - 1}"
    return f"{node}.{_CONV_NORM[m[3]]}.{m[4]}"


def make_fpn(p: dict[str, Any]) -> nn.Module:
    return smp_model("FPN", p, decoder_pyramid_channels=p["pyramid"],
                     decoder_segmentation_channels=p["segmentation"],
                     decoder_dropout=p["dropout"])


def fpn_key(key: str, model: nn.Module) -> str | None:
    """smp ``FPN``: ``decoder.p5`` and ``decoder.pL.skip_conv`` -> the lateral edge conv
    ``lateral_EL_PL.conv.conv1``; ``seg_blocks.b.block.j.block.0`` / ``.1`` (branch of level
    ``k = 5 - b``, its ``j``-th conv) -> ``G{k}_{k-j}.conv1`` / ``norm1``."""
    if name := smp_encoder_key(key) or _head(key, "M"):
        return name
    if m := re.fullmatch(r"decoder\.p(\d)(?:\.skip_conv)?\.(weight|bias)", key):
        return f"lateral_E{m[1]}_P{m[1]}.conv.conv1.{m[2]}"
    m = re.fullmatch(r"decoder\.seg_blocks\.(\d)\.block\.(\d)\.block\.([01])\.(\w+)", key)
    if m is None:
        raise KeyError(key)
    k = 5 - int(m[1])
    return f"G{k}_{k - int(m[2])}.{_CONV_NORM[m[3]]}.{m[4]}"


def make_deeplabv3plus(p: dict[str, Any]) -> nn.Module:
    return smp_model("DeepLabV3Plus", p, encoder_output_stride=p["output_stride"],
                     decoder_channels=p["channels"], decoder_atrous_rates=tuple(p["rates"]),
                     decoder_aspp_dropout=p["aspp_dropout"])


# DeepLabV3Plus' decoder: smp key prefix -> skipgraph module (a separable conv's depthwise and
# pointwise convs are `.0.0` / `.0.1` in smp, `dw1` / `pw1` here)
_DEEPLAB = {"aspp.0.convs.0.0": "A0.conv1", "aspp.0.convs.0.1": "A0.norm1",
            **{f"aspp.0.convs.{k}.{part}": f"AR{k}.{name}" for k in (1, 2, 3)
               for part, name in (("0.0", "dw1"), ("0.1", "pw1"), ("1", "norm1"))},
            "aspp.0.convs.4.1": "AP.conv", "aspp.0.convs.4.2": "AP.norm",
            "aspp.0.project.0": "J.conv1", "aspp.0.project.1": "J.norm1",
            "aspp.1.0": "K.dw1", "aspp.1.1": "K.pw1", "aspp.2": "K.norm1",
            "block1.0": "H.conv1", "block1.1": "H.norm1",
            "block2.0.0": "F.dw1", "block2.0.1": "F.pw1", "block2.1": "F.norm1"}


def deeplabv3plus_key(key: str, model: nn.Module) -> str | None:
    """smp ``DeepLabV3Plus``: ASPP's branches ``aspp.0.convs.0..4`` -> ``A0``, ``AR1..3``,
    ``AP``; its projection -> ``J``; ``aspp.1`` / ``aspp.2`` (separable conv + BN) -> ``K``;
    ``block1`` -> ``H``, ``block2`` -> ``F`` (the table ``_DEEPLAB``)."""
    return smp_encoder_key(key) or _head(key, "F") or _decoder_key(key, _DEEPLAB)


def make_manet(p: dict[str, Any]) -> nn.Module:
    if p["reduction"] != 16:
        raise ValueError(f"smp's MAnet fixes the MFAB's reduction at 16, not {p['reduction']}")
    widths = [p["decoder_base"] * 2**i for i in (4, 3, 2, 1, 0)]
    return smp_model("MAnet", p, decoder_channels=widths, decoder_pab_channels=p["pab_channels"])


_PAB = {"top_conv": "key", "center_conv": "query", "bottom_conv": "value", "out_conv": "out"}
# inside an MFAB: smp's child -> the skipgraph module, {L}: the block's level
_MFAB = {"hl_conv.0.0": "H{L}.conv1", "hl_conv.0.1": "H{L}.norm1",
         "hl_conv.1.0": "hl_up_H{L}_U{L}.conv.conv1", "hl_conv.1.1": "hl_up_H{L}_U{L}.conv.norm1",
         "SE_hl.1": "GU{L}.reduce", "SE_hl.3": "GU{L}.conv",
         "SE_ll.1": "GS{L}.reduce", "SE_ll.3": "GS{L}.conv",
         "conv1.0": "B{L}.conv1", "conv1.1": "B{L}.norm1",
         "conv2.0": "B{L}.conv2", "conv2.1": "B{L}.norm2"}


def manet_key(key: str, model: nn.Module) -> str | None:
    """smp ``MAnet``: ``decoder.center`` (PABBlock) -> ``C`` (``top_conv`` / ``center_conv`` /
    ``bottom_conv`` / ``out_conv`` -> ``key`` / ``query`` / ``value`` / ``out``); decoder
    block ``b`` works at level ``L = 4 - b``: its ``hl_conv.0`` -> ``H{L}``, ``hl_conv.1`` ->
    the up edge's conv ``hl_up_H{L}_U{L}.conv``, ``SE_hl`` / ``SE_ll`` (``.1`` / ``.3``) ->
    ``GU{L}`` / ``GS{L}`` (``reduce`` / ``conv``), ``conv1`` / ``conv2`` -> ``B{L}``
    (the table ``_MFAB``; the last block, without a skip, has ``conv1`` / ``conv2`` only)."""
    if name := smp_encoder_key(key) or _head(key, "B0"):
        return name
    if m := re.fullmatch(r"decoder\.center\.(\w+)\.(weight|bias)", key):
        return f"C.{_PAB[m[1]]}.{m[2]}"
    m = re.fullmatch(r"decoder\.blocks\.(\d)\.(.+)\.(\w+)", key)
    if m is None or m[2] not in _MFAB:
        raise KeyError(key)
    return f"{_MFAB[m[2]].format(L=4 - int(m[1]))}.{m[3]}"


def make_pan(p: dict[str, Any]) -> nn.Module:
    """smp's ``PAN``; its Feature Pyramid Attention has the kernels 7, 5, 3 only (2D: smp's
    own refusal of 3D comes first)."""
    if p["dims"] == 2 and list(p["kernels"]) != [7, 5, 3]:
        raise ValueError(f"smp's PAN has the pyramid kernels [7, 5, 3], not {p['kernels']}")
    return smp_model("PAN", p, encoder_output_stride=p["output_stride"],
                     decoder_channels=p["channels"])


# PAN's decoder: smp module prefix -> skipgraph node (every prefix a ConvBnRelu, conv -> bn)
_PAN = {"fpa.branch1.1": "FP", "fpa.mid.0": "FM",
        **{f"fpa.down{k}.1": f"FD{k}" for k in (1, 2, 3)},
        "fpa.conv1": "FC1", "fpa.conv2": "FC2", "fpa.down3.2": "FC3",
        **{f"gau{n}.{part}": f"{node}{n + 1}" for n in (1, 2, 3)
           for part, node in (("conv1.1", "GP"), ("conv2", "GL"))}}
_PAN_POOLS = ("FP", "GP")  # image_pool nodes: children conv, norm


def pan_key(key: str, model: nn.Module) -> str | None:
    """smp ``PAN``: ``fpa.branch1.1`` -> ``FP``, ``fpa.mid.0`` -> ``FM``, ``fpa.downK.1`` ->
    ``FD{K}``, the lateral convs ``fpa.conv1`` / ``conv2`` / ``down3.2`` -> ``FC1`` / ``FC2``
    / ``FC3``; ``gauN`` (level ``m = N + 1``): ``conv1.1`` (the gate) -> ``GP{m}``, ``conv2``
    (the low-level conv) -> ``GL{m}`` (the table ``_PAN``). ``conv`` / ``bn`` -> ``conv1`` /
    ``norm1``, or ``conv`` / ``norm`` in the ``image_pool`` nodes ``FP``, ``GP{m}``."""
    if name := smp_encoder_key(key) or _head(key, "G2"):
        return name
    m = re.fullmatch(r"decoder\.(.+)\.(conv|bn)\.(\w+)", key)
    if m is None or m[1] not in _PAN:
        raise KeyError(key)
    node = _PAN[m[1]]
    layer = ("conv" if m[2] == "conv" else "norm") + ("" if node.startswith(_PAN_POOLS) else "1")
    return f"{node}.{layer}.{m[3]}"
def make_upernet(p: dict[str, Any]) -> nn.Module:
    """smp's ``UPerNet`` at the spec's ``channels``; its pyramid pooling sizes are fixed at
    (1, 2, 3, 6), so other ``bins`` raise ValueError."""
    if list(p["bins"]) != [1, 2, 3, 6]:
        raise ValueError(f"smp's UPerNet pools to bins (1, 2, 3, 6), not {p['bins']}")
    return smp_model("UPerNet", p, decoder_channels=p["channels"])


# UPerNet's decoder: smp key prefix -> skipgraph module (lateral / conv block j is level 4 - j)
_UPERNET = {**{f"feature_norms.{j}": f"N{j + 2}.norm" for j in range(4)},
            **{f"psp.blocks.{b}.1.{part}": f"Q{b + 1}.{name}" for b in range(4)
               for part, name in (("0", "conv"), ("1", "norm"))},
            **{f"fpn_lateral_blocks.{j}.conv_norm_relu.{part}":
               f"lateral_N{4 - j}_P{4 - j}.conv.{name}" for j in range(3)
               for part, name in _CONV_NORM.items()},
            **{f"{smp}.{part}": f"{node}.{name}" for smp, node in
               [("psp.out_conv", "O"), ("fusion_block", "F"),
                *((f"fpn_conv_blocks.{j}", f"C{4 - j}") for j in range(3))]
               for part, name in _CONV_NORM.items()}}


def upernet_key(key: str, model: nn.Module) -> str | None:
    """smp ``UPerNet``: ``feature_norms.j`` -> ``N{j+2}``; ``psp.blocks.b`` (pool, conv, BN)
    -> ``Q{b+1}``, ``psp.out_conv`` -> ``O``; ``fpn_lateral_blocks.j`` -> the lateral edge
    conv ``lateral_N{4-j}_P{4-j}``, ``fpn_conv_blocks.j`` -> ``C{4-j}``; ``fusion_block`` ->
    ``F`` (the table ``_UPERNET``)."""
    return smp_encoder_key(key) or _head(key, "F") or _decoder_key(key, _UPERNET)
