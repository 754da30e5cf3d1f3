"""The peer packages whose networks zoo specs reproduce exactly, and how their weights map.

For each exact-peer spec this module knows the peer's class (built with the spec's params) and
a documented renaming of the peer's ``state_dict`` keys to skipgraph's, so a peer's trained
weights load into the compiled spec (and the tests can check equal outputs):

- MONAI ``BasicUNet`` (``monai_basic_unet``): ``conv_0`` -> ``X0_0``, ``down_i.convs`` ->
  ``Xi_0``, ``upcat_l.convs`` -> ``X{l-1}_{5-l}``, ``upcat_l.upsample.deconv`` -> the up edge
  into that node (``up0_...`` at level 0), ``final_conv`` -> ``head_X0_4``; inside a unit
  ``conv_k.conv`` / ``conv_k.adn.N`` -> ``conv{k+1}`` / ``norm{k+1}``.
- MONAI ``BasicUNetPlusPlus`` (``monai_basic_unetpp``): ``conv_i_0`` -> ``Xi_0``,
  ``upcat_i_j.convs`` -> ``Xi_j``, ``upcat_i_j.upsample.deconv`` -> the up edge into ``X[i,j]``,
  ``final_conv_0_j`` -> ``head_X0_j`` (MONAI's heads unused without ``ds`` have no counterpart).
- dynamic_network_architectures ``PlainConvUNet`` (``nnunet_plain``, nnU-Net's U-Net), ``n``
  stages: encoder stage ``s``'s first conv + norm -> the edge into ``E[s]`` (the stem's conv for
  ``s = 0``, the strided conv ``encoder_E{s-1}_E{s}`` otherwise), its other convs ->
  ``Es.conv{k}``; decoder stage ``t`` -> ``D{n-2-t}``, ``transpconvs.t`` -> the up edge into it,
  ``seg_layers.t`` -> ``head_D{n-2-t}``. ``all_modules`` and ``decoder.encoder`` are aliases of
  the same tensors and are skipped.
- dynamic_network_architectures ``ResidualEncoderUNet`` (``nnunet_resenc``): the stem's conv +
  norm -> the edge conv ``stem_input_E0``; ``encoder.stages.s.blocks.b`` -> ``E{s}.unit{b+1}``
  (``convk.conv`` / ``convk.norm`` -> ``convk`` / ``normk``, ``skip.1`` -> ``shortcut``);
  the decoder as PlainConvUNet's.
- segmentation_models_pytorch ``Unet`` / ``UnetPlusPlus`` over ``resnet18`` / ``resnet34``
  (``resnet_unet``, its encoder written in the spec): ``encoder.conv1`` / ``bn1`` -> the stem
  ``S.conv1`` / ``S.norm1``; ``encoder.layerL.b`` -> ``E{L+1}.unit{b+1}`` (``bnk`` -> ``normk``,
  ``downsample.0`` / ``.1`` -> ``shortcut.conv`` / ``shortcut.norm``); Unet's
  ``decoder.blocks.b`` -> ``D{4-b}_0``, UnetPlusPlus' ``decoder.blocks.x_d_L`` -> ``D{4-L}_d``
  (``convk.0`` / ``convk.1`` -> ``convk`` / ``normk``); ``segmentation_head.0`` -> ``head_D0_0``.
- MONAI's UNet, DynUNet, SegResNet, SegResNetDS: :mod:`skipgraph.integrations.peers_monai`.
- smp's other decoders over that encoder (``smp_*`` specs): :mod:`.peers_smp`.
- dynamic_network_architectures ``ResidualUNet`` (``nnunet_resunet``): :mod:`.peers_nnunet`.
- MONAI ``FlexibleUNet`` (``monai_flexible_unet``, EfficientNet / ResNet encoders):
  :mod:`skipgraph.integrations.peers_flexible`.
- MONAI ``UNETR`` (``monai_unetr``) and ``SwinUNETR`` (``monai_swin_unetr``):
  :mod:`skipgraph.integrations.peers_transformers`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from . import peers_monai
from . import peers_nnunet as nnunet_peers
from . import peers_smp as smp_peers
from .peers_flexible import flexible_unet_key, make_flexible_unet
from .peers_smp import smp_encoder_key
from .peers_transformers import make_swin_unetr, make_unetr, swin_unetr_key, unetr_key
from .monai_attention import infer_attention_unet, make_attention_unet, rename_attention_unet
from .peer_shapes import infer_basic_unet, infer_basic_unetpp, infer_nnunet, infer_smp_unet

__all__ = ["Peer", "PEERS", "build_peer", "peer_key_map", "load_peer_weights"]

# inside one MONAI unit (TwoConv): conv_k.conv.* / conv_k.adn.N.*
_MONAI_UNIT = re.compile(r"conv_(\d)\.(conv|adn\.N)\.(weight|bias)")
# inside one nnU-Net ConvDropoutNormReLU stack: convs.k.conv.* / convs.k.norm.*
_NNUNET_UNIT = re.compile(r"convs\.(\d+)\.(conv|norm)\.(weight|bias)")


def _monai_unit(node: str, rest: str) -> str:
    m = _MONAI_UNIT.fullmatch(rest)
    if m is None:
        raise KeyError(rest)
    part = "conv" if m[2] == "conv" else "norm"
    return f"{node}.{part}{int(m[1]) + 1}.{m[3]}"


def _monai_up(i: int, j: int, rest: str) -> str:
    """The transposed conv into X[i,j] (from X[i+1,j-1]); level 0 has its own family."""
    if not rest.startswith("upsample.deconv."):
        raise KeyError(rest)
    family = "up0" if i == 0 else "up"
    return f"{family}_X{i + 1}_{j - 1}_X{i}_{j}.resample.{rest.rsplit('.', 1)[1]}"


def _monai_basic_unet(key: str, model: nn.Module) -> str | None:
    head, _, rest = key.partition(".")
    if head == "conv_0":
        return _monai_unit("X0_0", rest)
    if m := re.fullmatch(r"down_(\d)", head):
        return _monai_unit(f"X{m[1]}_0", rest.removeprefix("convs."))
    if m := re.fullmatch(r"upcat_(\d)", head):
        i, j = int(m[1]) - 1, 5 - int(m[1])
        if rest.startswith("convs."):
            return _monai_unit(f"X{i}_{j}", rest.removeprefix("convs."))
        return _monai_up(i, j, rest)
    if head == "final_conv":
        return f"head_X0_4.{rest}"
    raise KeyError(key)


def _monai_basic_unetpp(key: str, model: nn.Module) -> str | None:
    head, _, rest = key.partition(".")
    if head == "conv_0_0":
        return _monai_unit("X0_0", rest)
    if m := re.fullmatch(r"conv_(\d)_0", head):
        return _monai_unit(f"X{m[1]}_0", rest.removeprefix("convs."))
    if m := re.fullmatch(r"upcat_(\d)_(\d)", head):
        i, j = int(m[1]), int(m[2])
        if rest.startswith("convs."):
            return _monai_unit(f"X{i}_{j}", rest.removeprefix("convs."))
        return _monai_up(i, j, rest)
    if m := re.fullmatch(r"final_conv_0_(\d)", head):
        return f"head_X0_{m[1]}.{rest}"
    raise KeyError(key)


def _nnunet_plain(key: str, model: nn.Module) -> str | None:
    if ".all_modules." in key or key.startswith("decoder.encoder."):
        return None  # aliases of tensors mapped under their own names
    n = len(model.encoder.stages)
    if m := re.fullmatch(r"encoder\.stages\.(\d+)\.0\.(.*)", key):
        s, unit = int(m[1]), _NNUNET_UNIT.fullmatch(m[2])
        if unit is None:
            raise KeyError(key)
        k, part, p = int(unit[1]), unit[2], unit[3]
        if k > 0:
            return f"E{s}.{part}{k}.{p}"
        if s == 0:
            return f"stem_input_E0.conv.{part}1.{p}"
        return f"encoder_E{s - 1}_E{s}.{'resample' if part == 'conv' else 'norm'}.{p}"
    return _nnunet_decoder(key, n)


def _nnunet_decoder(key: str, n: int) -> str:
    """nnU-Net's UNetDecoder (shared by PlainConvUNet and ResidualEncoderUNet), ``n`` stages."""
    if m := re.fullmatch(r"decoder\.stages\.(\d+)\.(.*)", key):
        unit = _NNUNET_UNIT.fullmatch(m[2])
        if unit is None:
            raise KeyError(key)
        return f"D{n - 2 - int(m[1])}.{unit[2]}{int(unit[1]) + 1}.{unit[3]}"
    if m := re.fullmatch(r"decoder\.transpconvs\.(\d+)\.(weight|bias)", key):
        t, level = int(m[1]), n - 2 - int(m[1])
        edge = f"bottom_E{n - 1}_D{level}" if t == 0 else f"up_D{level + 1}_D{level}"
        return f"{edge}.resample.{m[2]}"
    if m := re.fullmatch(r"decoder\.seg_layers\.(\d+)\.(weight|bias)", key):
        return f"head_D{n - 2 - int(m[1])}.{m[2]}"
    raise KeyError(key)


