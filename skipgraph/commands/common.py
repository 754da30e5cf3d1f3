"""Helpers every command shares: reading a spec, shapes, devices, head names."""
from __future__ import annotations

import argparse
import sys

from ..errors import Diagnostic, SpecError, did_you_mean

__all__ = ["load_ir", "add_spec_args", "check_head", "parse_shape", "device", "positive_int",
           "add_recompute_args", "recompute_args", "check_output_path", "OUTPUT_OPTIONS"]

# the options that name something a command writes: dest -> a folder (True) or a file (False)
OUTPUT_OPTIONS = {"out": True, "output": False, "save": False}


def load_ir(args: argparse.Namespace):
    from ..graph import build_ir
    from ..spec import load_spec
    return build_ir(load_spec(args.spec, args.set))  # a path or a spec name


def add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="spec file, or a zoo name such as unet_pp")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param (repeatable)")


def check_head(ir, head: str) -> str:
    """``head`` if it is a pixel-wise (segmentation) head of ``ir``, else an error."""
    if head not in ir.heads or not ir.heads[head].pixelwise:
        raise SpecError([Diagnostic("unknown-node", f"`{head}` is not a segmentation head of "
                                    f"{ir.name}", hint=did_you_mean(head, ir.heads))])
    return head


def parse_shape(text: str, option: str = "--input") -> list[int]:
    try:
        dims = [int(p) for p in text.lower().split("x")]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        example = "1x1x256x256" if option == "--input" else "32x48x32"
        raise SpecError([Diagnostic("bad-input-size", f"{option} `{text}` is not a shape like "
                                    f"{example}")])
    return dims


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number >= 1")
    return value


def device(name: str) -> str:
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



def add_recompute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recompute", action="append", default=[], metavar="FAMILY|LOOP",
                   help="recompute a node family or a loop in the backward pass (activation "
                   "checkpointing: less memory; repeatable)")
    p.add_argument("--checkpoint", dest="recompute_old", action="append", default=[],
                   metavar="FAMILY|LOOP", help="deprecated name of --recompute")


def recompute_args(args: argparse.Namespace) -> tuple[str, ...]:
    """``--recompute`` names, and the deprecated ``--checkpoint`` ones with a warning line."""
    if args.recompute_old:
        print("warning: --checkpoint is deprecated (it is not about checkpoint files); use "
              "--recompute", file=sys.stderr)
    return tuple(args.recompute) + tuple(args.recompute_old)


def check_output_path(path: str, option: str, folder: bool) -> None:
    """Refuse, before any work, an output path that cannot be written: a folder (``--out``)
    that is an existing file, a file (``-o``) that is an existing folder, or one below a file.
    Raises a ``bad-option`` SpecError naming the option."""
    import os
    from pathlib import Path
    target = Path(path)
    problem = None
    if folder and target.exists() and not target.is_dir():
        problem = f"{path} is a file, not a folder"
        hint = f"give {option} a folder (it is created if missing)"
    elif not folder and target.is_dir():
        problem = f"{path} is a folder, not a file"
        hint = f"give {option} a file name, e.g. {target / 'out'}{''.join(target.suffixes)}"
    else:
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    problem = f"{parent} is a file, so {path} cannot be made below it"
                    hint = f"give {option} a path whose folders are folders"
                elif not os.access(parent, os.W_OK | os.X_OK):
                    problem = f"{parent} is not writable"
                    hint = f"give {option} a path in a folder you can write"
                break
    if problem:
        raise SpecError([Diagnostic("bad-option", f"{option} {path}: {problem}", hint=hint)])
