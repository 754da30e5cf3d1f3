"""What an ejected file needs to rebuild timm backbone stages (it imports timm)."""
from __future__ import annotations

from typing import Any

__all__ = ["is_backbone_stage", "stage_expr", "HELPER"]


def is_backbone_stage(m: Any) -> bool:
    return hasattr(m, "timm_model") and hasattr(m, "stage")


def stage_expr(m: Any) -> str:
    kwargs = "".join(f", {k}={v!r}" for k, v in getattr(m, "timm_kwargs", ()))
    return f"_timm_stages({m.timm_model!r}, {m.timm_in_channels}{kwargs})[{m.stage}]"


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
