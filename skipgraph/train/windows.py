"""Whole-case inference with sliding windows (MONAI's ``sliding_window_inference``, Gaussian
blending) and per-class Dice and 95th-percentile Hausdorff distance (MONAI's metrics), mean and
sd over cases: what ``evaluate`` reports for label maps and volumes."""
from __future__ import annotations

import dataclasses

import math
import statistics
import time
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from ..compile import SkipGraphModule
from ..label_rule import (IGNORE, foreground, foreground_classes, label_map, one_hot,
                          probabilities, valid_mask)
from .data import pad_to
from .guards import check_fit, model_classes
from .volumes import MEDICAL_EXTRA

__all__ = ["infer", "evaluate_cases", "case_of", "summarize", "evaluate_folder",
           "format_classes"]


@torch.no_grad()
def infer(model: SkipGraphModule, image: torch.Tensor, roi: Sequence[int] | None = None,
          device: torch.device | str = "cpu", overlap: float = 0.5, batch: int = 4
          ) -> torch.Tensor:
    """Class probabilities (1, K, *spatial) for a whole case ``image`` (1, C, *spatial):
    windows of size ``roi`` blended with a Gaussian (cases smaller than ``roi`` are padded), or
    the whole case padded to the network's stride when ``roi`` is None."""
    was = model.training
    model.eval()
    act = model.ir.heads[model.main_head].activation
    try:
        x = image.to(device)
        if roi is None:
            xp, sizes = pad_to(x, model.contract.stride)
            out = probabilities(model.main_output(model(xp)).float(), act)
            return out[(slice(None), slice(None)) + tuple(slice(0, s) for s in sizes)].cpu()
        try:
            from monai.inferers import sliding_window_inference
        except ImportError:
            raise ImportError(f"sliding windows need MONAI: {MEDICAL_EXTRA}") from None
        return sliding_window_inference(
            x, list(roi), batch,
            lambda w: probabilities(model.main_output(model(w)).float(), act),
            overlap=overlap, mode="gaussian").cpu()
    finally:
        model.train(was)


