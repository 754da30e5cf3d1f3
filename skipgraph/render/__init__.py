"""Render stage: IR -> graphviz drawings and spec diffs (torch-free)."""
from .diff import IRDiff, diff_irs
from .draw import DrawOptions, draw
from .output import layout_json, write_drawing

__all__ = ["IRDiff", "diff_irs", "DrawOptions", "draw", "layout_json", "write_drawing"]
