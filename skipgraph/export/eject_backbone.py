"""What an ejected file needs to rebuild backbone stages: a timm encoder's (the file imports
timm) or a MONAI FlexibleUNet encoder's (it imports monai). The stages are rebuilt by their
package, not copied as source; the state_dict brings the weights."""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["is_backbone_stage", "stage_expr", "helpers", "HELPER", "MONAI_HELPER"]


def _timm_expr(m: Any) -> str:
    kwargs = "".join(f", {k}={v!r}" for k, v in getattr(m, "timm_kwargs", ()))
    return f"_timm_stages({m.timm_model!r}, {m.timm_in_channels}{kwargs})[{m.stage}]"


def _monai_expr(m: Any) -> str:
    return f"_monai_stages({m.monai_model!r}, {m.monai_in_channels}, {m.dims})[{m.stage}]"


def _kind(m: Any) -> int | None:
    """Which entry of :data:`_KINDS` rebuilds stage ``m`` (by the attributes it carries)."""
    if not hasattr(m, "stage"):
        return None
    return next((k for k, (attr, _, _) in enumerate(_KINDS) if hasattr(m, attr)), None)


def is_backbone_stage(m: Any) -> bool:
    return _kind(m) is not None


def stage_expr(m: Any) -> str:
    return _KINDS[_kind(m)][1](m)


def helpers(modules: Iterable[Any]) -> list[str]:
    """The helper sources the backbone stages among ``modules`` need (none without any)."""
    found = {_kind(m) for m in modules} - {None}
    return [_KINDS[k][2] for k in sorted(found)]


HELPER = '''import functools

import timm
from timm.models import FeatureListNet


class _TimmStage(nn.Sequential):
    """timm modules between two feature outputs, taking and returning (N, C, H, W); for a
    channels-last model (timm's output_fmt NHWC) it permutes at its ends."""

    def __init__(self, modules, stage, channels_last):
        super().__init__(modules)
        self.stage, self.channels_last = stage, channels_last

    def forward(self, x):
        if self.channels_last and self.stage > 0:
            x = x.permute(0, 2, 3, 1)
        x = super().forward(x)
        return x.permute(0, 3, 1, 2) if self.channels_last else x


@functools.lru_cache(maxsize=None)
def _timm_stages(name, in_chans, **kwargs):
    """timm's `name` split at its feature outputs: stage k maps feature k-1 to feature k
    (random init: load the state_dict afterwards; weights are never downloaded)."""
    model = timm.create_model(name, pretrained=False, in_chans=in_chans, **kwargs)
    nhwc = str(getattr(getattr(model, "output_fmt", "NCHW"), "value",
                       getattr(model, "output_fmt", "NCHW"))) == "NHWC"
    indices = tuple(range(len(model.feature_info)))
    try:
        net = FeatureListNet(model, out_indices=indices, flatten_sequential=False)
    except AssertionError:  # feature_info names members of a top-level Sequential
        net = FeatureListNet(model, out_indices=indices, flatten_sequential=True)
    stages, current = [], []
    for child in net.keys():
        current.append((child, net[child]))
        if child in net.return_layers:
            stages.append(_TimmStage(OrderedDict(current), len(stages), nhwc))
            current = []
    return stages


'''

MONAI_HELPER = '''import functools

from monai.networks.nets.efficientnet import EfficientNetBNFeatures
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE


@functools.lru_cache(maxsize=None)
def _monai_stages(name, in_channels, dims):
    """MONAI's FlexibleUNet encoder `name` split at its five feature outputs: stage k maps
    feature k-1 to feature k (random init: load the state_dict afterwards). EfficientNet's
    classification head, never run by FlexibleUNet, is left out."""
    entry = FLEXUNET_BACKBONE.register_dict[name]
    enc = entry["type"](**{**entry["parameter"], "spatial_dims": dims,
                           "in_channels": in_channels, "pretrained": False})
    if isinstance(enc, EfficientNetBNFeatures):
        groups, current = [], [(n, getattr(enc, n)) for n in
                               ("_conv_stem_padding", "_conv_stem", "_bn0", "_swish")]
        if 0 in enc.extract_stacks:
            groups, current = [current], []
        for i, stack in enumerate(enc._blocks):
            current.append((f"_blocks_{i}", stack))
            if i + 1 in enc.extract_stacks:
                groups, current = groups + [current], []
    else:  # ResNet
        first = [] if enc.no_max_pool else [("maxpool", enc.maxpool)]
        groups = [[("conv1", enc.conv1), ("bn1", enc.bn1), ("act", enc.act)],
                  first + [("layer1", enc.layer1)], [("layer2", enc.layer2)],
                  [("layer3", enc.layer3)], [("layer4", enc.layer4)]]
    return [nn.Sequential(OrderedDict(g)) for g in groups]


'''

# (the attribute a provider's stages carry, their expression, the helper that defines it)
_KINDS = (("timm_model", _timm_expr, HELPER), ("monai_model", _monai_expr, MONAI_HELPER))
