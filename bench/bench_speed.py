"""Compiled spec vs hand-written module (vs MONAI where installed), one process, one run.

    python bench/bench_speed.py [--size 128] [--batch 2] [--reps 10] [--compile] [--out F.json]

For U-Net and UNet++ (the UNet++ paper's convention) it times forward (no grad) and a training
step (forward + backward), eager and, with ``--compile``, torch.compile; on the CPU and on a GPU
when one is available. The compiled spec's weights are copied into the reference first and the
outputs compared, so both run the same computation. Reports medians and the ratio spec / ref.
MONAI's BasicUNetPlusPlus (batch norm, ReLU, deconv) is timed beside them as a widely used
implementation of a similar, not identical, architecture.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import skipgraph  # noqa: E402
from reference import REFERENCES  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, reps: int, device: torch.device, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _step(model, x):
    def run():
        model.zero_grad(set_to_none=True)
        out = model(x)
        outs = out.values() if isinstance(out, dict) else out if isinstance(out, list) else [out]
        sum(o.mean() for o in outs).backward()
    return run


def _forward(model, x):
    def run():
        with torch.no_grad():
            model(x)
    return run


def monai_unetpp(base: int):
    try:
        from monai.networks.nets import BasicUNetPlusPlus
    except ImportError:
        return None
    return BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1,
                             features=tuple(base * 2**i for i in range(5)) + (base,),
                             act="relu", norm="batch", upsample="deconv")


def bench(args) -> list[dict]:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for name, ref_cls in REFERENCES.items():
        spec = skipgraph.build(ROOT / "specs" / f"{name}.yaml", seed=0, base=args.base)
        ref = ref_cls(base=args.base)
        ref.load_state_dict(spec.state_dict(), strict=True)
        contenders = {"skipgraph": spec, "hand-written": ref}
        if name == "unet_pp" and not args.no_monai:
            monai = monai_unetpp(args.base)
            if monai is not None:
                contenders["monai"] = monai
        for device in devices:
            x = torch.randn(args.batch, 1, args.size, args.size, device=device)
            for m in contenders.values():
                m.to(device)
            spec.eval(), ref.eval()
            with torch.no_grad():
                torch.testing.assert_close(spec(x), ref(x))  # same computation
            for mode in ["eager"] + (["compile"] if args.compile else []):
                for task, make in (("forward", _forward), ("train step", _step)):
                    row = {"model": name, "device": device.type, "mode": mode, "task": task}
                    for label, m in contenders.items():
                        m.train(task == "train step")
                        if mode == "compile":
                            torch._dynamo.reset()  # a fresh cache: no recompile limit reached
                        fn = torch.compile(m) if mode == "compile" else m
                        try:
                            row[label] = time_call(make(fn, x), args.reps, device)
                        except Exception as exc:  # e.g. an inductor bug in one contender
                            row[label] = None
                            row[f"{label}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    if row["skipgraph"] and row["hand-written"]:
                        row["ratio"] = row["skipgraph"] / row["hand-written"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--no-monai", action="store_true")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    rows = bench(args)
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "args": vars(args)}
    if torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
