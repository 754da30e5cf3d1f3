"""Commands that compile a spec or load a checkpoint: build (and --time), prune, export,
eject."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from ..errors import Diagnostic, SpecError
from .common import (add_recompute_args, check_head, device, load_ir, parse_shape,
                     recompute_args)

__all__ = ["add_commands"]


def cmd_build(args: argparse.Namespace) -> int:
    from ..compile import compile_ir
    from ..compile.summary import summarize
    from ..graph.estimate import check_budget
    ir = load_ir(args)
    shape = parse_shape(args.input) if args.input else None
    check_budget(ir, input_shape=shape)  # before allocating weights or the input
    if args.time and not shape:
        raise SpecError([Diagnostic("bad-option", "--time needs --input, e.g. "
                                    "--input 2x1x256x256")])
    model = compile_ir(ir, seed=args.seed, recompute=recompute_args(args))
    if args.prune:
        model = model.prune(check_head(ir, args.prune))
    if args.save:
        from ..checkpoint import save_checkpoint
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
        print(model.train_code if model.recompute else model.code)
    return 0


def _time_build(model, shape: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """``build --time``: forward and training step with the chosen speed switches."""
    from ..compile.timing import measure
    return measure(model, shape, reps=args.reps, device=device(args.device),
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
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..compile.summary import count_params
    model = load_checkpoint(args.checkpoint)
    small = model.prune(check_head(model.ir, args.head))
    save_checkpoint(small, args.output)
    full, kept = count_params(model), count_params(small)
    print(f"wrote {args.output}: {small.ir.name} pruned to {args.head}, {kept:,} of {full:,} "
          f"parameters ({100 * kept / full:.1f}%)")
    return 0


def _model_from(args: argparse.Namespace):
    """A checkpoint (``.pt``/``.pth``/``.ckpt``) or a spec built with ``--seed``."""
    from ..compile import compile_ir
    if args.spec.endswith((".pt", ".pth", ".ckpt")):
        from ..checkpoint import load_checkpoint
        model = load_checkpoint(args.spec)
    else:
        model = compile_ir(load_ir(args), seed=args.seed)
    return model.prune(check_head(model.ir, args.prune)) if args.prune else model


def cmd_export(args: argparse.Namespace) -> int:
    if args.peer:  # the weights back to the peer's class (skipgraph/commands/peer.py)
        from .peer import export_to_peer
        return export_to_peer(args)
    from ..export import check_onnx, export_onnx, export_program, onnx_files
    model = _model_from(args)
    if not (args.onnx or args.torch_export):
        raise SpecError([Diagnostic("missing-key", "export needs --onnx OUT.onnx and/or "
                                    "--torch-export OUT.pt2")])
    if args.onnx:
        names = export_onnx(model, args.onnx, all_heads=args.all_heads)
        check_onnx(args.onnx)
        stride = model.contract.stride
        shown = stride if isinstance(stride, int) else "x".join(map(str, stride))
        sizes = (f"from 2 x {shown} px on" if not isinstance(stride, int) else
                 f"from {2 * stride} px on") if model.contract.pad else f"multiples of {shown}"
        files = onnx_files(args.onnx)
        weights = (f"; weights in {', '.join(files[1:])} (over protobuf's 2 GiB limit for one "
                   f"file: keep the files together)") if len(files) > 1 else ""
        print(f"wrote {args.onnx} (outputs: {', '.join(names)}; dynamic batch and spatial "
              f"sizes, {sizes}{weights})")
    if args.torch_export:
        export_program(model, args.torch_export, all_heads=args.all_heads)
        print(f"wrote {args.torch_export}")
    return 0


def cmd_eject(args: argparse.Namespace) -> int:
    from ..export import eject_source
    model = _model_from(args)
    source = eject_source(model)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(source)
    print(f"wrote {args.output} ({len(source.splitlines())} lines; no skipgraph import)")
    return 0



def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    b = add("build", cmd_build, "compile a spec and print a per-node table")
    b.add_argument("--input", help="input shape, e.g. 1x1x256x256 (adds shapes and FLOPs)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--code", action="store_true", help="print the generated forward code")
    b.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    b.add_argument("--prune", metavar="HEAD", help="keep only what head HEAD needs")
    b.add_argument("--save", metavar="CKPT", help="write a checkpoint of the built module")
    add_recompute_args(b)
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
    e.add_argument("--peer", metavar="nnunet|monai|smp", help="write a checkpoint's "
                   "weights for its peer's class (with -o)")
    e.add_argument("-o", "--output", metavar="OUT", help="with --peer: .pt/.pth/.safetensors "
                   "state_dict, or a folder (an nnU-Net model folder)")
    ej = add("eject", cmd_eject, "write a standalone PyTorch file of the architecture")
    ej.add_argument("-o", "--output", required=True)
    for sub_parser in (e, ej):
        sub_parser.add_argument("--prune", metavar="HEAD")
        sub_parser.add_argument("--seed", type=int, default=0)
