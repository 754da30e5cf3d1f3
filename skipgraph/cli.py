"""The ``skipgraph`` command. Only this module prints; errors exit 2 with compiler-style text."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Callable, Sequence

from .errors import Diagnostic, SpecError

__all__ = ["main"]


def _load_ir(args: argparse.Namespace):
    from .graph import build_ir
    from .spec import load_spec
    from .zoo import resolve_spec_path
    return build_ir(load_spec(resolve_spec_path(args.spec), args.set))


def cmd_check(args: argparse.Namespace) -> int:
    ir = _load_ir(args)
    print(f"{args.spec}: ok ({ir.name}: {ir.graph.number_of_nodes() - 1} nodes, "
          f"{ir.graph.number_of_edges()} edges, {len(ir.heads)} head(s))")
    return 0


def cmd_expand(args: argparse.Namespace) -> int:
    ir = _load_ir(args)
    print(json.dumps(ir.to_dict(), indent=1) if args.json else str(ir))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .compile import compile_ir
    from .compile.summary import summarize
    from .graph.estimate import check_budget
    ir = _load_ir(args)
    shape = _parse_shape(args.input) if args.input else None
    check_budget(ir, input_shape=shape)  # before allocating weights or the input
    if args.time and not shape:
        raise SpecError([Diagnostic("bad-option", "--time needs --input, e.g. "
                                    "--input 2x1x256x256")])
    model = compile_ir(ir, seed=args.seed, checkpoint=args.checkpoint)
    if args.prune:
        model = model.prune(_check_head(ir, args.prune))
    if args.save:
        from .checkpoint import save_checkpoint
        save_checkpoint(model, args.save)
        print(f"wrote {args.save}", file=sys.stderr)
    summary = summarize(model, shape)
    timing = _time_build(model, shape, args) if args.time else None
    if args.json:
        print(json.dumps(summary.to_dict() | ({"timing": timing} if timing else {})))
    else:
        print(summary.format_table())
        if timing:
            print(_format_timing(timing))
    if args.code:
        print(model.train_code if args.checkpoint else model.code)
    return 0


def _time_build(model, shape: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """``build --time``: forward and training step with the chosen speed switches."""
    from .compile.timing import measure
    return measure(model, shape, reps=args.reps, device=_device(args.device),
                   channels_last=args.channels_last, amp=args.amp, compile_mode=args.compile,
                   fold_bn=args.fold_bn)


def _format_timing(t: dict[str, Any]) -> str:
    switches = ", ".join(f"{k}={v}" for k, v in t["switches"].items()) or "none"
    lines = [f"timing on {t['device']}, input {'x'.join(map(str, t['input']))}, switches: "
             f"{switches} (median of {t['reps']})"]
    for task in ("forward", "train step"):
        e = t[task]
        line = (f"  {task + ':':12} {1e3 * e['seconds']:10.2f} ms  "
                f"{e['flops'] / 1e9:10.2f} GFLOP  {1e3 * e['tflops']:9.1f} GFLOP/s")
        if "peak_bytes" in e:
            line += f"  peak {e['peak_bytes'] / 2**20:.0f} MiB"
        lines.append(line)
    return "\n".join(lines)


def cmd_prune(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .compile.summary import count_params
    model = load_checkpoint(args.checkpoint)
    small = model.prune(_check_head(model.ir, args.head))
    save_checkpoint(small, args.output)
    full, kept = count_params(model), count_params(small)
    print(f"wrote {args.output}: {small.ir.name} pruned to {args.head}, {kept:,} of {full:,} "
          f"parameters ({100 * kept / full:.1f}%)")
    return 0


def _check_head(ir, head: str) -> str:
    from .errors import Diagnostic, did_you_mean
    if head not in ir.heads or ir.heads[head].type != "seg":
        raise SpecError([Diagnostic("unknown-node", f"`{head}` is not a segmentation head of "
                                    f"{ir.name}", hint=did_you_mean(head, ir.heads))])
    return head


def _model_from(args: argparse.Namespace):
    """A checkpoint (``.pt``/``.pth``/``.ckpt``) or a spec built with ``--seed``."""
    from .compile import compile_ir
    if args.spec.endswith((".pt", ".pth", ".ckpt")):
        from .checkpoint import load_checkpoint
        model = load_checkpoint(args.spec)
    else:
        model = compile_ir(_load_ir(args), seed=args.seed)
    return model.prune(_check_head(model.ir, args.prune)) if args.prune else model


def cmd_export(args: argparse.Namespace) -> int:
    from .export import check_onnx, export_onnx, export_program
    model = _model_from(args)
    if not (args.onnx or args.torch_export):
        raise SpecError([Diagnostic("missing-key", "export needs --onnx OUT.onnx and/or "
                                    "--torch-export OUT.pt2")])
    if args.onnx:
        names = export_onnx(model, args.onnx, all_heads=args.all_heads)
        check_onnx(args.onnx)
        print(f"wrote {args.onnx} (outputs: {', '.join(names)}; dynamic batch and spatial "
              f"sizes, multiples of {2 ** model.ir.max_level})")
    if args.torch_export:
        export_program(model, args.torch_export, all_heads=args.all_heads)
        print(f"wrote {args.torch_export}")
    return 0


def cmd_eject(args: argparse.Namespace) -> int:
    from .export import eject_source
    model = _model_from(args)
    source = eject_source(model)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(source)
    print(f"wrote {args.output} ({len(source.splitlines())} lines; no skipgraph import)")
    return 0


def _train_config(args: argparse.Namespace):
    from .spec import parse_overrides
    from .train import TrainConfig
    return TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, crop=args.crop,
                       patch=tuple(_parse_shape(args.patch)) if args.patch else None,
                       binary=args.binary,
                       samples_per_image=args.samples_per_image, steps=args.steps,
                       seed=getattr(args, "seed", 0), device=_device(args.device), amp=args.amp,
                       channels_last=args.channels_last, compile=args.compile,
                       checkpoint=tuple(args.checkpoint), val_every=args.val_every,
                       time_limit=60 * args.minutes if args.minutes else None,
                       overrides=parse_overrides(args.set))


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train
    from .zoo import resolve_spec_path
    best = train(resolve_spec_path(args.spec), args.data, args.out, _train_config(args),
                 resume=args.resume)
    print(f"best: epoch {best.get('epoch')}, val Dice {best['dice']:.4f}, IoU "
          f"{best.get('iou', 0):.4f}; checkpoints in {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, read_checkpoint
    from .train import evaluate_model, pruning_levels
    from .train.windows import evaluate_folder, format_classes
    model = load_checkpoint(args.checkpoint)
    if args.head:
        model = model.prune(_check_head(model.ir, args.head))
    patch = (_parse_shape(args.patch) if args.patch else
             read_checkpoint(args.checkpoint)["extra"].get("window"))  # as in validation
    data, result = evaluate_folder(model, args.data, args.split, _device(args.device),
                                   patch=patch, binary=args.binary)
    if result is not None:  # label maps and volumes: per class
        print(json.dumps(result, indent=1) if args.json else format_classes(result))
        return 0
    result = evaluate_model(model, data, _device(args.device), objects=True)
    if len([h for h in model.heads if model.ir.heads[h].type == "seg"]) > 1 and not args.head:
        result["pruning_levels"] = pruning_levels(model, data, _device(args.device))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for row in result["images"]:
        print(f"{row['image']}: Dice {row['dice']:.4f}  IoU {row['iou']:.4f}  "
              f"object F1 {row['object_f1']:.4f}")
    m = result["mean"]
    print(f"mean over {len(result['images'])} images: Dice {m['dice']:.4f}  IoU {m['iou']:.4f}"
          f"  object F1 {m['object_f1']:.4f}")
    for lv in result.get("pruning_levels", []):
        print(f"pruned to {lv['head']}: {lv['params']:,} params, {lv['ms_per_image']:.0f} "
              f"ms/image, Dice {lv['dice']:.4f}, IoU {lv['iou']:.4f}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .train.compare import compare, format_table
    from .zoo import resolve_spec_path
    rows = compare([resolve_spec_path(s) for s in args.specs], args.data, args.out,
                   _train_config(args), seeds=args.seeds)
    print(format_table(rows))
    print(f"written to {args.out}/compare.md and compare.csv")
    return 0


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with images/, masks/ [, split.json]")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--crop", type=int, default=128, help="2D images: training crop size")
    p.add_argument("--patch", help="volumes: patch (and sliding window) size, e.g. 40x56x40 "
                   "(default: the largest case)")
    p.add_argument("--binary", action="store_true",
                   help="foreground = any mask value > 0 (instance-coloured masks)")
    p.add_argument("--samples-per-image", type=int, default=4)
    p.add_argument("--steps", type=int, help="at most this many steps per epoch")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (auto: cuda if present)")
    p.add_argument("--amp", choices=["bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--checkpoint", action="append", default=[], metavar="FAMILY|LOOP",
                   help="activation checkpointing for a node family or a loop (less memory)")
    p.add_argument("--minutes", type=float, help="stop after the epoch that passes this time")
    p.add_argument("--val-every", type=_positive_int, default=1, metavar="K",
                   help="validate every K epochs and after the last (validation costs about "
                   "an epoch of training on a CPU)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number >= 1")
    return value


def _device(name: str) -> str:
    """``auto`` (cuda when present) or a device this machine has; else a bad-option error."""
    import torch  # only the commands that run a model get here
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        problem = "is not a device (use cpu, cuda or cuda:N)"
    elif device.type == "cuda" and not torch.cuda.is_available():
        problem = "needs a CUDA device and none is available here"
    elif device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        problem = f"is not one of the {torch.cuda.device_count()} CUDA device(s) here"
    else:
        return name
    raise SpecError([Diagnostic("bad-option", f"--device {name} {problem}")])


def cmd_zoo(args: argparse.Namespace) -> int:
    from .zoo import describe, zoo_specs
    specs = zoo_specs()
    width = max((len(n) for n in specs), default=0)
    for name, path in specs.items():
        print(f"{name.ljust(width)}  {describe(path)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .spec.json_schema import spec_json_schema
    print(json.dumps(spec_json_schema(), indent=1))
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from .blocks import list_blocks
    for b in list_blocks(args.pattern):
        print(f"{b.name}: {b.description}  ({b.origin})")
    return 0


def _parse_shape(text: str) -> list[int]:
    from .errors import Diagnostic
    try:
        dims = [int(p) for p in text.lower().split("x")]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        raise SpecError([Diagnostic("bad-input-size", f"--input `{text}` is not a shape like "
                                    "1x1x256x256")])
    return dims


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="spec file, or a zoo name such as unet_pp")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param (repeatable)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skipgraph", description="U-Net-family architectures "
                                     "as graph specs: validate, expand, draw and compile them.")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a module that registers user blocks")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
            spec: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        if spec:
            _add_spec_args(p)
        p.set_defaults(fn=fn)
        return p

    add("check", cmd_check, "validate a spec (exit 0 if valid, 2 if not)")
    add("expand", cmd_expand, "print the explicit nodes and edges").add_argument(
        "--json", action="store_true")
    b = add("build", cmd_build, "compile a spec and print a per-node table")
    b.add_argument("--input", help="input shape, e.g. 1x1x256x256 (adds shapes and FLOPs)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--code", action="store_true", help="print the generated forward code")
    b.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    b.add_argument("--prune", metavar="HEAD", help="keep only what head HEAD needs")
    b.add_argument("--save", metavar="CKPT", help="write a checkpoint of the built module")
    b.add_argument("--checkpoint", action="append", default=[], metavar="FAMILY|LOOP",
                   help="activation checkpointing for a node family or a loop (repeatable)")
    sw = b.add_argument_group("timing", "time a forward pass and a training step (--input "
                              "gives the shape) with speed switches")
    sw.add_argument("--time", action="store_true")
    sw.add_argument("--reps", type=int, default=10, help="timed calls (median)")
    sw.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    sw.add_argument("--channels-last", action="store_true")
    sw.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the "
                    "convolutions for the forward pass (inference)")
    sw.add_argument("--amp", choices=["bf16", "fp16"], help="autocast")
    sw.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile mode (reduce-overhead: CUDA graphs on a GPU)")
    p = add("prune", cmd_prune, "write a checkpoint cut down to one head's ancestors", spec=False)
    p.add_argument("checkpoint")
    p.add_argument("--head", required=True)
    p.add_argument("-o", "--output", required=True)
    e = add("export", cmd_export, "export to ONNX and/or torch.export (.pt2)")
    e.add_argument("--onnx", metavar="OUT.onnx")
    e.add_argument("--torch-export", metavar="OUT.pt2")
    e.add_argument("--all-heads", action="store_true", help="export every head, not the "
                   "eval output")
    ej = add("eject", cmd_eject, "write a standalone PyTorch file of the architecture")
    ej.add_argument("-o", "--output", required=True)
    for sub_parser in (e, ej):
        sub_parser.add_argument("--prune", metavar="HEAD")
        sub_parser.add_argument("--seed", type=int, default=0)
    t = add("train", cmd_train, "train a spec on a folder of images and masks")
    _add_train_args(t)
    t.add_argument("--out", default="runs/train")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ev = add("evaluate", cmd_evaluate, "Dice, IoU, object F1 (and pruning levels)", spec=False)
    ev.add_argument("checkpoint")
    ev.add_argument("--data", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--head", help="evaluate the model pruned to this head")
    ev.add_argument("--ensemble", action="store_true", help="the spec's ensemble output "
                    "(the default when the spec says ensemble)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--patch", help="sliding-window size for volumes (default: the window "
                    "of the training run's validation, else the largest case)")
    ev.add_argument("--binary", action="store_true", help="foreground = any mask value > 0")
    ev.add_argument("--json", action="store_true")
    c = add("compare", cmd_compare, "train specs the same way and tabulate them", spec=False)
    c.add_argument("specs", nargs="+")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    _add_train_args(c)
    c.add_argument("--seeds", type=int, nargs="+", default=[0])
    c.add_argument("--out", default="runs/compare")
    add("zoo", cmd_zoo, "list the shipped specs", spec=False)
    add("schema", cmd_schema, "print the JSON Schema of the spec format", spec=False)
    add("blocks", cmd_blocks, "list registered block types", spec=False).add_argument(
        "pattern", nargs="?", default="*")
    _add_render_commands(sub, add)
    return parser


def _add_render_commands(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    try:
        from .render.cli import add_commands
    except ImportError:  # the render stage is optional at import time
        return
    add_commands(add)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        for module in args.imports:
            importlib.import_module(module)
        return args.fn(args)
    except SpecError as exc:
        print(exc.format(with_source=True), file=sys.stderr)
        return 2
    except (ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # DataError, InputShapeError: messages name the file or shape
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
