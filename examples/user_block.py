"""A user block (squeeze-and-excitation) registered from your own module and used in a spec.

``import se_block`` registers block type ``se_conv`` (see examples/se_block.py);
``se_unet.yaml`` extends the zoo's ``unet`` and sets ``defaults.block.type: se_conv``, so every
node of the U-Net becomes conv stack + SE. The script builds both, checks that the only extra
parameters are the SE bottlenecks' (2 * C * C/r + C/r + C per node of width C), runs a forward
pass, and shows the equivalent command line.

    python examples/user_block.py --base 8
"""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

import torch

import se_block  # noqa: F401  (registers `se_conv`)
import skipgraph

SPEC = Path(__file__).resolve().parent / "se_unet.yaml"


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--reduction", type=int, default=4)
    args = ap.parse_args(argv)
    params = {"base": args.base, "depth": args.depth}

    se_unet = skipgraph.build(SPEC, reduction=args.reduction, seed=0, **params)
    unet = skipgraph.build("unet", seed=0, **params)
    widths = [se_unet.ir.node(n).out_channels for n in se_unet.ir.graph.nodes
              if n != "input"]
    hidden = [max(1, c // args.reduction) for c in widths]
    expected = count(unet) + sum(2 * c * h + h + c for c, h in zip(widths, hidden))

    x = torch.randn(2, 1, 2 ** args.depth * 4, 2 ** args.depth * 4)
    se_unet.eval()
    with torch.no_grad():
        y = se_unet(x)
    print(f"U-Net {count(unet):,} parameters; with SE blocks {count(se_unet):,} "
          f"(SE adds {count(se_unet) - count(unet):,}: {len(widths)} nodes)")
    print(f"input {tuple(x.shape)} -> output {tuple(y.shape)}")
    command = equivalent_command(params, args.reduction)
    print(f"command line (from {Path.cwd()}): {command}")
    return {"model": se_unet, "params": count(se_unet), "expected": expected,
            "output_shape": tuple(y.shape), "command": command}


def equivalent_command(params: dict, reduction: int) -> str:
    """The `skipgraph build` line that builds the same model from the current directory:
    the module folder and the spec are written relative to it, so it runs where it is printed."""
    here = os.path.relpath(SPEC.parent)
    sets = " ".join(f"--set {k}={v}" for k, v in {**params, "reduction": reduction}.items())
    return (f"PYTHONPATH={shlex.quote(here)} skipgraph --import se_block build "
            f"{shlex.quote(os.path.join(here, SPEC.name))} {sets}")


if __name__ == "__main__":
    main()
