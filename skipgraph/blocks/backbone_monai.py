"""MONAI's FlexibleUNet encoders split into one module per feature level (the `monai` extra).

``backbone: {provider: monai, name: efficientnet-b0}`` takes an encoder MONAI registers in
``monai.networks.nets.flexible_unet.FLEXUNET_BACKBONE`` (EfficientNet b0-b8 / l2, ResNet
10-200), made as FlexibleUNet makes it (``pretrained=False``, the spec's dims and input
channels). Each encoder returns five features, at reductions 2, 4, 8, 16, 32; the modules
between two of them are one stage (MONAI's own modules, run in the order of its ``forward``):

- EfficientNet (``EfficientNetBNFeatures``): stage 0 is the stem (``_conv_stem_padding``,
  ``_conv_stem``, ``_bn0``, ``_swish``) and the MBConv stacks up to the first feature; each
  later stage the stacks ``_blocks.i`` up to the next feature (MONAI's ``extract_stacks``),
  named ``_blocks_i`` in the stage. The classification head MONAI builds but FlexibleUNet
  never runs (``_conv_head``, ``_bn1``, ``_fc``) is left out, and with it its parameters.
- ResNet (``ResNetFeatures``): stage 0 ``conv1``, ``bn1``, ``act``; stage 1 ``maxpool``,
  ``layer1``; stages 2-4 ``layer2`` ... ``layer4``.

Shapes: stage ``k`` maps ``(N, C_{k-1}, *spatial)`` to ``(N, C_k, *spatial / 2)`` (the input
image for ``k = 0``). EfficientNet pads its convs "same" for MONAI's 224-pixel image size (a
fixed padding); any even size gives the halved size, so inputs are multiples of 32 as for
every U-Net over these encoders. Weights come from a local file in MONAI's key names of the
encoder (``_conv_stem.weight``, ``layer1.0.conv1.weight``; a FlexibleUNet state_dict's
``encoder.`` prefix is taken off and its other keys ignored; see
:mod:`skipgraph.integrations.peers_flexible` for a whole FlexibleUNet's weights).
"""
from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from typing import Any, Sequence

import torch
import torch.nn as nn
import monai  # noqa: F401  (first: a missing monai is an ImportError here, whatever is cached)
from monai.networks.nets.efficientnet import EfficientNetBNFeatures
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNetFeatures

from ..backbone_registry import StageInfo
from .backbone_common import BackboneWeightsError, FrozenStage, read_weights, weight_problems

__all__ = ["MonaiStage", "describe", "build_stages", "split", "MONAI"]


class UnusableEncoderError(ValueError):
    """An encoder MONAI registers that this provider cannot split (``known_model``: the name
    is right, so no list of names is suggested)."""

    known_model = True


class MonaiStage(FrozenStage):
    """MONAI encoder modules between two feature outputs, ``(N, C_in, *spatial) -> (N, C,
    *spatial / s)``; ``frozen`` as :class:`~skipgraph.blocks.backbone_common.FrozenStage`."""

    def __init__(self, modules: "OrderedDict[str, nn.Module]", monai_model: str,
                 in_channels: int, dims: int, stage: int, frozen: bool = False):
        super().__init__(modules, frozen)
        # what rebuilds it (skipgraph eject): stage `stage` of monai_model for in_channels
        # inputs in `dims` spatial dims
        self.monai_model, self.monai_in_channels, self.dims, self.stage = \
            monai_model, in_channels, dims, stage


def _encoder(name: str, in_channels: int, dims: int, device: str | None = None) -> nn.Module:
    """The encoder FlexibleUNet makes for ``name`` (random init); on ``device`` ("meta":
    nothing allocated) where its construction allows it, else on the CPU."""
    entry = FLEXUNET_BACKBONE.register_dict.get(name)
    if entry is None:
        raise ValueError(f"MONAI's FLEXUNET_BACKBONE has no encoder `{name}`")
    # a copy: FlexibleUNet updates the register's own dict in place
    kwargs = {**entry["parameter"], "spatial_dims": dims, "in_channels": in_channels,
              "pretrained": False}
    if device == "meta":
        try:
            with torch.device("meta"):
                return entry["type"](**kwargs)
        except Exception:  # noqa: BLE001 - an operator without a meta kernel: the CPU answers
            pass
    return entry["type"](**kwargs)


