"""What a peer's ``state_dict`` says about its configuration: the spec params its tensor shapes
give, per peer (a peer's ``infer`` in :data:`skipgraph.integrations.peers.PEERS`).

Each function takes the state_dict (keys without wrapper prefixes) and returns the params it
can read; a KeyError means the tensors are not that peer's. What the weights do not show
(strides of max-pooling or interpolation, activations, deep supervision) keeps the spec's
default unless ``--set`` gives it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch

__all__ = ["infer_basic_unet", "infer_basic_unetpp", "infer_nnunet", "infer_smp_unet"]

State = Mapping[str, torch.Tensor]


def _io(state: State, first: str, last: str) -> dict[str, Any]:
    """``dims`` and ``in_channels`` from the first conv, ``classes`` from the head conv."""
    w = state[first]
    return {"dims": w.dim() - 2, "in_channels": w.shape[1], "classes": state[last].shape[0]}


def _monai_features(state: State, stem: str, down: str, up: str, head: str) -> dict[str, Any]:
    """MONAI's TwoConv networks: ``features`` f0..f5 from the stem unit, the ``down`` units
    (``{i}`` = level 1..4) and the last ``up`` unit, plus dims / channels / classes."""
    params = _io(state, f"{stem}.conv_0.conv.weight", head)
    params["f0"] = state[f"{stem}.conv_0.conv.weight"].shape[0]
    for i in range(1, 5):
        params[f"f{i}"] = state[f"{down.format(i=i)}.convs.conv_0.conv.weight"].shape[0]
    params["f5"] = state[f"{up}.convs.conv_0.conv.weight"].shape[0]
    return params


def infer_basic_unet(state: State) -> dict[str, Any]:
    """MONAI ``BasicUNet``: dims, in_channels, classes and ``features`` f0..f5."""
    return _monai_features(state, "conv_0", "down_{i}", "upcat_1", "final_conv.weight")


def infer_basic_unetpp(state: State) -> dict[str, Any]:
    """MONAI ``BasicUNetPlusPlus``: as BasicUNet (its heads exist with or without deep
    supervision, so ``ds`` is not in the weights)."""
    return _monai_features(state, "conv_0_0", "conv_{i}_0", "upcat_0_4",
                           "final_conv_0_4.weight")


def infer_nnunet(state: State) -> dict[str, Any]:
    """nnU-Net's ``PlainConvUNet`` / ``ResidualEncoderUNet``: dims, in_channels, classes,
    stages, base and max_width (the rest comes from the plans)."""
    first = next((k for k in ("encoder.stages.0.0.convs.0.conv.weight",
                              "encoder.stem.convs.0.conv.weight") if k in state), None)
    if first is None:
        raise KeyError("encoder.stages.0.0.convs.0.conv.weight")
    params = _io(state, first, "decoder.seg_layers.0.weight")
    stages = sorted({int(m[1]) for k in state
                     if (m := re.match(r"encoder\.stages\.(\d+)\.", k))})
    widths = [state[f"decoder.transpconvs.{t}.weight"].shape[1]
              for t in range(len(stages) - 1)][::-1]  # the decoder's widths, top level first
    bottom = state["decoder.transpconvs.0.weight"].shape[0]
    params.update(stages=len(stages), base=widths[0] if widths else bottom,
                  max_width=max(widths + [bottom]))
    return params


def infer_smp_unet(state: State) -> dict[str, Any]:
    """segmentation_models_pytorch ``Unet`` / ``UnetPlusPlus`` over ResNet-18/34: encoder
    (blocks in ``layer2``), decoder, in_channels, classes, base and decoder_base."""
    params = _io(state, "encoder.conv1.weight", "segmentation_head.0.weight")
    layer2 = {int(m[1]) for k in state if (m := re.match(r"encoder\.layer2\.(\d+)\.", k))}
    if "encoder.layer4.0.conv1.weight" not in state or len(layer2) not in (2, 4):
        raise KeyError("encoder.layer4.0.conv1.weight")
    unet_pp = any(k.startswith("decoder.blocks.x_") for k in state)
    last = "decoder.blocks.x_0_4.conv1.0.weight" if unet_pp else "decoder.blocks.4.conv1.0.weight"
    params.update(encoder="resnet18" if len(layer2) == 2 else "resnet34",
                  decoder="unet_pp" if unet_pp else "unet",
                  base=state["encoder.conv1.weight"].shape[0],
                  decoder_base=state[last].shape[0])
    return params
