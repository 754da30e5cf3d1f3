"""Writing a drawing: ``.dot`` needs nothing; images need graphviz's ``dot`` binary."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import graphviz

__all__ = ["IMAGE_FORMATS", "SOURCE_FORMATS", "MissingDotError", "write_drawing", "layout_json",
           "INSTALL_HINT", "check_drawing_format"]

IMAGE_FORMATS = ("svg", "png", "pdf")
SOURCE_FORMATS = ("dot", "gv")  # graphviz's source: needs no `dot` binary
INSTALL_HINT = ("the graphviz `dot` program is not installed; install it with "
                "`apt-get install -y graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
                "or `conda install graphviz`, or write a .dot file instead")


class MissingDotError(OSError):
    """An image was asked for without graphviz's ``dot``; the ``.dot`` source was written
    instead (the message names both files and how to install graphviz)."""


def check_drawing_format(out: str | os.PathLike, also: tuple[str, ...] = ()) -> str:
    """The format of output file ``out`` (its suffix), or a ValueError naming the file and
    every format the command writes (the drawing's, plus ``also``: render's ``html``)."""
    path = Path(out)
    fmt = path.suffix.lstrip(".").lower()
    known = IMAGE_FORMATS + SOURCE_FORMATS + tuple(also)
    if fmt not in known:
        what = f"its suffix `.{fmt}`" if fmt else "it has no suffix"
        raise ValueError(f"cannot tell the output format of {path}: {what}; use "
                         + ", ".join(f".{f}" for f in known[:-1]) + f" or .{known[-1]}")
    return fmt


def write_drawing(graph: graphviz.Digraph, out: str | os.PathLike) -> list[str]:
    """Write ``out`` (format from its suffix); returns messages for the user.

    Raises:
        MissingDotError: an image format without the ``dot`` binary; the ``.dot`` source is
            written next to it first, so the drawing is not lost (the CLI exits 2).
        ValueError: an unknown suffix.
    """
    path = Path(out)
    fmt = check_drawing_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in SOURCE_FORMATS:
        path.write_text(graph.source)
        return [f"wrote {path}"]
    if shutil.which("dot") is None:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(graph.source)
        raise MissingDotError(f"cannot write {path}: {INSTALL_HINT}; wrote the graph's source "
                              f"to {dot_path} instead")
    # quiet: dot's layout warnings ("size too small for label") are not the user's to act on
    path.write_bytes(graph.pipe(format=fmt, quiet=True))
    return [f"wrote {path}"]


def layout_json(graph: graphviz.Digraph) -> dict:
    """graphviz's own layout of the drawing (``-Tjson``), for tests and tools."""
    import json
    return json.loads(graph.pipe(format="json", quiet=True).decode())
