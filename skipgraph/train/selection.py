"""Which validated epoch training keeps, and what a collapsed validation (one class predicted
everywhere, e.g. BatchNorm running statistics that never moved) is reported as."""
from __future__ import annotations

from typing import Any

import torch

from ..compile import SkipGraphModule

__all__ = ["better_epoch", "collapse_warning"]


def better_epoch(metrics: dict[str, Any], best: dict[str, Any]) -> bool:
    """A collapsed validation never replaces one that is not; otherwise the higher Dice (a
    later collapsed epoch replaces an earlier one: training may still recover)."""
    if "epoch" not in best:
        return True
    if metrics["collapsed"] != best.get("collapsed", False):
        return not metrics["collapsed"]
    return metrics["dice"] >= best["dice"] if metrics["collapsed"] else \
        metrics["dice"] > best["dice"]


def collapse_warning(model: SkipGraphModule, metrics: dict[str, Any], epoch: int) -> str:
    """What a collapsed validation (one class predicted everywhere) means and where to look."""
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    why = (" In eval mode BatchNorm uses its running statistics: check the spec's BatchNorm "
           "momentum (PyTorch's is the weight of the new batch, Keras' that of the old "
           "statistics: write `{type: batch, momentum: M, convention: keras}` for a Keras "
           "value).") if has_bn else ""
    return (f"WARNING: validation collapsed at epoch {epoch}: the model predicts "
            f"{metrics['predicted']} everywhere (Dice {metrics['dice']:.4f}); such an epoch "
            f"is not kept as the best while any other is.{why}")