def split(encoder: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    """The encoder's modules grouped by the feature output that ends each group (the order of
    its ``forward``); names are MONAI's attribute names (``_blocks.i`` -> ``_blocks_i``)."""
    if isinstance(encoder, EfficientNetBNFeatures):
        groups, current = [], [(n, getattr(encoder, n)) for n in
                               ("_conv_stem_padding", "_conv_stem", "_bn0", "_swish")]
        if 0 in encoder.extract_stacks:
            groups.append(current)
            current = []
        for i, stack in enumerate(encoder._blocks):
            current.append((f"_blocks_{i}", stack))
            if i + 1 in encoder.extract_stacks:
                groups.append(current)
                current = []
        return groups
    if isinstance(encoder, ResNetFeatures):
        first = [("maxpool", encoder.maxpool)] if not encoder.no_max_pool else []
        return [[("conv1", encoder.conv1), ("bn1", encoder.bn1), ("act", encoder.act)],
                first + [("layer1", encoder.layer1)], [("layer2", encoder.layer2)],
                [("layer3", encoder.layer3)], [("layer4", encoder.layer4)]]
    raise UnusableEncoderError(f"{type(encoder).__name__} is neither an EfficientNet nor a "
                               "ResNet encoder of MONAI; this provider splits only those two")


def _probe(groups: list[list[tuple[str, nn.Module]]], in_channels: int, dims: int
           ) -> list[tuple[int, int]]:
    """(channels, reduction) of each feature, from one ``2r x 3r (x 2r)`` input (``r = 32``)."""
    device = next((p.device for g in groups for _, m in g for p in m.parameters()),
                  torch.device("cpu"))
    size = (64, 96, 64)[:dims]
    x = torch.zeros(1, in_channels, *size, device=device)
    out = []
    with torch.no_grad():
        for group in groups:
            for _, m in group:
                x = m.eval()(x)
            out.append((int(x.shape[1]), size[0] // int(x.shape[2])))
    return out


@functools.lru_cache(maxsize=64)
def describe(name: str, in_channels: int, dims: int = 2) -> tuple[StageInfo, ...]:
    """Channels, reductions, stage members and exact parameter counts of ``name``'s feature
    levels (built on the meta device: nothing is allocated or initialised)."""
    groups = split(_encoder(name, in_channels, dims, device="meta"))
    try:
        features = _probe(groups, in_channels, dims)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel
        groups = split(_encoder(name, in_channels, dims))
        features = _probe(groups, in_channels, dims)
    return tuple(StageInfo(c, r, tuple(n for n, _ in g),
                           sum(p.numel() for _, m in g for p in m.parameters()))
                 for g, (c, r) in zip(groups, features))


def build_stages(name: str, in_channels: int, weights: str | None = None,
                 frozen: Sequence[bool] = (), dims: int = 2) -> list[MonaiStage]:
    """The stage modules of ``name`` (random init as MONAI's, or the weights in the file)."""
    encoder = _encoder(name, in_channels, dims)
    groups = split(encoder)
    if weights:
        load_encoder_weights(encoder, groups, weights, name)
    return [MonaiStage(OrderedDict(g), name, in_channels, dims, k,
                       frozen=bool(frozen[k]) if k < len(frozen) else False)
            for k, g in enumerate(groups)]


def load_encoder_weights(encoder: nn.Module, groups: list[list[tuple[str, nn.Module]]],
                         path: str, name: str) -> None:
    """Load ``path`` (MONAI's encoder key names) strictly for the modules the stages use."""
    state = read_weights(path)
    if any(k.startswith("encoder.") for k in state):  # a FlexibleUNet's state_dict
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    problems = weight_problems(state, encoder, [m for g in groups for _, m in g])
    if problems:
        raise BackboneWeightsError(f"{path} does not fit MONAI's `{name}` encoder; "
                                   + "; ".join(problems))
    own = encoder.state_dict()
    encoder.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def stage_kwargs(stage: Any) -> dict[str, Any]:
    """What rebuilds ``stage`` (a :class:`MonaiStage`): name, input channels, dims."""
    return {"name": stage.monai_model, "in_channels": stage.monai_in_channels,
            "dims": stage.dims}


class _Monai:
    """The `monai` backbone provider's builder (skipgraph.backbone_registry)."""

    describe = staticmethod(describe)
    build_stages = staticmethod(build_stages)


MONAI = _Monai()
