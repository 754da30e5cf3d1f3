"""``skipgraph train``: the spec's loss and deep supervision, validation every epoch, the best
checkpoint kept, CSV/JSON logs and PNG plots, resumable; DistributedDataParallel under
``torchrun`` (gloo on CPU, nccl on GPU)."""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
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
from .data import ReadOptions, SegmentationFolder
from .errors import DataError
from .evaluate import evaluate_model
from .guards import check_fit, check_training_setup, model_classes
from .resume import check_resume, check_run_folder
from .selection import better_epoch, collapse_warning
from .volumes import open_folder
from .windows import case_of, evaluate_cases, infer

__all__ = ["TrainConfig", "train"]


LR_SCHEDULES = ("constant", "poly")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch: int = 8
    lr: float = 1e-3
    crop: int = 128              # 2D image folders: square training crops
    patch: tuple[int, ...] | None = None  # volumes: training patch (default: the largest
                                 # case); validation windows cover the largest val case
    binary: bool = False         # foreground = any label value > 0 (instance-coloured masks)
    read: ReadOptions = field(default_factory=ReadOptions)  # ignore label, palette, alpha, NaN
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
    flip_axes: tuple[int, ...] | None = None  # spatial axes mirrored in augmentation
                                 # (None: all; () none): keep an axis whose sides differ in meaning
    lr_schedule: str = "constant"  # constant | poly: nnU-Net's lr * (1 - step / steps)^0.9
    time_limit: float | None = None  # seconds: stop after the epoch that passes it
    train_split: str = "train"
    val_split: str = "val"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.binary and not self.read.binary:  # one home: read.binary
            self.read = replace(self.read, binary=True)
        self.binary = self.read.binary
        if self.checkpoint is not None:
            self.recompute = recompute_names(self.recompute, self.checkpoint, stacklevel=4)
            self.checkpoint = None
        if self.val_every < 1:
            raise ValueError(f"val_every must be >= 1, not {self.val_every}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                             f"not {self.lr_schedule!r}")


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world


def _build(spec: str, cfg: TrainConfig, out: Path, resume: bool
           ) -> tuple[SkipGraphModule, dict | None]:
    last = out / "last.pt"
    ir = build_ir(load_spec(spec, cfg.overrides))
    if resume:
        if not last.exists():
            raise DataError(f"--resume: {last} does not exist, so there is no run to continue "
                            f"(train without --resume to start one in {out})")
        data = read_checkpoint(last)
        check_resume(data, last, spec, ir)
        return model_from_checkpoint(data, last, recompute=cfg.recompute), data["extra"]
    return compile_ir(ir, seed=cfg.seed, recompute=cfg.recompute), None


def train(spec: str, data_dir: str | Path, out: str | Path, cfg: TrainConfig,
          resume: bool = False, log: Callable[[str], None] = print,
          overwrite: bool = False) -> dict[str, Any]:
    """Train and return the best validation metrics; writes into ``out``, which is created
    once the data is read and checked. A folder that holds a run (best.pt / last.pt) is
    refused unless ``resume`` (continue it) or ``overwrite`` (replace it)."""
    rank, world = _dist_info()
    out = Path(out)
    check_run_folder(out, resume, overwrite)
    torch.manual_seed(cfg.seed + rank)
    model, state = _build(spec, cfg, out, resume)
    train_set, val_set = _open_data(model, data_dir, cfg, rank, world)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite and not resume:  # the replaced run's files would read as this one's
            for name in ("best.pt", "last.pt", "log.csv", "log.json", "curves.png",
                         "predictions.png", "plots-skipped.txt"):
                (out / name).unlink(missing_ok=True)
    run = _prepare(model, state, train_set, val_set, cfg, out, rank, world, log)
    began = time.perf_counter()
    for epoch in range(run.start, cfg.epochs):
        if _past_time_limit(cfg, began):
            log(f"time limit of {cfg.time_limit:.0f}s reached after {epoch - run.start} "
                "epoch(s)")
            break
        row = _train_one_epoch(run, epoch)
        if rank == 0:
            final = epoch + 1 == cfg.epochs or _past_time_limit(cfg, began)
            _validate_and_keep(run, epoch, row, final)
    return _finish(run)


@dataclass
class _Run:
    """What a training run carries from one epoch to the next."""

    model: SkipGraphModule
    runner: Any               # the model as trained: DDP- and/or torch.compile-wrapped
    criterion: Any
    optimizer: torch.optim.Optimizer
    scaler: "torch.amp.GradScaler | None"
    scheduler: Any
    loader: DataLoader
    sampler: DistributedSampler | None
    val_set: Any
    device: torch.device
    fmt: torch.memory_format | None
    cfg: TrainConfig
    out: Path
    rank: int
    world: int
    log: Callable[[str], None]
    start: int = 0
    history: list[dict] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"dice": -1.0})


