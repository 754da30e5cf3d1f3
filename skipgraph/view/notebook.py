"""Notebook display: a spec, an IR or a built model shows as its diagram (IPython calls the
objects' ``_repr_svg_`` / ``_repr_html_``, which come here). Torch-free: a model is read
through its ``ir`` and its ``parameters()``."""
from __future__ import annotations

import html
from typing import Any

from ..errors import SpecError
from ..graph import IRGraph, build_ir
from ..render import draw
from ..spec import ResolvedSpec
from .page import svg_of

__all__ = ["diagram_svg", "diagram_html"]


def _ir(obj: Any) -> IRGraph | None:
    if isinstance(obj, IRGraph):
        return obj
    if isinstance(obj, ResolvedSpec):
        try:
            return build_ir(obj)
        except SpecError:
            return None  # IPython falls back to the text repr
    return getattr(obj, "ir", None)


def diagram_svg(obj: Any) -> str | None:
    """The diagram as SVG text; None when there is none (invalid spec, no ``dot`` program)."""
    ir = _ir(obj)
    if ir is None:
        return None
    try:
        return svg_of(draw(ir))
    except Exception:  # graphviz.ExecutableNotFound and friends: no picture, never a failure
        return None


def diagram_html(obj: Any) -> str | None:
    """The diagram with a caption: name, parameters (counted for a model, estimated from the
    IR otherwise) and heads."""
    svg = diagram_svg(obj)
    if svg is None:
        return None
    ir = _ir(obj)
    if hasattr(obj, "parameters"):
        count = f"{sum(p.numel() for p in obj.parameters() if p.requires_grad):,} parameters"
    else:
        from ..graph.estimate import estimate_params
        count = f"{estimate_params(ir):,} parameters (estimated from the settings)"
    caption = (f"{html.escape(ir.name)} ({ir.dims}D): {count}; heads: "
               f"{html.escape(', '.join(ir.heads))}")
    return f'<div class="skipgraph-diagram">{svg}<p>{caption}</p></div>'