def case_of(data: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *spatial), label map (*spatial)) of case ``k`` of a volume or image folder."""
    if hasattr(data, "case"):
        return data.case(k)
    mask = torch.from_numpy(data.masks[k])[None]
    label = label_map(mask)[0, 0]
    valid = valid_mask(mask)
    if valid is not None:  # ignored pixels stay ignored in the label map
        label[~valid[0, 0]] = IGNORE
    return data.images[k], label.numpy()


def evaluate_cases(model: SkipGraphModule, data: Any, device: torch.device | str = "cpu",
                   roi: Sequence[int] | None = None, hd95: bool = True) -> dict[str, Any]:
    """Per case and foreground class: Dice, IoU and (``hd95``) the 95th-percentile Hausdorff
    distance in the data's units (mm for NIfTI spacing, pixels otherwise; ``inf`` when a class
    is missing from the prediction but not from the truth), and seconds per case.

    Returns ``{"cases": [...], "classes": {c: {"dice", "dice_sd", ...}}, "mean": {...},
    "hd95_unit": ...}`` where ``mean`` averages the class means (the mean foreground Dice) and
    ``seconds``; ``hd95_unit`` is :func:`hd95_unit`.
    """
    try:
        from monai.metrics import DiceMetric, HausdorffDistanceMetric
    except ImportError:
        raise ImportError(f"per-class Dice and HD95 need MONAI: {MEDICAL_EXTRA}") from None
    classes = model_classes(model)
    fg = foreground_classes(classes)
    dice_metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    hd_metric = HausdorffDistanceMetric(include_background=True, percentile=95,
                                        reduction="none")
    rows = []
    for k, name in enumerate(data.names):
        image, label = case_of(data, k)
        t0 = time.perf_counter()
        pred = label_map(infer(model, torch.from_numpy(np.ascontiguousarray(image))[None], roi,
                               device))
        seconds = time.perf_counter() - t0
        truth = torch.from_numpy(np.asarray(label, dtype=np.int64))[None, None]
        ignored = truth < 0  # the ignore label: background in both maps, so no metric counts it
        pred, truth = pred.masked_fill(ignored, 0), truth.masked_fill(ignored, 0)
        p = foreground(one_hot(pred[0], classes)[None])
        t = foreground(one_hot(truth[0], classes)[None])
        row: dict[str, Any] = {"case": name, "seconds": seconds}
        dice = dice_metric(p, t)[0].tolist()
        row["dice"] = dict(zip(map(str, fg), dice))
        row["iou"] = {str(c): d / (2 - d) for c, d in zip(fg, dice)}
        if hd95:
            spacing = data.spacings[k] if hasattr(data, "spacings") else None
            with warnings.catch_warnings():  # an empty class is reported as inf below
                warnings.simplefilter("ignore")
                hd = hd_metric(p, t, spacing=spacing)[0].tolist()
            row["hd95"] = {str(c): _hd_value(h, p[0, i], t[0, i])
                           for i, (c, h) in enumerate(zip(fg, hd))}
        rows.append(row)
    result = summarize(rows)
    if hd95:
        result["hd95_unit"] = hd95_unit(data)
    return result


def hd95_unit(data: Any) -> str:
    """The unit of HD95 on ``data``: its spacing's (mm for NIfTI volumes), else px (2D) or
    voxels (3D)."""
    if getattr(data, "spacings", None):
        return getattr(data, "spacing_unit", "mm")
    dims = getattr(data, "dims", None) or getattr(data, "spatial_dims", 2)
    return "px" if dims == 2 else "voxels"


def _hd_value(h: float, pred: torch.Tensor, truth: torch.Tensor) -> float:
    """MONAI gives nan when either side is empty: 0 when both are, inf when one is."""
    if math.isnan(h):
        return 0.0 if pred.sum() == 0 and truth.sum() == 0 else math.inf
    return h


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over cases per class and metric (sd 0 for one case; HD95 over the cases
    where it is finite, with the count of the others as ``hd95_inf``)."""
    per_class: dict[str, dict[str, float]] = {}
    metrics = [m for m in ("dice", "iou", "hd95") if m in rows[0]]
    for c in rows[0]["dice"]:
        entry: dict[str, float] = {}
        for m in metrics:
            values = [r[m][c] for r in rows if math.isfinite(r[m][c])]
            entry[m] = statistics.fmean(values) if values else math.nan
            entry[m + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
            if m == "hd95":
                entry["hd95_inf"] = len(rows) - len(values)
        per_class[c] = entry
    mean = {m: statistics.fmean(e[m] for e in per_class.values()) for m in metrics}
    mean["seconds"] = statistics.fmean(r["seconds"] for r in rows)
    return {"cases": rows, "classes": per_class, "mean": mean}


def evaluate_folder(model: SkipGraphModule, root: str, split: str | None,
                    device: torch.device | str = "cpu", patch: Sequence[int] | None = None,
                    binary: bool = False, read: Any = None) -> tuple[Any, dict[str, Any] | None]:
    """Open a folder for ``model`` and, for volumes and label maps (K > 1), evaluate it per
    class with sliding windows of ``patch``; a binary 2D folder is returned unevaluated (its
    metrics include object F1: :func:`skipgraph.train.evaluate_model`). ``read``: how the
    files are read (:class:`~skipgraph.train.data.ReadOptions`; default: ``binary`` only)."""
    from .data import ReadOptions
    from .volumes import open_folder
    classes = model_classes(model)
    stride = model.contract.stride
    read = dataclasses.replace(read or ReadOptions(binary=binary), trained=True)
    data = open_folder(root, split, classes, patch=patch, stride=stride, read=read)
    check_fit(model, data, root, trained=True)
    if not hasattr(data, "case") and classes == 1:
        return data, None
    result = evaluate_cases(model, data, device, roi=getattr(data, "patch", None))
    result["patch"] = list(getattr(data, "patch", []) or [])
    return data, result


def format_classes(result: dict[str, Any]) -> str:
    """Per-class Dice, IoU and HD95 (mean ± sd over cases) and seconds per case."""
    unit = result.get("hd95_unit")
    lines = [f"| class | Dice | IoU | HD95{f' ({unit})' if unit else ''} |", "|---|---|---|---|"]
    n = len(result["cases"])
    for c, e in result["classes"].items():
        missed = e.get("hd95_inf", 0)
        hd = "inf" if missed == n else f"{e['hd95']:.2f} ± {e['hd95_sd']:.2f}"
        hd += f" ({missed} of {n} cases missed the class: inf)" if 0 < missed < n else ""
        lines.append(f"| {c} | {e['dice']:.4f} ± {e['dice_sd']:.4f} | {e['iou']:.4f} ± "
                     f"{e['iou_sd']:.4f} | {hd} |")
    m = result["mean"]
    lines.append(f"mean over {len(result['classes'])} foreground class(es) and {n} cases: "
                 f"Dice {m['dice']:.4f}, {m['seconds']:.3f} s per case")
    return "\n".join(lines)
