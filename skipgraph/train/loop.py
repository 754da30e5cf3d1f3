"""``skipgraph train``: the spec's loss and deep supervision, validation every epoch, the best
checkpoint kept, CSV/JSON logs and PNG plots, resumable; DistributedDataParallel under
``torchrun`` (gloo on CPU, nccl on GPU)."""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from ..compile import SkipGraphModule, compile_ir
from ..compile.module import recompute_names
from ..compile.speed import amp_dtype, memory_format
from ..graph import build_ir
from ..losses import loss_for
from ..spec import load_spec
from .data import DataError, SegmentationFolder
from .evaluate import evaluate_model

__all__ = ["TrainConfig", "train"]


@dataclass
class TrainConfig:
    epochs: int = 20
    batch: int = 8
    lr: float = 1e-3
    crop: int = 128
    samples_per_image: int = 4   # random crops drawn from each training image per epoch
    steps: int | None = None     # cap on optimizer steps per epoch (tiny runs, tests)
    seed: int = 0
    device: str = "cpu"
    amp: str | None = None       # bf16 | fp16 autocast
    channels_last: bool = False
    compile: bool = False
    recompute: tuple[str, ...] = ()  # node families / loops recomputed in the backward pass
    checkpoint: tuple[str, ...] | None = None  # deprecated name of `recompute`
    val_every: int = 1           # validate every k epochs (and after the last one)
    time_limit: float | None = None  # seconds: stop after the epoch that passes it
    train_split: str = "train"
    val_split: str = "val"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.checkpoint is not None:
            self.recompute = recompute_names(self.recompute, self.checkpoint, stacklevel=4)
            self.checkpoint = None
        if self.val_every < 1:
            raise ValueError(f"val_every must be >= 1, not {self.val_every}")


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world


def _build(spec: str, cfg: TrainConfig, out: Path, resume: bool
           ) -> tuple[SkipGraphModule, dict | None]:
    last = out / "last.pt"
    if resume and last.exists():
        data = read_checkpoint(last)
        return model_from_checkpoint(data, last, recompute=cfg.recompute), data["extra"]
    return compile_ir(build_ir(load_spec(spec, cfg.overrides)), seed=cfg.seed,
                      recompute=cfg.recompute), None


