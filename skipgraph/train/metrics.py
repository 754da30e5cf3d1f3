"""Pixel Dice and IoU, and object-level F1 at IoU 0.5 (what nucleus-counting users need)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["dice_iou", "object_f1", "instances"]


def dice_iou(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Binary masks (any shape) -> (Dice, IoU); 1.0 when both are empty."""
    p, t = pred.bool(), target.bool()
    inter = (p & t).sum().item()
    total = p.sum().item() + t.sum().item()
    union = total - inter
    return (2 * inter / total if total else 1.0), (inter / union if union else 1.0)


def instances(mask: np.ndarray, by_value: bool = False) -> np.ndarray:
    """Connected components (4-connectivity); ``by_value`` labels each value separately (for
    label images whose touching objects carry different values)."""
    from scipy import ndimage
    if not by_value:
        return ndimage.label(mask > 0)[0]
    out = np.zeros(mask.shape, dtype=np.int32)
    offset = 0
    for v in np.unique(mask[mask > 0]):
        lab, n = ndimage.label(mask == v)
        out[lab > 0] = lab[lab > 0] + offset
        offset += n
    return out


def object_f1(pred_labels: np.ndarray, true_labels: np.ndarray, threshold: float = 0.5
              ) -> float:
    """F1 of objects matched one-to-one at IoU > ``threshold`` (a unique match exists for
    thresholds >= 0.5)."""
    n_pred, n_true = int(pred_labels.max()), int(true_labels.max())
    if n_pred == 0 and n_true == 0:
        return 1.0
    if n_pred == 0 or n_true == 0:
        return 0.0
    pairs = np.stack([true_labels.ravel(), pred_labels.ravel()])
    pairs = pairs[:, (pairs[0] > 0) & (pairs[1] > 0)]
    inter = np.zeros((n_true + 1, n_pred + 1), dtype=np.int64)
    np.add.at(inter, (pairs[0], pairs[1]), 1)
    area_t = np.bincount(true_labels.ravel(), minlength=n_true + 1)
    area_p = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    iou = inter / np.maximum(area_t[:, None] + area_p[None, :] - inter, 1)
    tp = int((iou[1:, 1:] > threshold).sum())
    return 2 * tp / (n_pred + n_true)
