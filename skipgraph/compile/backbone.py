"""IR backbone nodes -> their timm stage modules (the `backbones` extra)."""
from __future__ import annotations

import torch.nn as nn

from ..graph.ir import IRGraph

__all__ = ["backbone_stages"]


def backbone_stages(ir: IRGraph, family: str, weights: bool = True) -> dict[str, nn.Module]:
    """node id -> stage module for every stage of backbone ``family``, built together (one
    timm model, one weights file). The stem takes the network input's channels."""
    from ..blocks.backbone import build_stages

    nodes = sorted((n for n in ir.nodes() if n.family == family), key=lambda n: n.level)
    first = nodes[0].block
    frozen = [False] * first.stages
    for n in nodes:
        frozen[n.block.stage] = n.block.frozen
    stages = build_stages(first.model, ir.in_channels, first.weights if weights else None,
                          frozen)
    # a pruned IR may have dropped deep stages: they are built (one timm model) but not kept
    return {n.id: stages[n.block.stage] for n in nodes}