def train(spec: str, data_dir: str | Path, out: str | Path, cfg: TrainConfig,
          resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and return the best validation metrics; writes into ``out``."""
    rank, world = _dist_info()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + rank)
    train_set = SegmentationFolder(data_dir, cfg.train_split, crop=cfg.crop, augment=True,
                                   samples_per_image=cfg.samples_per_image, seed=cfg.seed + rank,
                                   classes=int(cfg.overrides.get("classes", 1)))
    val_set = SegmentationFolder(data_dir, cfg.val_split, crop=None, augment=False,
                                 classes=int(cfg.overrides.get("classes", 1)))
    model, state = _build(spec, cfg, out, resume)
    if model.ir.in_channels != train_set.channels:
        raise DataError(f"{data_dir}: images have {train_set.channels} channel(s) but the model "
                        f"takes {model.ir.in_channels}; add --set in_channels="
                        f"{train_set.channels}")
    device = torch.device(cfg.device)
    model.to(device)
    fmt = memory_format(model.ir.dims) if cfg.channels_last else None  # 3D: channels_last_3d
    if fmt is not None:
        model.to(memory_format=fmt)
    criterion = loss_for(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, history, best = 0, [], {"dice": -1.0}
    if state:
        optimizer.load_state_dict(state["optimizer"])
        start, history, best = state["epoch"], state["history"], state["best"]
        log(f"resumed from {out / 'last.pt'} at epoch {start}")
    runner = model
    if world > 1:
        runner = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.compile:
        runner = torch.compile(runner)
    sampler = DistributedSampler(train_set, seed=cfg.seed) if world > 1 else None
    loader = DataLoader(train_set, batch_size=cfg.batch, shuffle=sampler is None,
                        sampler=sampler, drop_last=len(train_set) > cfg.batch)
    began = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        if cfg.time_limit and time.perf_counter() - began > cfg.time_limit:
            log(f"time limit of {cfg.time_limit:.0f}s reached after {epoch - start} epoch(s)")
            break
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum, steps = _train_epoch(runner, criterion, optimizer, loader, device, cfg, log,
                                       epoch, fmt)
        row = {"epoch": epoch + 1, "loss": loss_sum / max(steps, 1), "steps": steps,
               "seconds": time.perf_counter() - t0}
        final_epoch = epoch + 1 == cfg.epochs or bool(
            cfg.time_limit and time.perf_counter() - began > cfg.time_limit)
        if rank == 0:
            metrics = None
            if (epoch + 1) % cfg.val_every == 0 or final_epoch:
                metrics = evaluate_model(model, val_set, device=device)["mean"]
            row.update({"val_dice": metrics and metrics["dice"],
                        "val_iou": metrics and metrics["iou"]})
            history.append(row)
            if metrics and metrics["dice"] > best["dice"]:
                best = {"epoch": epoch + 1, **metrics}
                save_checkpoint(model, out / "best.pt", extra={"epoch": epoch + 1,
                                                               "metrics": metrics})
            save_checkpoint(model, out / "last.pt", extra={
                "epoch": epoch + 1, "optimizer": optimizer.state_dict(), "history": history,
                "best": best, "config": asdict(cfg)})
            _write_logs(out, history)
            val = (f"val Dice {metrics['dice']:.4f}, IoU {metrics['iou']:.4f}" if metrics
                   else "not validated")
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}, {val} "
                f"({row['seconds']:.1f}s)")
    if rank == 0:
        _write_plots(out, history, model, val_set, device)
    if world > 1:
        dist.barrier()
    return best


def _train_epoch(runner, criterion, optimizer, loader, device, cfg: TrainConfig, log,
                 epoch: int, fmt: torch.memory_format | None = None) -> tuple[float, int]:
    runner.train()
    total, steps = 0.0, 0
    amp = amp_dtype(cfg.amp)
    bar = _progress(loader, f"epoch {epoch + 1}")
    for x, y in bar:
        x, y = x.to(device), y.to(device)
        if fmt is not None:
            x = x.contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = runner(x)
        loss = criterion(_float(out), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item()
        steps += 1
        if cfg.steps and steps >= cfg.steps:
            break
    return total, steps


def _float(out: Any) -> Any:
    if isinstance(out, dict):
        return {k: v.float() for k, v in out.items()}
    return out.float()


def _progress(iterable, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, leave=False, disable=not os.isatty(2))


def _write_logs(out: Path, history: list[dict]) -> None:
    (out / "log.json").write_text(json.dumps(history, indent=1))
    with open(out / "log.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _write_plots(out: Path, history: list[dict], model, val_set, device) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        (out / "plots-skipped.txt").write_text("install matplotlib for plots\n")
        return
    if history:
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
        epochs = [h["epoch"] for h in history]
        ax[0].plot(epochs, [h["loss"] for h in history])
        ax[0].set(title="training loss", xlabel="epoch")
        validated = [h for h in history if h["val_dice"] is not None]
        ax[1].plot([h["epoch"] for h in validated], [h["val_dice"] for h in validated],
                   marker=".", label="Dice")
        ax[1].plot([h["epoch"] for h in validated], [h["val_iou"] for h in validated],
                   marker=".", label="IoU")
        ax[1].set(title="validation", xlabel="epoch")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=100)
        plt.close(fig)
    from .evaluate import predict
    fig, axes = plt.subplots(1, min(3, len(val_set)), figsize=(12, 4), squeeze=False)
    for k, ax in enumerate(axes[0]):
        image, mask = val_set[k]
        pred = predict(model, image[None], device)[0, 0]
        ax.imshow(image[0], cmap="gray")
        ax.contour(mask[0], levels=[0.5], colors="lime", linewidths=0.6)
        ax.contour(pred.numpy(), levels=[0.5], colors="magenta", linewidths=0.6)
        ax.set_title(f"{val_set.names[k][:20]} (green: truth, magenta: prediction)",
                     fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "predictions.png", dpi=110)
    plt.close(fig)
