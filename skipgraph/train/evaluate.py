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
from ..label_rule import label_map, probabilities
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
        act = model.ir.heads[model.main_head].activation
        fg = label_map(probabilities(model.main_output(model(xp)).float(), act)) > 0
        return fg[(slice(None), slice(None)) + tuple(slice(0, s) for s in sizes)].cpu()
    finally:
        model.train(was)


def evaluate_model(model: SkipGraphModule, data: SegmentationFolder,
                   device: torch.device | str = "cpu", objects: bool = False
                   ) -> dict[str, Any]:
    """Per image and mean Dice, IoU (and object F1 with ``objects``), the time per image
    (``ms_per_image``, prediction only), and whether the predictions ``collapsed``: one class
    everywhere in every image while the masks are not (``predicted`` says which)."""
    rows, seen, truths, seconds = [], set(), set(), 0.0
    for k in range(len(data.names)):
        image, mask = data.images[k], data.masks[k]
        t0 = time.perf_counter()
        pred = predict(model, torch.from_numpy(image)[None], device)[0, 0]
        seconds += time.perf_counter() - t0
        truth = label_map(torch.from_numpy(mask)[None])[0, 0] > 0
        labelled = torch.from_numpy(mask[0]) >= 0  # the ignore label counts in no metric
        pred, truth = pred & labelled, truth & labelled
        seen.update(pred.unique().tolist())
        truths.update(truth.unique().tolist())
        dice, iou = dice_iou(pred, truth)
        row = {"image": data.names[k], "dice": dice, "iou": iou}
        if objects:
            raw = np.where(labelled.numpy(), _raw_mask(data, k), 0)
            row["object_f1"] = object_f1(instances(pred.numpy()), instances(raw, by_value=True))
        rows.append(row)
    keys = [k for k in rows[0] if k != "image"]
    mean: dict[str, Any] = {k: statistics.fmean(r[k] for r in rows) for k in keys}
    mean["ms_per_image"] = 1e3 * seconds / len(rows)
    mean["collapsed"] = len(seen) == 1 and len(truths) > 1
    mean["predicted"] = ("foreground" if True in seen else "background") if len(seen) == 1 \
        else "both classes"
    return {"images": rows, "mean": mean}


def _raw_mask(data: SegmentationFolder, k: int) -> np.ndarray:
    from .data import _read
    return _read(data.root / "masks" / data.files[k][1])


def pruning_levels(model: SkipGraphModule, data: SegmentationFolder,
                   device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Each segmentation head as a pruned model: parameters, time per image, Dice, IoU."""
    rows = []
    for head in [h for h in model.heads if model.ir.heads[h].pixelwise]:
        small = model.prune(head)
        metrics = evaluate_model(small, data, device)["mean"]
        rows.append({"head": head, "params": count_params(small), **metrics})
    return rows
