"""Compiled spec vs hand-written module (vs MONAI where installed), and skipgraph's speed
switches, in one process and one run.

    python bench/bench_speed.py [--size 128] [--batch 2] [--reps 11] [--compile] [--switches]
                                [--device cpu|cuda|all] [--out F.json]

Part 1 (always): for U-Net and UNet++ (the UNet++ paper's convention) the compiled spec, the
hand-written module of bench/reference.py holding the same weights (outputs compared before
timing) and MONAI's BasicUNetPlusPlus (batch norm, ReLU, deconv: similar, not identical) are
timed for forward (no grad) and a training step (forward + backward), eager and, with
``--compile``, torch.compile. Part 2 (``--switches``): the spec with channels_last, bf16/fp16
autocast (GPU), torch.compile and CUDA graphs (``reduce-overhead``, GPU) against the eager fp32
hand-written module, with achieved TFLOP/s and, on known GPUs, the fraction of peak. Part 3
(``--fold-bn``): inference with BatchNorm folded into the convolutions, on the zoo's BN specs.

Contenders are timed interleaved (skipgraph.compile.timing): ratios are medians of per-round
ratios, so machine load that comes and goes does not favour whoever ran during a quiet spell.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import skipgraph  # noqa: E402
from skipgraph.compile.speed import optimize  # noqa: E402
from skipgraph.compile.timing import (bench_devices, count_flops, forward_fn,  # noqa: E402
                                      interleaved, median, paired_ratio, peak_tflops,
                                      save_results, train_step_fn)
from reference import REFERENCES  # noqa: E402

# (callable, input, module owning the parameters) -> one call of the task
TASKS: dict[str, Callable[..., Callable[[], None]]] = {
    "forward": lambda run, x, owner: forward_fn(run, x), "train step": train_step_fn}
BASELINE = "hand-written"


def monai_unetpp(base: int):
    try:
        from monai.networks.nets import BasicUNetPlusPlus
    except ImportError:
        return None
    return BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1,
                             features=tuple(base * 2**i for i in range(5)) + (base,),
                             act="relu", norm="batch", upsample="deconv")


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"


def time_row(row: dict[str, Any], fns: dict[str, Callable[[], None]], reps: int,
             device: torch.device) -> dict[str, list[float]]:
    """Warm every contender up (recording the ones that fail), then time the rest together."""
    ok = {}
    for label, fn in fns.items():
        try:
            fn()  # first call: torch.compile compiles here
            ok[label] = fn
        except Exception as exc:  # e.g. an inductor bug in one contender
            row[label] = None
            row[f"{label}_error"] = _error(exc)
    times = interleaved(ok, reps, device, warmup=1)
    for label, t in times.items():
        row[label] = median(t)
    return times


def compare(name: str, args, device: torch.device) -> list[dict]:
    """Part 1: spec vs hand-written vs MONAI, same input, eager and compiled."""
    spec = skipgraph.build(ROOT / "specs" / f"{name}.yaml", seed=0, base=args.base)
    ref = REFERENCES[name](base=args.base)
    ref.load_state_dict(spec.state_dict(), strict=True)
    models = {"skipgraph": spec, BASELINE: ref}
    if name == "unet_pp" and not args.no_monai and (monai := monai_unetpp(args.base)):
        models["monai"] = monai
    for m in models.values():
        m.to(device)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    spec.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(spec(x), ref(x))  # the same computation
    rows = []
    for mode in ["eager"] + (["compile"] if args.compile else []):
        for task, make in TASKS.items():
            for m in models.values():
                m.train(task == "train step")
            fns = {label: make(torch.compile(m) if mode == "compile" else m, x, m)
                   for label, m in models.items()}
            row = {"part": "compare", "model": name, "device": device.type, "mode": mode,
                   "task": task}
            times = time_row(row, fns, args.reps, device)
            if "skipgraph" in times and BASELINE in times:
                row["ratio"] = paired_ratio(times["skipgraph"], times[BASELINE])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def switch_variants(device: torch.device, max_autotune: bool) -> dict[str, dict[str, Any]]:
    """The switch combinations timed on this device (keyword arguments of ``optimize``)."""
    v: dict[str, dict[str, Any]] = {"eager": {}, "channels_last": {"channels_last": True}}
    if device.type == "cuda":
        v["bf16"] = {"amp": "bf16"}
        v["fp16"] = {"amp": "fp16"}
    v["compile"] = {"compile_mode": "default"}
    v["compile+channels_last"] = {"compile_mode": "default", "channels_last": True}
    if device.type == "cuda":
        v["compile+channels_last+bf16"] = {"compile_mode": "default", "channels_last": True,
                                           "amp": "bf16"}
        v["cudagraphs+channels_last+bf16"] = {"compile_mode": "reduce-overhead",
                                              "channels_last": True, "amp": "bf16"}
        if max_autotune:
            v["max-autotune+channels_last+bf16"] = {"compile_mode": "max-autotune",
                                                   "channels_last": True, "amp": "bf16"}
    return v


def switches(name: str, args, device: torch.device) -> list[dict]:
    """Part 2: the spec with each switch combination vs the eager fp32 hand-written module."""
    spec = skipgraph.build(ROOT / "specs" / f"{name}.yaml", seed=0, base=args.base).to(device)
    ref = REFERENCES[name](base=args.base).to(device)
    ref.load_state_dict(spec.state_dict(), strict=True)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    variants = switch_variants(device, args.max_autotune)
    rows = []
    for task, make in TASKS.items():
        training = task == "train step"
        flops = count_flops(make(spec.train(training), x, spec))
        fns = {BASELINE: make(ref.train(training), x, ref)}
        for label, kw in variants.items():
            model = copy.deepcopy(spec).train(training)
            runner = optimize(model, device=device, **kw)
            inp = x_cl if kw.get("channels_last") else x
            fns[label] = make(runner, inp, model)
        row: dict[str, Any] = {"part": "switches", "model": name, "device": device.type,
                               "task": task, "gflops_per_call": flops / 1e9}
        times = time_row(row, fns, args.reps, device)
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
        for label, kw in variants.items():
            if label not in times:
                continue
            row[f"{label}_speedup"] = paired_ratio(times[BASELINE], times[label])
            row[f"{label}_tflops"] = flops / row[label] / 1e12
            precision = kw.get("amp") or ("tf32" if torch.backends.cudnn.allow_tf32 else "fp32")
            peak = peak_tflops(gpu, precision) if gpu else None
            if peak:
                row[f"{label}_of_peak"] = row[f"{label}_tflops"] / peak
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# zoo specs with conv -> BatchNorm blocks, for the BatchNorm-folding switch
FOLD_SPECS = {"unet_pp": {"norm": "batch"}, "unet3p": {}, "attention_unet": {}}


def fold(name: str, params: dict, args, device: torch.device) -> dict:
    """Part 3: eval-mode forward with and without BatchNorm folded into the convolutions."""
    spec = skipgraph.build(ROOT / "specs" / f"{name}.yaml", seed=0, **params).to(device).eval()
    x = torch.randn(args.batch, spec.ir.in_channels, args.size, args.size, device=device)
    folded = optimize(spec, fold_bn=True, device=device)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), spec(x), rtol=1e-3, atol=1e-4)
    row: dict[str, Any] = {"part": "fold", "model": name, "device": device.type,
                           "task": "forward"}
    times = time_row(row, {"eager": forward_fn(spec, x), "fold_bn": forward_fn(folded, x)},
                     args.reps, device)
    row["fold_bn_speedup"] = paired_ratio(times["eager"], times["fold_bn"])
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--reps", type=int, default=11)
    p.add_argument("--compile", action="store_true", help="part 1 also with torch.compile")
    p.add_argument("--switches", action="store_true", help="part 2: the speed switches")
    p.add_argument("--max-autotune", action="store_true", help="part 2 also with max-autotune")
    p.add_argument("--fold-bn", action="store_true", help="part 3: BatchNorm folding for "
                   "inference on the zoo's BatchNorm specs")
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                   help="all: the CPU and, when present, the GPU")
    p.add_argument("--models", nargs="*", default=list(REFERENCES), choices=list(REFERENCES),
                   help="parts 1 and 2 for these (none: only part 3)")
    p.add_argument("--no-monai", action="store_true")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch._dynamo.config.cache_size_limit = 64  # many compiled copies of one forward
    devices = bench_devices(args.device)
    rows = []
    for device in devices:
        for name in args.models:
            rows += compare(name, args, device)
            if args.switches:
                rows += switches(name, args, device)
        if args.fold_bn:
            rows += [fold(name, params, args, device) for name, params in FOLD_SPECS.items()]
    save_results(args.out, rows, args)


if __name__ == "__main__":
    main()
