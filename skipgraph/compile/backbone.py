"""IR backbone nodes -> their stage modules, built by the family's backbone provider."""
from __future__ import annotations

import torch.nn as nn

from ..graph.ir import IRGraph

__all__ = ["backbone_stages"]


def backbone_stages(ir: IRGraph, family: str, weights: bool = True) -> dict[str, nn.Module]:
    """node id -> stage module for every stage of backbone ``family``, built together (one
    model, one weights file). The stem takes the network input's channels."""
    from ..backbone_registry import BACKBONE_PROVIDERS, dims_keyword

    nodes = sorted((n for n in ir.nodes() if n.family == family), key=lambda n: n.level)
    first = nodes[0].block
    frozen = [False] * first.stages
    for n in nodes:
        frozen[n.block.stage] = n.block.frozen
    entry = BACKBONE_PROVIDERS.get(first.provider)
    stages = entry.load_builder().build_stages(first.model, ir.in_channels,
                                               first.weights if weights else None, frozen,
                                               **dims_keyword(entry.params, ir.dims))
    # a pruned IR may have dropped deep stages: they are built (one timm model) but not kept
    return {n.id: stages[n.block.stage] for n in nodes}
