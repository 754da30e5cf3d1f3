"""How close the resource guard's training-memory estimate is to what a training step holds.

    python bench/bench_estimate.py [--size 128] [--batch 2] [--out docs/bench_estimate_cpu.json]

For each zoo spec (defaults) it reports, for one training step (forward, loss, backward, Adam)
on a ``batch x C x size x size`` input:

- ``estimate``: ``estimate_training_bytes`` (from the IR, before anything is allocated);
- ``saved``: the bytes of the distinct tensors autograd keeps for the backward pass, measured
  with ``torch.autograd.graph.saved_tensors_hooks``, plus weights, gradients and Adam's moments;
- ``peak``: the growth of the peak resident set size during the step (after a warm-up step on a
  small input), in a fresh process, with glibc told to return freed blocks
  (``MALLOC_MMAP_THRESHOLD_``) so that it follows the live tensors; plus the weights.

Run by hand (minutes on a CPU); the table goes into docs/performance.md.
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
SPECS = ["unet", "unet_plus", "unet_e", "unet_pp", "unet3p", "unet_sharp", "bionet",
         "bio_linknet", "r2unet", "runet", "resunet", "attention_unet"]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(spec: str, size: int, batch: int) -> dict:
    """One spec, in this process."""
    import torch
    sys.path.insert(0, str(ROOT))
    import skipgraph
    from skipgraph.graph.estimate import estimate_params, estimate_training_bytes
    from skipgraph.losses import DeepSupervisionLoss
    model = skipgraph.build(ROOT / "specs" / f"{spec}.yaml", seed=0).train()
    ir = model.ir
    shape = [batch, ir.in_channels] + [size] * ir.dims
    weights = 4 * sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters())
    # the same loss for every spec (MS-SSIM, UNet3+'s, needs inputs over 160 px)
    criterion = DeepSupervisionLoss(ir, "bce_dice")

    def step(x: torch.Tensor, saved: dict | None = None) -> None:
        y = (torch.rand(x.shape[0], 1, *x.shape[2:]) > 0.5).float()

        def pack(t: torch.Tensor) -> torch.Tensor:
            if saved is not None and t.device.type == "cpu":
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    small = 2 ** ir.max_level * 2
    step(torch.randn(1, ir.in_channels, *[small] * ir.dims))  # warm-up: Adam's state exists
    x = torch.randn(*shape)
    saved: dict[int, int] = {}
    before = _rss()
    step(x, saved)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    states = 4 * weights  # weights, gradients, Adam's two moments
    return {"spec": spec, "params": estimate_params(ir), "input": shape,
            "estimate": estimate_training_bytes(ir, shape),
            "saved": sum(saved.values()) + states, "peak": peak + states}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--specs", nargs="+", default=SPECS)
    ap.add_argument("--out", help="write the rows as JSON")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one spec, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.batch)))
        return
    rows = []
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=str(ROOT))
    for spec in args.specs:
        out = subprocess.run([sys.executable, __file__, "--one", spec, "--size", str(args.size),
                              "--batch", str(args.batch)], capture_output=True, text=True,
                             env=env, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    mib = 2 ** 20
    print(f"| spec | input | estimate MiB | saved + states MiB | est./saved | peak MiB | "
          f"est./peak |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['spec']} | {'x'.join(map(str, r['input']))} | {r['estimate'] / mib:.0f} | "
              f"{r['saved'] / mib:.0f} | {r['estimate'] / r['saved']:.2f} | "
              f"{r['peak'] / mib:.0f} | {r['estimate'] / max(r['peak'], 1):.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
