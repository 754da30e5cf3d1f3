"""Regenerate the diagrams of every zoo spec: ``python -m skipgraph.render.gallery docs/zoo``."""
from __future__ import annotations

import sys
from pathlib import Path

from ..graph import build_ir
from ..spec import load_spec
from ..zoo import zoo_specs
from .draw import draw
from .output import write_drawing

__all__ = ["render_gallery"]


def render_gallery(folder: str | Path, fmt: str = "svg") -> list[Path]:
    out = Path(folder)
    written = []
    for name, path in zoo_specs().items():
        target = out / f"{name}.{fmt}"
        for msg in write_drawing(draw(build_ir(load_spec(path))), target):
            print(msg)
        written.append(target)
    return written


if __name__ == "__main__":
    render_gallery(sys.argv[1] if len(sys.argv) > 1 else "docs/zoo")