def _smp_resnet_unet(key: str, model: nn.Module) -> str | None:
    if name := smp_encoder_key(key):
        return name
    if m := re.fullmatch(r"decoder\.blocks\.(?:(\d+)|x_(\d+)_(\d+))\.conv(\d)\.([01])\.(\w+)",
                         key):
        node = f"D{4 - int(m[1])}_0" if m[1] else f"D{4 - int(m[3])}_{m[2]}"
        return f"{node}.{'conv' if m[5] == '0' else 'norm'}{m[4]}.{m[6]}"
    if m := re.fullmatch(r"segmentation_head\.0\.(weight|bias)", key):
        return f"head_D0_0.{m[1]}"
    raise KeyError(key)


def _make_smp_unet(p: dict[str, Any]) -> nn.Module:
    if p["dims"] != 2:
        raise ValueError("segmentation_models_pytorch's Unet is 2D; build resnet_unet with dims=2")
    from ..blocks import backbone  # noqa: F401  (makes torchvision importable beside CPU torch)
    import segmentation_models_pytorch as smp
    if p["base"] != 64:
        raise ValueError(f"smp's ResNets have base width 64, not {p['base']}")
    cls = smp.Unet if p["decoder"] == "unet" else smp.UnetPlusPlus
    return cls(p["encoder"], encoder_weights=None, in_channels=p["in_channels"],
               classes=p["classes"], activation="sigmoid",
               decoder_channels=[p["decoder_base"] * 2**i for i in range(4, -1, -1)])


