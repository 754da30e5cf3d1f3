"""Training-step memory and time with and without activation checkpointing.

    python bench/bench_memory.py [--size 256] [--batch 1] [--device cpu|cuda] [--out F.json]

BiO-Net (x1.0, l=4) at t = 1..3 with and without ``recompute=["iterations"]`` (each loop
iteration's activations recomputed in the backward pass), and UNet++ (depth 4, ds) with and
without ``recompute=["X"]`` (every grid node). Each configuration runs in a fresh process:

- on a GPU, the peak of ``torch.cuda.max_memory_allocated`` during one training step, above what
  the weights and the input hold;
- on the CPU, the growth of the peak resident set size (``ru_maxrss``) during the first training
  step (after a small warm-up step), with glibc told to return every freed block above 64 KiB to the system
  (``MALLOC_MMAP_THRESHOLD_``) so that the resident size follows the live tensors. It includes the
  gradients (the same for both settings of a row).

It also reports the median time of a training step (checkpointing recomputes the forward pass of
what it covers).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = ([("bionet", {"t": t}, ckpt) for t in (1, 2, 3) for ckpt in ((), ("iterations",))]
         + [("unet_pp", {"ds": True}, ckpt) for ckpt in ((), ("X",))])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(spec: str, params: dict, checkpoint: tuple[str, ...], size: int, batch: int,
            device_name: str, reps: int) -> dict:
    """One configuration, in this process (``main`` gives each its own process)."""
    import torch
    sys.path.insert(0, str(ROOT))
    import skipgraph
    from skipgraph.compile.timing import cuda_peak_bytes, interleaved, median, train_step_fn
    device = torch.device(device_name)
    model = skipgraph.build(ROOT / "specs" / f"{spec}.yaml", seed=0, recompute=checkpoint,
                            **params).to(device).train()
    x = torch.randn(batch, model.ir.in_channels, *[size] * model.ir.dims, device=device)
    step = train_step_fn(model, x, model)
    # a small step first: lazy imports and one-time allocations stay out of the measurement
    train_step_fn(model, x[(...,) + (slice(0, 64),) * model.ir.dims], model)()
    if device.type == "cuda":
        peak = cuda_peak_bytes(step, device)
    else:
        before = _rss_bytes()
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    seconds = median(interleaved({"step": step}, reps, device, warmup=0)["step"])
    return {"spec": spec, **params, "checkpoint": list(checkpoint), "device": device.type,
            "input": [batch, model.ir.in_channels] + [size] * model.ir.dims,
            "peak_mib": peak / 2**20, "step_s": seconds}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: a JSON case for a child process
    args = p.parse_args(argv)
    if args.one:
        spec, params, ckpt = json.loads(args.one)
        print(json.dumps(measure(spec, params, tuple(ckpt), args.size, args.batch, args.device,
                                 args.reps)))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    rows = []
    for spec, params, ckpt in CASES:
        cmd = [sys.executable, __file__, "--one", json.dumps([spec, params, list(ckpt)]),
               "--size", str(args.size), "--batch", str(args.batch), "--device", args.device,
               "--reps", str(args.reps)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{spec} {params} checkpoint={list(ckpt)} failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