def _open_data(model: SkipGraphModule, data_dir: str | Path, cfg: TrainConfig, rank: int,
               world: int) -> tuple[Any, Any]:
    """The training and validation sets, labels checked against the model's classes, and the
    data checked against the model (:mod:`skipgraph.train.guards`)."""
    classes = model_classes(model)  # labels are checked against what the model outputs
    stride = model.contract.stride  # per axis on an anisotropic grid (patches round to it)
    train_set = open_folder(data_dir, cfg.train_split, classes, patch=cfg.patch, crop=cfg.crop,
                            augment=True, samples_per_image=cfg.samples_per_image,
                            seed=cfg.seed + rank, stride=stride, flip_axes=cfg.flip_axes,
                            read=cfg.read)
    # validation windows: the largest validation case (one window per case for small volumes)
    val_set = open_folder(data_dir, cfg.val_split, classes, crop=None, stride=stride,
                          read=cfg.read)
    if isinstance(train_set, SegmentationFolder):  # 2D crops: stride, BatchNorm, loss sizes
        check_training_setup(model, train_set, cfg.crop, cfg.batch, world)
    else:
        check_fit(model, train_set, data_dir)
    return train_set, val_set


def place(model: SkipGraphModule, cfg: TrainConfig
          ) -> tuple[torch.device, torch.memory_format | None]:
    """Move ``model`` to ``cfg.device`` and, with ``cfg.channels_last``, to the channels-last
    format of its dims (``channels_last_3d`` for a 3D spec: ``channels_last`` is 4-d only).
    Returns the device and the memory format inputs must take (None: contiguous)."""
    device = torch.device(cfg.device)
    model.to(device)
    fmt = memory_format(model.ir.dims) if cfg.channels_last else None
    if fmt is not None:
        model.to(memory_format=fmt)
    return device, fmt


