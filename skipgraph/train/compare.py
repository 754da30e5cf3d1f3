"""``skipgraph compare``: train several specs the same way with the same seeds and tabulate
params, FLOPs, train time, inference time, Dice, IoU and object F1 (binary images) or Dice and
HD95 per class (label maps, volumes), mean +- sd over seeds."""
from __future__ import annotations

import csv
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..checkpoint import load_checkpoint, read_checkpoint
from ..compile.summary import count_params
from .evaluate import evaluate_model
from .errors import DataError
from .loop import TrainConfig, train
from .resume import check_run_folder
from .windows import evaluate_folder

__all__ = ["compare", "format_table", "table_paths"]


def _flops(model, channels: int, size: int) -> int:
    counter = FlopCounterMode(display=False)
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(1, channels, *[size] * model.ir.dims))
    return int(counter.get_total_flops())


def _flops_size(dims: int) -> int:
    return 256 if dims == 2 else 64  # 256² images, 64³ volumes


def _test_metrics(model, data_dir: str, split: str, cfg: TrainConfig, window
                  ) -> tuple[dict[str, float], int, int]:
    """Test metrics (per class for label maps and volumes, with object F1 for binary images),
    the number of test cases and the data's channels."""
    data, result = evaluate_folder(model, data_dir, split, cfg.device, patch=window,
                                   read=cfg.read)
    if result is None:
        mean = evaluate_model(model, data, cfg.device, objects=True)["mean"]
        metrics = {k: mean[k] for k in ("dice", "iou", "object_f1")}
        metrics.update(collapsed=mean["collapsed"], predicted=mean["predicted"])
        return metrics, len(data.names), data.channels
    # collapsed: no foreground class overlaps its truth in any case (as in validation)
    metrics = {"dice": result["mean"]["dice"], "iou": result["mean"]["iou"],
               "hd95": result["mean"]["hd95"], "collapsed": result["mean"]["dice"] == 0.0,
               "predicted": "no foreground class", "hd95_unit": result.get("hd95_unit", "")}
    for c, e in result["classes"].items():
        metrics.update({f"dice_{c}": e["dice"], f"hd95_{c}": e["hd95"]})
    return metrics, len(data.names), data.channels


def compare(specs: list[str], data_dir: str, out: str | Path, cfg: TrainConfig,
            seeds: list[int], split: str = "test", log: Callable[[str], None] = print,
            overwrite: bool = False) -> list[dict[str, Any]]:
    """Train every spec with every seed and evaluate it on ``split``: one row per spec with
    the mean and sd over seeds of each metric (per class for label maps and volumes) and
    ``collapsed``, the number of its runs that predict one class everywhere (each one logged
    as a WARNING). Refuses, before the first training, an ``out`` whose run folders or tables
    exist (unless ``overwrite``)."""
    out = Path(out)
    if not overwrite:
        for spec in specs:
            for seed in seeds:
                check_run_folder(out / Path(spec).stem / f"seed{seed}", hint="compare into "
                                 "another --out, or replace the runs with --overwrite")
        tables = [p for p in table_paths(out) if p.exists()]
        if tables:
            raise DataError(f"{out} already holds a comparison ({tables[0].name}); compare "
                            "into another --out, or replace it with --overwrite")
    rows = []
    for spec in specs:
        runs = []
        for seed in seeds:
            run_dir = out / Path(spec).stem / f"seed{seed}"
            t0 = time.perf_counter()
            train(spec, data_dir, run_dir, dataclasses.replace(cfg, seed=seed), log=log,
                  overwrite=overwrite)
            train_s = time.perf_counter() - t0
            model = load_checkpoint(run_dir / "best.pt")
            window = read_checkpoint(run_dir / "best.pt")["extra"].get("window")
            t1 = time.perf_counter()
            metrics, cases, channels = _test_metrics(model, data_dir, split, cfg, window)
            infer_ms = 1e3 * (time.perf_counter() - t1) / cases
            collapsed, predicted = metrics.pop("collapsed"), metrics.pop("predicted")
            unit = metrics.pop("hd95_unit", "")
            if collapsed:  # every such run is said, and counted in its row
                log(f"WARNING: {Path(spec).stem} seed {seed} collapsed: on `{split}` it "
                    f"predicts {predicted} everywhere (Dice {metrics['dice']:.4f}); its row "
                    f"is marked (run in {run_dir})")
            runs.append({"train_s": train_s, "infer_ms": infer_ms, "collapsed": collapsed,
                         **metrics})
        model = load_checkpoint(out / Path(spec).stem / f"seed{seeds[0]}" / "best.pt")
        size = _flops_size(model.ir.dims)
        row = {"spec": Path(spec).stem, "params": count_params(model), "flops_size": size,
               "gflops": _flops(model, channels, size) / 1e9, "seeds": len(seeds)}
        row["collapsed"] = sum(r.pop("collapsed") for r in runs)
        if unit:
            row["hd95_unit"] = unit
        for key in runs[0]:
            values = [r[key] for r in runs]
            row[key] = statistics.fmean(values)
            row[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    _write(out, rows)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: Dice, IoU and object F1 for binary images; mean foreground Dice, Dice
    and HD95 per class (in its unit) for label maps and volumes (mean ± sd over seeds); a spec
    with collapsed runs (one class predicted everywhere) says how many."""
    classes = sorted(k[5:] for k in rows[0] if k.startswith("dice_") and not k.endswith("_sd"))
    metrics = (["dice"] + [f"dice_{c}" for c in classes] + [f"hd95_{c}" for c in classes]
               if classes else ["dice", "iou", "object_f1"])
    names = {"dice": "mean fg Dice" if classes else "Dice", "iou": "IoU",
             "object_f1": "object F1", **{f"dice_{c}": f"Dice {c}" for c in classes},
             **{f"hd95_{c}": f"HD95 {c}" for c in classes}}
    unit = rows[0].get("hd95_unit")
    if unit:
        names.update({f"hd95_{c}": f"HD95 {c} ({unit})" for c in classes})
    size = rows[0]["flops_size"]
    where = f"{size}²" if size == 256 else f"{size}³"
    collapsed = any(r.get("collapsed") for r in rows)  # a column only when a run collapsed
    lines = [f"| spec | params | GFLOPs ({where}) | train s | infer ms/case | "
             + " | ".join(names[m] for m in metrics) + " |"
             + (" collapsed runs (one class everywhere) |" if collapsed else ""),
             "|---|---|---|---|---|" + "---|" * (len(metrics) + collapsed)]
    for r in rows:
        cells = [f"{r[m]:.4f} ± {r[m + '_sd']:.4f}" if not m.startswith("hd95")
                 else f"{r[m]:.2f} ± {r[m + '_sd']:.2f}" for m in metrics]
        lines.append(f"| {r['spec']} | {r['params']:,} | {r['gflops']:.2f} | "
                     f"{r['train_s']:.0f} | {r['infer_ms']:.0f} | " + " | ".join(cells) + " |"
                     + (f" {'COLLAPSED: ' if r.get('collapsed') else ''}"
                        f"{r.get('collapsed', 0)} of {r['seeds']} |" if collapsed else ""))
    return "\n".join(lines)


def table_paths(out: str | Path) -> list[Path]:
    """The files :func:`compare` writes besides the runs: compare.md, .csv and .json."""
    return [Path(out) / f"compare.{ext}" for ext in ("md", "csv", "json")]


def _write(out: Path, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path, json_path = table_paths(out)
    md.write_text(format_table(rows) + "\n")
    json_path.write_text(json.dumps(rows, indent=1))
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
