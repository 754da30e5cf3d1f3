"""``skipgraph evaluate``: Dice, IoU and object F1 per image, and for deeply supervised models
every pruning level (the UNet++ paper's Fig. 5: parameters, time, IoU per level)."""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from ..compile import SkipGraphModule
from ..compile.summary import count_params
from .data import SegmentationFolder, pad_to
from .metrics import dice_iou, instances, object_f1

__all__ = ["predict", "evaluate_model", "pruning_levels"]


@torch.no_grad()
def predict(model: SkipGraphModule, x: torch.Tensor, device: torch.device | str = "cpu"
            ) -> torch.Tensor:
    """Binary prediction (N, 1, *spatial) for any input size (reflect-padded, cropped back)."""
    was = model.training
    model.eval()
    try:
        xp, sizes = pad_to(x.to(device), model.contract.stride)
        out = model(xp).float()
        head = model.ir.heads[model.output_heads[0]]
        if getattr(head.settings, "act", "none") == "none":  # logits: make probabilities
            out = torch.sigmoid(out) if out.shape[1] == 1 else torch.softmax(out, 1)
        fg = out > 0.5 if out.shape[1] == 1 else (out.argmax(1, keepdim=True) > 0)
        return fg[(slice(None), slice(None)) + tuple(slice(0, s) for s in sizes)].cpu()
    finally:
        model.train(was)


def evaluate_model(model: SkipGraphModule, data: SegmentationFolder,
                   device: torch.device | str = "cpu", objects: bool = False
                   ) -> dict[str, Any]:
    rows = []
    for k in range(len(data.names)):
        image, mask = data.images[k], data.masks[k]
        pred = predict(model, torch.from_numpy(image)[None], device)[0, 0]
        truth = torch.from_numpy(mask).amax(0) > 0 if mask.shape[0] == 1 else \
            torch.from_numpy(mask[1:]).amax(0) > 0
        dice, iou = dice_iou(pred, truth)
        row = {"image": data.names[k], "dice": dice, "iou": iou}
        if objects:
            raw = _raw_mask(data, k)
            row["object_f1"] = object_f1(instances(pred.numpy()), instances(raw, by_value=True))
        rows.append(row)
    keys = [k for k in rows[0] if k != "image"]
    return {"images": rows, "mean": {k: statistics.fmean(r[k] for r in rows) for k in keys}}


def _raw_mask(data: SegmentationFolder, k: int) -> np.ndarray:
    from .data import _read
    return _read(data.root / "masks" / data.files[k][1])


def pruning_levels(model: SkipGraphModule, data: SegmentationFolder,
                   device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Each segmentation head as a pruned model: parameters, time per image, Dice, IoU."""
    rows = []
    for head in [h for h in model.heads if model.ir.heads[h].pixelwise]:
        small = model.prune(head)
        t0 = time.perf_counter()
        metrics = evaluate_model(small, data, device)["mean"]
        seconds = (time.perf_counter() - t0) / len(data.names)
        rows.append({"head": head, "params": count_params(small),
                     "ms_per_image": 1e3 * seconds, **metrics})
    return rows