def _prepare(model: SkipGraphModule, state: dict | None, train_set: Any, val_set: Any,
             cfg: TrainConfig, out: Path, rank: int, world: int, log: Callable[[str], None]
             ) -> _Run:
    """Device and format, loss, optimizer, AMP scaler, the resumed state, the wrapped runner,
    the loader and the learning-rate schedule; logs the start."""
    device, fmt = place(model, cfg)
    criterion = loss_for(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = grad_scaler(cfg, device)
    resumed: dict[str, Any] = {}
    if state:
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        resumed = {"start": state["epoch"], "history": state["history"], "best": state["best"]}
        log(f"resumed from {out / 'last.pt'} at epoch {state['epoch']}")
    runner = model
    if world > 1:
        runner = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.compile:
        runner = torch.compile(runner)
    sampler = DistributedSampler(train_set, seed=cfg.seed) if world > 1 else None
    # the sampler remembers what it gave, so a non-finite loss can name the batch's files
    recorded = _Recording(sampler if sampler is not None else
                          torch.utils.data.RandomSampler(train_set))
    loader = DataLoader(train_set, batch_size=cfg.batch, sampler=recorded,
                        drop_last=len(train_set) > cfg.batch)
    if rank == 0:
        _log_start(log, model, train_set, val_set, cfg, len(loader), device, world)
    scheduler = lr_scheduler(optimizer, cfg, min(len(loader), cfg.steps or len(loader)),
                             resumed.get("start", 0))
    return _Run(model, runner, criterion, optimizer, scaler, scheduler, loader, sampler,
                val_set, device, fmt, cfg, out, rank, world, log, **resumed)


def _past_time_limit(cfg: TrainConfig, began: float) -> bool:
    return bool(cfg.time_limit and time.perf_counter() - began > cfg.time_limit)


def _train_one_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """One epoch of optimizer steps; its row of the log (loss, steps, samples, seconds)."""
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
    t0 = time.perf_counter()
    loss_sum, steps, samples = _train_epoch(run.runner, run.criterion, run.optimizer,
                                            run.loader, run.device, run.cfg,
                                            run.log if run.rank == 0 else _quiet, epoch,
                                            run.scaler, run.fmt, run.scheduler)
    return {"epoch": epoch + 1, "loss": loss_sum / max(steps, 1), "steps": steps,
            "samples": samples, "train_seconds": time.perf_counter() - t0}


def _validate_and_keep(run: _Run, epoch: int, row: dict[str, Any], final: bool) -> None:
    """Rank 0 after an epoch: validate (every ``val_every`` epochs and after the last), keep
    ``best.pt`` and ``last.pt``, write the logs and report the epoch."""
    cfg, t0 = run.cfg, time.perf_counter()
    metrics = None
    if (epoch + 1) % cfg.val_every == 0 or final:
        metrics = validate(run.model, run.val_set, run.device)
    row.update({"val_dice": metrics and metrics["dice"], "val_iou": metrics and metrics["iou"],
                "seconds": row["train_seconds"] + time.perf_counter() - t0})  # + validation
    row.update({k: v for k, v in (metrics or {}).items() if k.startswith("dice_")})
    run.history.append(row)
    if metrics and better_epoch(metrics, run.best):
        run.best = {"epoch": epoch + 1, **metrics}
        save_checkpoint(run.model, run.out / "best.pt", extra={
            "epoch": epoch + 1, "metrics": metrics, "read": run.cfg.read.recorded(),
            "window": list(getattr(run.val_set, "patch", None) or [])})
    save_checkpoint(run.model, run.out / "last.pt", extra={
        "epoch": epoch + 1, "optimizer": run.optimizer.state_dict(), "history": run.history,
        "best": run.best, "config": asdict(cfg), "read": cfg.read.recorded(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None})
    _write_logs(run.out, run.history)
    val = (f"val Dice {metrics['dice']:.4f}, IoU {metrics['iou']:.4f}" if metrics
           else "not validated")
    run.log(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}, {val} "
            f"({row['seconds']:.1f}s, of which training {row['train_seconds']:.1f}s, "
            f"{row['samples'] / row['train_seconds']:.1f} samples/s)")
    if metrics and metrics["collapsed"]:
        run.log(collapse_warning(run.model, metrics, epoch + 1))


def _finish(run: _Run) -> dict[str, Any]:
    """Rank 0: the collapse warning and the plots; every rank returns rank 0's best."""
    best = run.best
    if run.rank == 0:
        if best.get("collapsed"):
            run.log(f"WARNING: every validated epoch collapsed; best.pt (epoch {best['epoch']}) "
                    "predicts one class everywhere")
        _write_plots(run.out, run.history, run.model, run.val_set, run.device)
    if run.world > 1:
        shared = [best]
        dist.broadcast_object_list(shared, src=0)  # every rank reports rank 0's best
        best = shared[0]
        dist.barrier()
    return best


def _quiet(text: str) -> None:
    """The log of processes other than rank 0."""


def _epoch_text(drawn: int, unit: str, steps: int, cfg: TrainConfig) -> str:
    """What one epoch uses: ``drawn`` crops (patches) in ``steps`` batches, or with ``--steps``
    below that the crops of those steps alone."""
    used_steps = min(steps, cfg.steps or steps)
    if used_steps == steps:
        return f"{drawn} {unit} per epoch in {steps} steps of batch {cfg.batch}"
    used = min(drawn, used_steps * cfg.batch)
    return (f"{used} {unit} per epoch in {used_steps} steps of batch {cfg.batch} (--steps "
            f"{cfg.steps}; a full epoch would be {drawn} in {steps} steps)")


def _log_start(log, model: SkipGraphModule, train_set, val_set, cfg: TrainConfig, steps: int,
               device, world: int) -> None:
    from ..compile.summary import count_params
    volumes = not isinstance(train_set, SegmentationFolder)
    short = [] if volumes else train_set.smaller_than_crop()
    unit = f"patches of {getattr(train_set, 'patch', None)}" if volumes else \
        f"crops of {cfg.crop} px"
    noun = "volumes" if volumes else "images"
    log(f"training {model.ir.name} ({count_params(model):,} parameters) on {device}"
        f"{f' x {world} processes' if world > 1 else ''}: {len(train_set.names)} training "
        f"{noun}, {len(val_set.names)} validation {noun}; "
        f"{_epoch_text(len(train_set), unit, steps, cfg)}")
    for note in dict.fromkeys(train_set.notes + val_set.notes):  # what reading decided
        log(note)
    if volumes:
        log(f"volumes: {train_set.spacing_note()} (HD95 in {train_set.spacing_unit})")
    shown = min(steps, cfg.steps or steps)
    if volumes and shown == 1 and cfg.epochs > 1:
        log(f"hint: 1 optimizer step per epoch ({len(train_set.names)} volume(s) x "
            f"--samples-per-image {cfg.samples_per_image} / --batch {cfg.batch}): the model "
            "learns little per epoch and validation dominates; raise --samples-per-image "
            "(nnU-Net takes 250 steps an epoch) or --val-every")
    if short:
        log(f"note: {len(short)} training image(s) smaller than --crop {cfg.crop} (e.g. "
            f"{short[0]}); their crops are zero-padded to {cfg.crop} px")


def validate(model: SkipGraphModule, data: Any, device: torch.device | str) -> dict[str, float]:
    """Validation metrics: ``dice`` and ``iou`` (label maps and volumes: the mean over the
    foreground classes, with ``dice_C`` per class; sliding windows as large as the largest
    validation case, so a small volume is one window)."""
    if not hasattr(data, "case") and model_classes(model) == 1:
        return evaluate_model(model, data, device=device)["mean"]
    result = evaluate_cases(model, data, device, roi=getattr(data, "patch", None), hd95=False)
    # collapsed: no foreground class overlaps its truth in any case (e.g. background everywhere)
    return {"dice": result["mean"]["dice"], "iou": result["mean"]["iou"],
            "collapsed": result["mean"]["dice"] == 0.0, "predicted": "no foreground class",
            **{f"dice_{c}": e["dice"] for c, e in result["classes"].items()}}


def _train_epoch(runner, criterion, optimizer, loader, device, cfg: TrainConfig, log,
                 epoch: int, scaler: "torch.amp.GradScaler | None" = None,
                 fmt: torch.memory_format | None = None, scheduler=None
                 ) -> tuple[float, int, int]:
    runner.train()
    total, steps, samples = 0.0, 0, 0
    bar = _progress(loader, f"epoch {epoch + 1}")
    t0 = time.perf_counter()
    for x, y in bar:
        try:
            loss = train_step(runner, criterion, optimizer, x.to(device), y.to(device), cfg,
                              scaler, fmt)
        except NonFiniteLoss as exc:
            raise DataError(_non_finite_message(exc.value, loader, epoch, steps + 1,
                                                x.shape[0], cfg)) from None
        if scheduler is not None:
            scheduler.step()
        total += loss
        steps += 1
        samples += x.shape[0]
        if steps == 1 and epoch == 0:  # something to read before a slow first epoch ends
            log(f"first step: loss {loss:.4f} ({time.perf_counter() - t0:.1f}s)")
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / steps:.4f}",
                            samples_s=f"{samples / (time.perf_counter() - t0):.1f}")
        if cfg.steps and steps >= cfg.steps:
            break
    return total, steps, samples


