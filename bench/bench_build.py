"""Build-time scaling: spec -> module (load, expand, validate, infer, compile) time and memory.

    python bench/bench_build.py [--out F.json]

UNet++ and UNet# at depth 4..8 and BiO-Net at t = 1..6 (width base 4, so weight allocation
does not dominate; UNet++ depth 4 also at the paper's base 32, beside the time to construct the
hand-written module of bench/reference.py); reports the number of IR nodes and edges, the median time of the graph
stages (load + expand + validate + infer, torch-free), of the whole build (with torch module
construction), and the peak Python memory of the graph stages (tracemalloc).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import skipgraph  # noqa: E402
from skipgraph.compile import compile_ir  # noqa: E402

CASES = [("unet_pp", "depth", range(4, 5), {"base": 32}),  # the paper's width, for scale
         ("unet_pp", "depth", range(4, 9), {"base": 4}),
         ("unet_sharp", "depth", range(4, 9), {"base": 4}),
         ("bionet", "t", range(1, 7), {"base": 4})]


def median_time(fn, reps: int = 7) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(spec: str, params: dict) -> dict:
    path = ROOT / "specs" / f"{spec}.yaml"
    ir = skipgraph.load_ir(path, **params)
    tracemalloc.start()
    skipgraph.load_ir(path, **params)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"spec": spec, **params, "nodes": ir.graph.number_of_nodes() - 1,
            "edges": ir.graph.number_of_edges(),
            "graph_ms": 1e3 * median_time(lambda: skipgraph.load_ir(path, **params)),
            "build_ms": 1e3 * median_time(lambda: compile_ir(skipgraph.load_ir(path, **params))),
            "graph_peak_kib": peak / 1024, **_hand_written_ms(spec, params)}


def _hand_written_ms(spec: str, params: dict) -> dict:
    """Constructing the same modules by hand (bench/reference.py), where one exists: the part of
    the build time that any nn.Module of this size pays (allocating and initialising weights)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from reference import REFERENCES
    if spec not in REFERENCES:
        return {}
    return {"hand_written_ms": 1e3 * median_time(lambda: REFERENCES[spec](**params))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out")
    args = p.parse_args(argv)
    rows = []
    for spec, key, values, fixed in CASES:
        for v in values:
            row = measure(spec, {**fixed, key: v})
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
