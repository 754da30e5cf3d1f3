"""Timing and memory of a model's forward pass and training step, for ``build --time`` and
the benchmarks under ``bench/``.

Contenders are timed *interleaved* (one call of each per round, the order rotating), so load that
comes and goes on a shared machine hits all of them alike; ratios are the median of the per-round
ratios, which is far steadier than a ratio of two medians taken one after the other.
"""
from __future__ import annotations

import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from .speed import memory_format, optimize

__all__ = ["measure", "forward_fn", "train_step_fn", "interleaved", "paired_ratio", "median",
           "count_flops", "cuda_peak_bytes", "synchronize", "peak_tflops", "GPU_PEAK_TFLOPS",
           "bench_devices", "save_results"]

# Dense tensor-core peaks from the vendors' data sheets (TFLOP/s): fp32 (no tensor cores), tf32,
# bf16/fp16. Matched by substring of torch.cuda.get_device_name(); longest match wins.
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},   # SXM
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.1},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0},
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


def forward_fn(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], None]:
    """One inference call (no autograd)."""
    def run() -> None:
        with torch.no_grad():
            model(x)
    return run


def train_step_fn(model: Callable[[torch.Tensor], Any], x: torch.Tensor,
                  params: torch.nn.Module | None = None) -> Callable[[], None]:
    """Forward + backward of the mean of every output (all deep-supervision heads).
    ``params`` is the module whose gradients are cleared (``model`` may be a compiled wrapper)."""
    owner = params if params is not None else model

    def run() -> None:
        owner.zero_grad(set_to_none=True)  # type: ignore[union-attr]
        sum(o.float().mean() for o in _outputs(model(x))).backward()
    return run


def interleaved(fns: Mapping[str, Callable[[], None]], reps: int, device: torch.device,
                warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, ``reps`` rounds of one call each in rotating order,
    after ``warmup`` untimed calls of each (where torch.compile compiles)."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up (and torch.compile's compilation) outside the timed rounds
        for _ in range(warmup):
            fns[n]()
    synchronize(device)
    for r in range(reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[n]()
            synchronize(device)
            times[n].append(time.perf_counter() - t0)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a / b (both timed in the same rounds)."""
    return statistics.median(x / y for x, y in zip(a, b))


def count_flops(fn: Callable[[], None]) -> int:
    """FLOPs of one call, counted by torch's FlopCounterMode (convolutions and matmuls; a
    multiply-add counts 2). Run on an eager model: compiled code hides its ops from the counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def cuda_peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak CUDA memory allocated during one call, above what was allocated before it."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The data-sheet peak of a GPU for ``fp32``, ``tf32`` or ``bf16`` (fp16 is the same as
    bf16 on these parts); None for an unknown device."""
    matches = [k for k in GPU_PEAK_TFLOPS if k in device_name]
    if not matches:
        return None
    return GPU_PEAK_TFLOPS[max(matches, key=len)].get("bf16" if precision == "fp16" else precision)


def measure(model: torch.nn.Module, input_shape: list[int], *, reps: int = 10,
            device: str | torch.device = "cpu", **switches: Any) -> dict[str, Any]:
    """Median seconds of a forward pass and of a training step of ``model`` (a SkipGraphModule)
    with the speed switches of :func:`skipgraph.compile.speed.optimize`, FLOPs counted on the
    eager model, achieved TFLOP/s and, on a GPU, the training step's peak memory."""
    device = torch.device(device)
    base = model.to(device)
    x = torch.randn(*input_shape, device=device)
    result: dict[str, Any] = {"device": str(device), "input": list(input_shape), "reps": reps,
                              "switches": {k: v for k, v in switches.items() if v}}
    for task in ("forward", "train step"):
        training = task == "train step"
        base.train(training)
        eager = train_step_fn(base, x, base) if training else forward_fn(base, x)
        flops = count_flops(eager)
        m = copy.deepcopy(base).train(training)
        # BatchNorm folding is for inference: the training step runs the model as built
        runner = optimize(m, device=device, **{k: v for k, v in switches.items()
                                                if not (training and k == "fold_bn")})
        inp = x.contiguous(memory_format=memory_format(len(input_shape) - 2)) \
            if switches.get("channels_last") else x
        fn = train_step_fn(runner, inp, m) if training else forward_fn(runner, inp)
        seconds = median(interleaved({task: fn}, reps, device)[task])
        entry: dict[str, Any] = {"seconds": seconds, "flops": flops,
                                 "tflops": flops / seconds / 1e12}
        if device.type == "cuda" and training:
            entry["peak_bytes"] = cuda_peak_bytes(fn, device)
        result[task] = entry
    return result


def bench_devices(choice: str) -> list[torch.device]:
    """The devices a benchmark runs on: ``cpu``, ``cuda`` or ``all`` (the CPU and, when
    present, the GPU)."""
    names = ["cpu", "cuda"] if choice == "all" else [choice]
    return [torch.device(d) for d in names if d == "cpu" or torch.cuda.is_available()]


def save_results(path: str | None, rows: list[dict], args: Any) -> None:
    """Write a benchmark's rows with the machine they were measured on (torch, processor,
    threads, GPU, arguments) as JSON at ``path`` (nothing when None)."""
    if not path:
        return
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "args": vars(args)}
    if torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
    Path(path).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