class NonFiniteLoss(FloatingPointError):
    """A training step whose loss is NaN or inf (raised before its backward pass)."""

    def __init__(self, value: float):
        super().__init__(f"loss {value}")
        self.value = value


class _Recording(torch.utils.data.Sampler):
    """A sampler that keeps the indices it gave (the loader reads them in order in this
    process: the last ``n`` are the batch being trained)."""

    def __init__(self, inner):
        self.inner, self.given = inner, []

    def __iter__(self):
        self.given = []
        for k in self.inner:
            self.given.append(k)
            yield k

    def __len__(self) -> int:
        return len(self.inner)


def _non_finite_message(value: float, loader, epoch: int, step: int, n: int,
                        cfg: TrainConfig) -> str:
    data = loader.dataset
    given = getattr(loader.sampler, "given", [])[-n:]
    names = list(dict.fromkeys(data.names[k % len(data.names)] for k in given))
    root = getattr(data, "root", "")
    return (f"{root}: the loss is {value} at epoch {epoch + 1}, step {step}; the batch held "
            f"{', '.join(names) or 'unknown files'}: look for NaN/inf or extreme values in them "
            f"(or lower --lr {cfg.lr:g}{', or drop --amp' if cfg.amp else ''}); training stopped "
            "(the last epoch's last.pt is kept)")


def lr_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int, start_epoch: int = 0
                 ) -> "torch.optim.lr_scheduler.LambdaLR | None":
    """Per-step learning-rate decay: ``poly`` is nnU-Net's ``lr * (1 - step / total)^0.9``
    over ``epochs * steps_per_epoch`` steps (Isensee et al., Nature Methods 2021); a resumed
    run continues the curve at ``start_epoch``. ``constant``: ``None``."""
    if cfg.lr_schedule == "constant":
        return None
    total = max(cfg.epochs * steps_per_epoch, 1)
    done = start_epoch * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: max(1 - min(done + k, total) / total, 0.0) ** 0.9)


