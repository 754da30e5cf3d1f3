"""A spec written from scratch, commented line by line: ``examples/tutorial.yaml``.

Read the YAML first. This script walks it through the pipeline: ``load_spec`` validates it,
``load_ir`` expands the families into nodes and edges (printed in the papers' notation),
``build`` compiles it, and the parameter count is compared with the one worked out by hand in the
YAML's header comment. A forward pass shows the shapes: ``(N, 1, H, W) -> (N, 3, H, W)``, each
pixel's 3 class probabilities summing to 1 (softmax head).

    python examples/tutorial.py
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

import skipgraph

SPEC = Path(__file__).resolve().parent / "tutorial.yaml"


def hand_count() -> int:
    """The total from the YAML's header comment (``# total: N parameters``)."""
    return int(re.search(r"#\s+total: (\d+) parameters", SPEC.read_text()).group(1))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="input side, a multiple of 4")
    args = ap.parse_args(argv)

    spec = skipgraph.load_spec(SPEC)          # raises SpecError, with line and column
    print(f"{spec.spec.name}: params {spec.params}")
    ir = skipgraph.load_ir(SPEC)
    print(ir)                                 # one line per node: its inputs, in concat order
    model = skipgraph.build(SPEC, seed=0)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params:,} parameters (by hand: {hand_count():,})")

    model.eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, args.size, args.size))
    print(f"output {tuple(y.shape)}, class probabilities sum to "
          f"{float(y.sum(dim=1).mean()):.3f}")
    return {"ir": ir, "params": params, "hand_count": hand_count(), "output": y}


if __name__ == "__main__":
    main()
