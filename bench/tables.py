"""Markdown tables for docs/performance.md from the benchmarks' JSON files.

    python bench/tables.py speed docs/bench_speed_cpu.json
    python bench/tables.py memory docs/bench_memory_cpu.json
    python bench/tables.py build docs/bench_build_cpu.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

NAMES = {"unet": "U-Net", "unet_pp": "UNet++", "unet_sharp": "UNet#", "bionet": "BiO-Net",
         "unet3p": "UNet3+", "attention_unet": "Attention U-Net"}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _s(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def speed(data: dict) -> str:
    rows = data["rows"]
    compare = [[NAMES[r["model"]], r["device"], r["mode"], r["task"], _s(r.get("skipgraph")),
                _s(r.get("hand-written")), f"{r['ratio']:.2f}" if "ratio" in r else "-",
                _s(r.get("monai")) if "monai" in r else "-"]
               for r in rows if r["part"] == "compare"]
    out = [_table(["model", "device", "mode", "task", "skipgraph s", "hand-written s",
                   "ratio", "MONAI s"], compare)] if compare else []
    errors = [f"- {NAMES[r['model']]} {r['mode']} {r['task']}: {k[:-6]} failed: `{v}`"
              for r in rows for k, v in r.items() if k.endswith("_error")]
    switch_rows = [r for r in rows if r["part"] == "switches"]
    if switch_rows:
        labels = [k[:-8] for k in switch_rows[0] if k.endswith("_speedup")]
        table = []
        for r in switch_rows:
            for label in labels:
                of_peak = r.get(f"{label}_of_peak")
                table.append([NAMES[r["model"]], r["device"], r["task"], label, _s(r[label]),
                              f"{r[f'{label}_speedup']:.2f}x",
                              f"{1e3 * r[f'{label}_tflops']:.0f}",
                              f"{100 * of_peak:.1f}%" if of_peak else "-"])
        out.append(_table(["model", "device", "task", "switches", "seconds",
                           "vs hand-written eager fp32", "GFLOP/s", "of peak"], table))
    fold_rows = [[NAMES.get(r["model"], r["model"]), r["device"], _s(r["eager"]),
                  _s(r["fold_bn"]), f"{r['fold_bn_speedup']:.2f}x"]
                 for r in rows if r["part"] == "fold"]
    if fold_rows:
        out.append(_table(["model", "device", "eval forward s", "BatchNorm folded s",
                           "speed-up"], fold_rows))
    return "\n\n".join(out + (["\n".join(errors)] if errors else []))


def memory(rows: list[dict]) -> str:
    table = []
    for r in rows:
        config = f"t={r['t']}" if "t" in r else ("ds" if r.get("ds") else "")
        table.append([NAMES[r["spec"]], config, ", ".join(r["checkpoint"]) or "none",
                      "x".join(map(str, r["input"])), f"{r['peak_mib']:.0f}",
                      f"{r['step_s']:.2f}"])
    return _table(["spec", "config", "checkpoint", "input", "peak MiB", "step s"], table)


def build(rows: list[dict]) -> str:
    return _table(["spec", "depth / t", "base", "nodes", "edges", "graph ms", "build ms",
                   "hand-written ms", "graph peak KiB"],
                  [[NAMES[r["spec"]], str(r.get("depth", r.get("t"))), str(r["base"]),
                    str(r["nodes"]), str(r["edges"]), f"{r['graph_ms']:.1f}",
                    f"{r['build_ms']:.1f}", _s(r.get("hand_written_ms"), 1),
                    f"{r['graph_peak_kib']:.0f}"] for r in rows])



def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["speed", "memory", "build"])
    p.add_argument("json_file")
    args = p.parse_args(argv)
    data = json.loads(Path(args.json_file).read_text())
    print({"speed": speed, "memory": memory, "build": build}[args.kind](data))


if __name__ == "__main__":
    main()
