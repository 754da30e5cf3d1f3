"""BatchNorm's rule in training: more than one value per channel in a step."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch.nn as nn

from ..graph.contract import head_shape

if TYPE_CHECKING:
    from .module import SkipGraphModule

__all__ = ["batch_norm_problems"]


def _size(crop: int | Sequence[int]) -> str:
    return f"{crop}-px crop" if isinstance(crop, int) else "x".join(map(str, crop)) + " input"


def batch_norm_problems(model: SkipGraphModule, crop: int | Sequence[int], batch: int
                        ) -> list[str]:
    """What BatchNorm cannot do in a training step of ``batch`` inputs of spatial size
    ``crop`` (one side, or one per axis): it needs more than one value per channel, that is
    ``batch`` x the spatial size at its level (``batch`` alone for the CGMs' BatchNorm1d).
    One sentence per module that fails, naming it (a CGM by its head id) and what to change;
    empty when the step can run. Used before training starts (train/guards.py) and to explain
    torch's error when a module is called in training mode (compile/module.py)."""
    ir = model.ir
    levels = {node.module_name: node.level for node in ir.nodes()}
    blocks = {node.module_name: node.block for node in ir.nodes() if node.block is not None}
    # an edge's layers run at both ends' levels: the deeper (smaller) one decides
    levels.update({e.module_name: max(ir.node(e.src).level, ir.node(e.dst).level)
                   for e in ir.edges()})
    owners = {h.name: h for h in ir.heads.values()}
    levels.update({h.name: h.level for h in ir.heads.values()})
    problems = []
    for name, child in model.named_children():
        norms = [m for m in child.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            continue
        head = owners.get(name)
        if any(isinstance(m, nn.BatchNorm1d) for m in norms):
            if batch < 2:
                what = f"the {head.type.upper()} `{head.id}`" if head is not None and \
                    not head.pixelwise else f"`{name}`"
                problems.append(
                    f"{ir.name}: {what} has BatchNorm1d layers, which need at least 2 images "
                    f"per training step; a step here has {batch} (--batch and the number of "
                    "training crops per process): use --batch 2 or more, or a spec without "
                    "the CGM")
            continue
        sizes = [crop] * ir.dims if isinstance(crop, int) else list(crop)
        shape = list(head_shape(sizes, ir.scale(levels.get(name, 0))))
        block = blocks.get(name)
        positions = block.norm_positions(shape) if block is not None else math.prod(shape)
        at = f"{shape[0]} px" if len(set(shape)) == 1 else "x".join(map(str, shape))
        if batch * positions < 2 and positions < math.prod(shape):  # a block that pools first
            problems.append(
                f"{ir.name}: `{name}` ({block.type}) has BatchNorm on its pooled map, "
                f"{positions} position(s) per channel whatever the crop: with {batch} image(s) "
                "per step that is one value per channel, and BatchNorm needs more; use "
                "--batch 2 or more")
        elif batch * positions < 2:
            problems.append(
                f"{ir.name}: `{name}` has BatchNorm at level {levels.get(name, 0)}, where a "
                f"{_size(crop)} is {at}: with {batch} image(s) per step that is one value "
                "per channel, and BatchNorm needs more; use a larger --crop or --batch")
    return problems
