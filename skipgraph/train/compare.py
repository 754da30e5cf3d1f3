"""``skipgraph compare``: train several specs the same way with the same seeds and tabulate
params, FLOPs, train time, inference time, Dice, IoU and object F1 (mean +- sd over seeds)."""
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

from ..checkpoint import load_checkpoint
from ..compile.summary import count_params
from .data import SegmentationFolder
from .evaluate import evaluate_model
from .loop import TrainConfig, train

__all__ = ["compare", "format_table"]


def _flops(model, channels: int, size: int = 256) -> int:
    counter = FlopCounterMode(display=False)
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(1, channels, *[size] * model.ir.dims))
    return int(counter.get_total_flops())


def compare(specs: list[str], data_dir: str, out: str | Path, cfg: TrainConfig,
            seeds: list[int], split: str = "test", log: Callable[[str], None] = print
            ) -> list[dict[str, Any]]:
    out = Path(out)
    test = SegmentationFolder(data_dir, split, crop=None, augment=False)
    rows = []
    for spec in specs:
        runs = []
        for seed in seeds:
            run_dir = out / Path(spec).stem / f"seed{seed}"
            t0 = time.perf_counter()
            train(spec, data_dir, run_dir, dataclasses.replace(cfg, seed=seed), log=log)
            train_s = time.perf_counter() - t0
            model = load_checkpoint(run_dir / "best.pt")
            t1 = time.perf_counter()
            mean = evaluate_model(model, test, cfg.device, objects=True)["mean"]
            metrics = {k: mean[k] for k in ("dice", "iou", "object_f1")}
            infer_ms = 1e3 * (time.perf_counter() - t1) / len(test.names)
            runs.append({"train_s": train_s, "infer_ms": infer_ms, **metrics})
        model = load_checkpoint(out / Path(spec).stem / f"seed{seeds[0]}" / "best.pt")
        row = {"spec": Path(spec).stem, "params": count_params(model),
               "gflops_256": _flops(model, test.channels) / 1e9, "seeds": len(seeds)}
        for key in runs[0]:
            values = [r[key] for r in runs]
            row[key] = statistics.fmean(values)
            row[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    _write(out, rows)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ("| spec | params | GFLOPs (256²) | train s | infer ms/img | Dice | IoU | "
            "object F1 |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        def pm(k: str) -> str:
            return f"{r[k]:.4f} ± {r[k + '_sd']:.4f}"
        lines.append(f"| {r['spec']} | {r['params']:,} | {r['gflops_256']:.2f} | "
                     f"{r['train_s']:.0f} | {r['infer_ms']:.0f} | {pm('dice')} | {pm('iou')} | "
                     f"{pm('object_f1')} |")
    return "\n".join(lines)


def _write(out: Path, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(format_table(rows) + "\n")
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    with open(out / "compare.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