def _nnunet_resenc(key: str, model: nn.Module) -> str | None:
    if ".all_modules." in key or key.startswith("decoder.encoder."):
        return None  # aliases of tensors mapped under their own names
    if m := re.fullmatch(r"encoder\.stem\.convs\.0\.(conv|norm)\.(weight|bias)", key):
        return f"stem_input_E0.conv.{m[1]}1.{m[2]}"
    if m := re.fullmatch(r"encoder\.stages\.(\d+)\.blocks\.(\d+)\.(conv\d|skip\.1)\.(conv|norm)"
                         r"\.(weight|bias)", key):
        unit = f"E{m[1]}.unit{int(m[2]) + 1}"
        if m[3] == "skip.1":
            return f"{unit}.shortcut.{m[4]}.{m[5]}"
        return f"{unit}.{m[4]}{m[3][-1]}.{m[5]}"
    return _nnunet_decoder(key, len(model.encoder.stages))


def _monai_features(p: dict[str, Any]) -> tuple[int, ...]:
    return tuple(p[f"f{k}"] for k in range(6))


def _make_basic_unet(p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets import BasicUNet
    return BasicUNet(spatial_dims=p["dims"], in_channels=p["in_channels"],
                     out_channels=p["classes"], features=_monai_features(p))


def _make_basic_unetpp(p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets import BasicUNetPlusPlus
    return BasicUNetPlusPlus(spatial_dims=p["dims"], in_channels=p["in_channels"],
                             out_channels=p["classes"], features=_monai_features(p),
                             deep_supervision=p["ds"])


def _nnunet_stage_lists(p: dict[str, Any]) -> tuple[list, list]:
    """nnU-Net's ``kernel_sizes`` and ``strides`` from the spec's per-stage lists ([] = one
    value throughout); nnU-Net's strides include stage 0's (always 1), the spec's start below."""
    n = p["stages"]
    return (p.get("kernels") or [p["kernel"]] * n), [1] + (p.get("strides") or [2] * (n - 1))


def _make_plain_conv_unet(p: dict[str, Any]) -> nn.Module:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    dims, n = p["dims"], p["stages"]
    kernels, strides = _nnunet_stage_lists(p)
    return PlainConvUNet(
        input_channels=p["in_channels"], n_stages=n,
        features_per_stage=[min(p["base"] * 2**s, p["max_width"]) for s in range(n)],
        conv_op=nn.Conv2d if dims == 2 else nn.Conv3d, kernel_sizes=kernels,
        strides=strides, n_conv_per_stage=p["convs"], num_classes=p["classes"],
        n_conv_per_stage_decoder=p["decoder_convs"], conv_bias=True,
        norm_op=nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
        nonlin_kwargs={"inplace": True}, deep_supervision=p["ds"])


def _make_residual_encoder_unet(p: dict[str, Any], name: str = "ResidualEncoderUNet"
                                ) -> nn.Module:
    """dynamic_network_architectures' ``name`` (ResidualEncoderUNet or ResidualUNet)."""
    from dynamic_network_architectures.architectures import unet
    dims, n = p["dims"], p["stages"]
    blocks = list(p["blocks"])
    kernels, strides = _nnunet_stage_lists(p)
    return getattr(unet, name)(
        input_channels=p["in_channels"], n_stages=n,
        features_per_stage=[min(p["base"] * 2**s, p["max_width"]) for s in range(n)],
        conv_op=nn.Conv2d if dims == 2 else nn.Conv3d, kernel_sizes=kernels,
        strides=strides, n_blocks_per_stage=blocks[:n], num_classes=p["classes"],
        n_conv_per_stage_decoder=p["decoder_convs"], conv_bias=True,
        norm_op=nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
        nonlin_kwargs={"inplace": True}, deep_supervision=p["ds"])


@dataclass(frozen=True)
class Peer:
    """A zoo spec's peer: ``make(params)`` builds the peer's module from the spec's resolved
    params; ``rename(key, peer_module)`` gives the skipgraph key of a peer key (None: an alias
    or a head the spec does not build); ``package`` is what to install to get it;
    ``infer(state_dict)``, where given, the spec params the peer's tensor shapes give
    (KeyError: not this peer's tensors), used by ``skipgraph import``."""

    spec: str
    label: str
    package: str
    make: Callable[[dict[str, Any]], nn.Module]
    rename: Callable[[str, nn.Module], str | None]
    infer: Callable[[Mapping[str, torch.Tensor]], dict[str, Any]] | None = None


PEERS: dict[str, Peer] = {p.spec: p for p in [
    Peer("monai_basic_unet", "MONAI BasicUNet", "monai", _make_basic_unet, _monai_basic_unet,
         infer_basic_unet),
    Peer("monai_basic_unetpp", "MONAI BasicUNetPlusPlus", "monai", _make_basic_unetpp,
         _monai_basic_unetpp, infer_basic_unetpp),
    Peer("nnunet_plain", "nnU-Net PlainConvUNet", "dynamic_network_architectures",
         _make_plain_conv_unet, _nnunet_plain, infer_nnunet),
    Peer("nnunet_resenc", "nnU-Net ResidualEncoderUNet", "dynamic_network_architectures",
         _make_residual_encoder_unet, _nnunet_resenc, infer_nnunet),
    Peer("nnunet_resunet", "nnU-Net ResidualUNet", "dynamic_network_architectures",
         lambda p: nnunet_peers.make_residual_unet(p, _make_residual_encoder_unet),
         lambda k, m: nnunet_peers.residual_unet_key(k, m, _nnunet_resenc)),
    Peer("resnet_unet", "segmentation_models_pytorch Unet / UnetPlusPlus (ResNet)",
         "segmentation_models_pytorch", _make_smp_unet, _smp_resnet_unet, infer_smp_unet),
    Peer("monai_unet", "MONAI UNet", "monai", peers_monai.make_unet, peers_monai.unet_key),
    Peer("monai_dynunet", "MONAI DynUNet", "monai", peers_monai.make_dynunet,
         peers_monai.dynunet_key),
    Peer("monai_segresnet", "MONAI SegResNet", "monai", peers_monai.make_segresnet,
         peers_monai.segresnet_key),
    Peer("monai_segresnet_ds", "MONAI SegResNetDS", "monai", peers_monai.make_segresnet_ds,
         peers_monai.segresnet_ds_key),
    Peer("monai_vnet", "MONAI VNet", "monai", peers_monai.make_vnet,
         peers_monai.vnet_key),
    Peer("smp_linknet", "segmentation_models_pytorch Linknet (ResNet)",
         "segmentation_models_pytorch", smp_peers.make_linknet, smp_peers.linknet_key),
    Peer("smp_fpn", "segmentation_models_pytorch FPN (ResNet)", "segmentation_models_pytorch",
         smp_peers.make_fpn, smp_peers.fpn_key),
    Peer("smp_deeplabv3plus", "segmentation_models_pytorch DeepLabV3Plus (ResNet)",
         "segmentation_models_pytorch", smp_peers.make_deeplabv3plus, smp_peers.deeplabv3plus_key),
    Peer("smp_manet", "segmentation_models_pytorch MAnet (ResNet)", "segmentation_models_pytorch",
         smp_peers.make_manet, smp_peers.manet_key),
    Peer("smp_pan", "segmentation_models_pytorch PAN (ResNet)", "segmentation_models_pytorch",
         smp_peers.make_pan, smp_peers.pan_key),
    Peer("smp_upernet", "segmentation_models_pytorch UPerNet (ResNet)",
         "segmentation_models_pytorch", smp_peers.make_upernet, smp_peers.upernet_key),
    Peer("monai_unetr", "MONAI UNETR", "monai", make_unetr, unetr_key),
    Peer("monai_swin_unetr", "MONAI SwinUNETR", "monai", make_swin_unetr, swin_unetr_key),
    Peer("monai_attention_unet", "MONAI AttentionUnet", "monai", make_attention_unet,
         rename_attention_unet, infer_attention_unet),
    Peer("monai_flexible_unet", "MONAI FlexibleUNet (EfficientNet / ResNet)", "monai",
         make_flexible_unet, flexible_unet_key),
]}


def build_peer(spec: str, params: dict[str, Any]) -> nn.Module:
    """The peer module of zoo spec ``spec`` for the spec's resolved ``params``
    (``model.ir.params``). Raises KeyError for a spec without a peer, ImportError when the
    peer's package is not installed."""
    return PEERS[spec].make(params)


def peer_key_map(spec: str, peer: nn.Module) -> dict[str, str | None]:
    """Every key of ``peer.state_dict()`` -> its skipgraph key (None: skipped)."""
    rename = PEERS[spec].rename
    return {k: rename(k, peer) for k in peer.state_dict()}


def load_peer_weights(model: nn.Module, peer: nn.Module, spec: str) -> None:
    """Copy ``peer``'s weights into the compiled spec ``model`` (in place).

    Raises ValueError when a key has no counterpart, a skipgraph tensor would stay unset, or
    shapes differ (the two were built with different params)."""
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    problems = []
    for key, value in peer.state_dict().items():
        try:
            name = PEERS[spec].rename(key, peer)
        except KeyError:
            problems.append(f"peer key `{key}` has no rule")
            continue
        if name is None:
            continue
        if name not in target:
            if name.startswith("head_"):
                continue  # a peer head the spec does not build (e.g. without deep supervision)
            problems.append(f"peer key `{key}` -> `{name}`, which the spec does not have")
        elif target[name].shape != value.shape:
            problems.append(f"`{key}` {tuple(value.shape)} vs `{name}` {tuple(target[name].shape)}")
        else:
            mapped[name] = value
    problems += [f"`{k}` gets no peer weight" for k in target if k not in mapped]
    if problems:
        raise ValueError(f"{spec}: the peer's weights do not fit: " + "; ".join(problems[:8]))
    model.load_state_dict(mapped, strict=True)
