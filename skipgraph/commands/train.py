"""Commands that train and measure: train, evaluate, compare."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from .common import (add_recompute_args, check_head, device, parse_shape, positive_int,
                     recompute_args)

__all__ = ["add_commands"]


def _train_config(args: argparse.Namespace):
    from ..spec import parse_overrides
    from ..train import TrainConfig
    return TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, crop=args.crop,
                       patch=tuple(parse_shape(args.patch, "--patch")) if args.patch else None,
                       binary=args.binary,
                       samples_per_image=args.samples_per_image, steps=args.steps,
                       seed=getattr(args, "seed", 0), device=device(args.device), amp=args.amp,
                       channels_last=args.channels_last, compile=args.compile,
                       recompute=recompute_args(args), val_every=args.val_every,
                       time_limit=60 * args.minutes if args.minutes else None,
                       flip_axes=args.flip_axes, lr_schedule=args.lr_schedule,
                       read=_read_options(args), overrides=parse_overrides(args.set))


def _read_options(args: argparse.Namespace, recorded: dict | None = None):
    """How the data folder is read: ``--binary``, ``--ignore-index``, ``--palette``,
    ``--drop-alpha``, ``--replace-nonfinite`` (ValueError for a bad palette: exit 2), over
    ``recorded``, the options a checkpoint's training run read its data with (``evaluate``
    reads the data as the model was trained; an option given on the command line wins)."""
    from ..train.data import ReadOptions
    from ..train.labels import parse_palette
    base = ReadOptions(**{k: v for k, v in (recorded or {}).items()
                          if k in ReadOptions.__dataclass_fields__})
    palette, colour = parse_palette(args.palette) if args.palette else \
        (base.palette, base.colour_palette)
    return ReadOptions(binary=args.binary or base.binary,
                       ignore_index=base.ignore_index if args.ignore_index is None
                       else args.ignore_index, palette=palette, colour_palette=colour,
                       drop_alpha=args.drop_alpha or base.drop_alpha,
                       replace_nonfinite=args.replace_nonfinite or base.replace_nonfinite)


_READ_FLAGS = {"binary": "--binary", "ignore_index": "--ignore-index", "palette": "--palette",
               "drop_alpha": "--drop-alpha", "replace_nonfinite": "--replace-nonfinite"}


def _recorded_read(path: str) -> dict:
    """The data-reading options of the run that wrote checkpoint ``path`` (``read`` in its
    extra; older runs: ``config.read``), {} for a checkpoint not written by ``train``."""
    from ..checkpoint import read_checkpoint
    extra = read_checkpoint(path)["extra"]
    return extra.get("read") or (extra.get("config") or {}).get("read") or {}


def _add_read_args(p: argparse.ArgumentParser) -> None:
    """The options of how masks and images are read (train, evaluate, compare alike)."""
    p.add_argument("--binary", action="store_true",
                   help="foreground = any mask value > 0 (instance-coloured masks)")
    p.add_argument("--ignore-index", type=int, metavar="VALUE", help="mask value of unlabelled "
                   "pixels, left out of every loss term and metric (e.g. 255; default: "
                   "dataset.json's labels.ignore when the folder has one)")
    p.add_argument("--palette", metavar="JSON|FILE", help="map mask colours or gray values to "
                   "classes, e.g. '{\"#000000\": 0, \"#00ff00\": 1}' (colour masks need one)")
    p.add_argument("--drop-alpha", action="store_true", help="drop the alpha channel of RGBA "
                   "and gray+alpha images (default: every channel is an input channel)")
    p.add_argument("--replace-nonfinite", action="store_true", help="replace NaN/inf image "
                   "values by the channel's mean (default: such a file is an error)")


def _axes(text: str | None) -> tuple[int, ...] | None:
    """``--flip-axes``: ``all`` (None), ``none`` or comma-separated axes such as ``0,2``."""
    if text is None or text == "all":
        return None
    if text == "none":
        return ()
    try:
        return tuple(int(a) for a in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--flip-axes {text!r}: expected all, none or axes such as 0,2") from None


def cmd_train(args: argparse.Namespace) -> int:
    from ..train import train
    from ..zoo import resolve_spec_path
    best = train(resolve_spec_path(args.spec), args.data, args.out, _train_config(args),
                 resume=args.resume, overwrite=args.overwrite)
    if "epoch" not in best:
        print(f"no epoch was validated; checkpoints in {args.out}")
        return 0
    line = (f"best: epoch {best['epoch']}, val Dice {best['dice']:.4f}, IoU {best['iou']:.4f}"
            f"{' (collapsed: one class everywhere)' if best.get('collapsed') else ''}; "
            f"checkpoints in {args.out}\n")
    sys.stdout.write(line)  # one write: under torchrun the ranks share one stdout
    sys.stdout.flush()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint, read_checkpoint
    from ..train import evaluate_model, pruning_levels
    from ..train.windows import evaluate_folder, format_classes
    model = load_checkpoint(args.checkpoint)
    if args.head:
        model = model.prune(check_head(model.ir, args.head))
    window = (parse_shape(args.patch, "--patch") if args.patch else
              read_checkpoint(args.checkpoint)["extra"].get("window"))  # as in validation
    recorded = _recorded_read(args.checkpoint)
    used = [flag for key, flag in _READ_FLAGS.items()
            if recorded.get(key) not in (None, False, {})]
    if used:
        print(f"reading {args.data} as the run was trained: {', '.join(used)} (from "
              f"{args.checkpoint})", file=sys.stderr)
    data, result = evaluate_folder(model, args.data, args.split, device(args.device),
                                   patch=window, read=_read_options(args, recorded))
    for note in dict.fromkeys(data.notes):
        print(note, file=sys.stderr)
    if result is not None:  # label maps and volumes: per class
        print(json.dumps(result, indent=1) if args.json else format_classes(result))
        return 0
    result = evaluate_model(model, data, device(args.device), objects=args.object_f1)
    if len([h for h in model.heads if model.ir.heads[h].pixelwise]) > 1 and not args.head:
        result["pruning_levels"] = pruning_levels(model, data, device(args.device))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    def f1(r: dict) -> str:
        return f"  object F1 {r['object_f1']:.4f}" if "object_f1" in r else ""
    for row in result["images"]:
        print(f"{row['image']}: Dice {row['dice']:.4f}  IoU {row['iou']:.4f}{f1(row)}")
    m = result["mean"]
    print(f"mean over {len(result['images'])} images: Dice {m['dice']:.4f}  IoU {m['iou']:.4f}"
          f"{f1(m)}  {m['ms_per_image']:.0f} ms/image")
    if m["collapsed"]:
        print(f"warning: the model predicts {m['predicted']} everywhere", file=sys.stderr)
    for lv in result.get("pruning_levels", []):
        print(f"pruned to {lv['head']}: {lv['params']:,} params, {lv['ms_per_image']:.0f} "
              f"ms/image, Dice {lv['dice']:.4f}, IoU {lv['iou']:.4f}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..train.compare import compare, format_table, table_paths
    from ..zoo import resolve_spec_path  # every name checked before the first training
    rows = compare([resolve_spec_path(s) for s in args.specs], args.data, args.out,
                   _train_config(args), seeds=args.seeds, overwrite=args.overwrite)
    print(format_table(rows))
    print("written to " + ", ".join(str(p) for p in table_paths(args.out))
          + f"; the runs in {Path(args.out) / '<spec>' / 'seed<N>'}")
    return 0


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with images/ + masks/, or imagesTr/ + "
                   "labelsTr/ (NIfTI volumes) [, split.json]")
    p.add_argument("--epochs", type=positive_int, default=20, help="training epochs")
    p.add_argument("--batch", type=positive_int, default=8, help="crops or patches per "
                   "optimizer step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--crop", type=positive_int, default=128, help="2D images: side of the "
                   "training crops (px); smaller images are zero-padded to it")
    p.add_argument("--patch", help="volumes: training patch size, e.g. 32x48x32 (default: the "
                   "largest case); cases smaller than it are padded")
    _add_read_args(p)
    p.add_argument("--samples-per-image", type=positive_int, default=4, help="random crops "
                   "(patches) drawn from each training image (volume) per epoch; steps per "
                   "epoch = images x this / batch")
    p.add_argument("--steps", type=positive_int, help="at most this many optimizer steps per "
                   "epoch (default: every batch of the epoch)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (auto: cuda if present)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision (fp16 with a "
                   "gradient scaler)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    add_recompute_args(p)
    p.add_argument("--flip-axes", type=_axes, metavar="AXES", help="spatial axes mirrored in "
                   "augmentation: all (default), none, or e.g. 0 or 0,2 (leave out an axis whose "
                   "two sides are different labels)")
    p.add_argument("--lr-schedule", choices=["constant", "poly"], default="constant",
                   help="poly: nnU-Net's lr * (1 - step / steps)^0.9 over --epochs x --steps")
    p.add_argument("--minutes", type=float, help="stop after the epoch that passes this time")
    p.add_argument("--overwrite", action="store_true", help="replace the run(s) a --out "
                   "folder already holds (best.pt, last.pt; compare's tables); without it "
                   "such a folder is an error")
    p.add_argument("--val-every", type=positive_int, default=1, metavar="K",
                   help="validate every K epochs and after the last (validation costs about "
                   "an epoch of training on a CPU)")


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    t = add("train", cmd_train, "train a spec on a folder of images and masks", defaults=True)
    _add_train_args(t)
    t.add_argument("--out", default="runs/train", help="run folder: best.pt, last.pt, "
                   "log.csv/json, curves.png, predictions.png")
    t.add_argument("--seed", type=int, default=0, help="seed of the weights, crops and "
                   "augmentation")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (the same "
                   "spec and --set values; an error when there is no last.pt)")
    ev = add("evaluate", cmd_evaluate, "Dice, IoU, object F1 (and pruning levels)", spec=False,
             defaults=True)
    ev.add_argument("checkpoint")
    ev.add_argument("--data", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--head", help="evaluate the model pruned to this head")
    ev.add_argument("--no-object-f1", dest="object_f1", action="store_false",
                    help="skip object F1 (for masks where connected components are not objects, "
                    "such as one connected membrane)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--patch", help="volumes: sliding-window size (default: the window of the "
                    "training run's validation, else the largest case)")
    _add_read_args(ev)
    ev.add_argument("--json", action="store_true")
    c = add("compare", cmd_compare, "train specs the same way and tabulate them", spec=False,
            defaults=True)
    c.add_argument("specs", nargs="+")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    _add_train_args(c)
    c.add_argument("--seeds", type=int, nargs="+", default=[0], help="one training per spec "
                   "and seed; the table gives mean +- sd over seeds")
    c.add_argument("--out", default="runs/compare", help="folder of the runs and compare.md/"
                   ".csv/.json")
