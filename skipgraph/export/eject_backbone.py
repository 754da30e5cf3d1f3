"""What an ejected file needs to rebuild timm backbone stages (it imports timm)."""
from __future__ import annotations

from typing import Any

__all__ = ["is_backbone_stage", "stage_expr", "HELPER"]


def is_backbone_stage(m: Any) -> bool:
    return hasattr(m, "timm_model") and hasattr(m, "stage")


def stage_expr(m: Any) -> str:
    return f"_timm_stages({m.timm_model!r}, {m.timm_in_channels})[{m.stage}]"


HELPER = '''import functools

import timm
from timm.models import FeatureListNet


@functools.lru_cache(maxsize=None)
def _timm_stages(name, in_chans):
    """timm's `name` split at its feature outputs: stage k maps feature k-1 to feature k
    (random init: load the state_dict afterwards; weights are never downloaded)."""
    model = timm.create_model(name, pretrained=False, in_chans=in_chans)
    indices = tuple(range(len(model.feature_info)))
    try:
        net = FeatureListNet(model, out_indices=indices, flatten_sequential=False)
    except AssertionError:  # feature_info names members of a top-level Sequential
        net = FeatureListNet(model, out_indices=indices, flatten_sequential=True)
    stages, current = [], []
    for child in net.keys():
        current.append((child, net[child]))
        if child in net.return_layers:
            stages.append(nn.Sequential(OrderedDict(current)))
            current = []
    return stages


'''