def train_step(runner, criterion, optimizer, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
               scaler: "torch.amp.GradScaler | None" = None,
               fmt: torch.memory_format | None = None) -> float:
    """One optimizer step under autocast when ``cfg.amp``; fp16 scales the loss with
    ``scaler`` (torch.amp's recipe: small fp16 gradients would underflow to zero), bf16 has
    float32's range and needs none. ``fmt``: the input's memory format. Returns the loss."""
    amp = amp_dtype(cfg.amp)
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
    with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
        out = runner(x)
    loss = criterion(_float(out), y)
    if not bool(torch.isfinite(loss.detach())):
        raise NonFiniteLoss(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped when a gradient overflowed; the scale then drops
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.item()


def grad_scaler(cfg: TrainConfig, device: torch.device) -> "torch.amp.GradScaler | None":
    """A GradScaler for ``--amp fp16``, None otherwise."""
    return torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None


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
        # every key of every row: validated epochs add per-class Dice columns
        fields = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(fh, fieldnames=fields)
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
        x_val = [h["epoch"] for h in validated]
        ax[1].plot(x_val, [h["val_dice"] for h in validated], marker=".", label="Dice")
        ax[1].plot(x_val, [h["val_iou"] for h in validated], marker=".", label="IoU")
        for key in sorted(k for k in (validated or history)[-1] if k.startswith("dice_")):
            ax[1].plot(x_val, [h.get(key) for h in validated], marker=".", lw=0.8,
                       label=f"Dice class {key[5:]}")
        ax[1].set(title="validation", xlabel="epoch")
        ax[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=100)
        plt.close(fig)
    which = "last epoch's model (no best.pt)"
    if (out / "best.pt").exists():  # the model training keeps, not the last epoch's
        from ..checkpoint import load_checkpoint
        model = load_checkpoint(out / "best.pt")
        which = f"best model, epoch {read_checkpoint(out / 'best.pt')['extra'].get('epoch')}"
    _plot_predictions(plt, model, val_set, device, out / "predictions.png", which)


# truth and prediction in two hue families (green/cyan vs magenta/orange), class by class,
# distinguishable on a gray image and for the common red-green colour blindness by style too
_TRUTH_COLOURS = ("#00e000", "#00c8ff", "#f0f000")
_PRED_COLOURS = ("#ff00ff", "#ff8000", "#ff3030")


def _plot_predictions(plt, model, data, device, path: Path, which: str) -> None:
    """Up to three validation cases (the middle slice through the foreground of a volume):
    truth contours solid in green/cyan, predictions dashed contours over a translucent fill in
    magenta/orange (one shade per class), with a legend."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from ..label_rule import label_map
    fig, axes = plt.subplots(1, min(3, len(data.names)), figsize=(12, 4.4), squeeze=False)
    fig.suptitle(f"predictions of the {which} on validation images", fontsize=9)
    drawn: dict[str, Line2D] = {}
    for k, ax in enumerate(axes[0]):
        image, label = case_of(data, k)
        pred = label_map(infer(model, torch.from_numpy(image)[None], getattr(data, "patch", None),
                               device))[0, 0].numpy()
        label = label.astype(int)
        if label.ndim == 3:  # the slice along the last axis with the most foreground
            z = int((label > 0).sum((0, 1)).argmax())
            image, label, pred = image[..., z], label[..., z], pred[..., z]
        ax.imshow(image[0], cmap="gray")
        if min(label.shape) >= 2:  # a contour needs 2 x 2 pixels
            for c in range(1, max(int(label.max()), int(pred.max()), 1) + 1):
                for m, role, colours, style, width in (
                        (label, "truth", _TRUTH_COLOURS, "solid", 1.4),
                        (pred, "prediction", _PRED_COLOURS, "dashed", 1.1)):
                    colour = colours[(c - 1) % len(colours)]
                    if (m == c).any():
                        if role == "prediction":  # filled too: a prediction everywhere has
                            ax.imshow(np.ma.masked_where(m != c, m), alpha=0.3,  # no contour
                                      cmap=ListedColormap([colour]), interpolation="nearest")
                        ax.contour(m == c, levels=[0.5], colors=colour, linewidths=width,
                                   linestyles=style)
                        name = f"{role}{f' class {c}' if data_classes(data) > 1 else ''}"
                        drawn.setdefault(name, Line2D([], [], color=colour, lw=width + 0.6,
                                                      ls=style, label=name))
        ax.set_title(data.names[k][:30], fontsize=8)
        ax.axis("off")
    if drawn:
        fig.legend(handles=list(drawn.values()), loc="lower center", ncol=min(len(drawn), 6),
                   fontsize=8, frameon=True, facecolor="#303030", labelcolor="white")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def data_classes(data: Any) -> int:
    """The classes of a folder's targets (one-hot channels of its masks, or its label maps)."""
    if hasattr(data, "classes"):
        return data.classes
    return data.masks[0].shape[0] if data.masks else 1
