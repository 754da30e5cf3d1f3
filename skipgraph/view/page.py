"""The page: one self-contained HTML file (styles, script, data and SVG inline; nothing is
fetched from the network), served by :mod:`skipgraph.view.server` or written by ``render -o
x.html``. The data is :func:`payload`'s dictionary, embedded as JSON."""
from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any, Sequence

import graphviz

from ..errors import Diagnostic
from ..graph.ir import IRGraph
from ..render import DrawOptions, diff_irs, draw
from .facts import Figures, page_facts

__all__ = ["svg_of", "payload", "diagnostics_data", "page_html", "diff_data"]


def svg_of(graph: graphviz.Digraph) -> str:
    """The drawing as an inline ``<svg>`` element (graphviz's XML prolog and DOCTYPE dropped).

    Raises:
        graphviz.ExecutableNotFound: graphviz's ``dot`` program is not installed.
    """
    text = graph.pipe(format="svg", quiet=True).decode("utf-8")
    return text[text.index("<svg"):]


def diagnostics_data(diagnostics: Sequence[Diagnostic], text: str | None) -> list[dict]:
    """Each problem with its position and the text ``skipgraph check`` prints for it (source
    line and caret from ``text``, the spec as the page holds it)."""
    lines = text.splitlines(keepends=True) if text is not None else None
    out = []
    for d in diagnostics:
        span = d.span
        out.append({"code": d.code, "line": span.line if span else 0,
                    "column": span.column if span else 0, "text": d.format(lines)})
    return out


def diff_data(a: IRGraph, b: IRGraph, b_label: str,
              params: tuple[int, int] | None = None) -> dict[str, str]:
    """``skipgraph diff A B``'s text and drawing (B with additions highlighted and A's
    removed nodes as ghosts)."""
    d = diff_irs(a, b)
    opts = DrawOptions(added_nodes=set(d.added_nodes), added_edges=d.added_edges, removed=a,
                       title=f"{a.name} -> {b.name}")
    return {"svg": svg_of(draw(b, opts)), "text": d.format(params), "against": b_label}


def payload(ir: IRGraph | None, spec_text: str, input_shape: Sequence[int] | None,
            figures: Figures | None = None, problems: Sequence[Diagnostic] = (),
            editable: bool = True, note: str = "", diff: dict | None = None,
            with_facts: bool = True) -> dict[str, Any]:
    """What the page shows: the drawing (problems marked in red, as ``render`` marks them),
    the facts per element (``with_facts``: False for an IR that failed validation), the
    diagnostics, the spec text. ``ir`` None: the spec did not load (the page keeps its last
    drawing)."""
    from ..render.draw import problem_nodes
    data: dict[str, Any] = {"spec": spec_text, "editable": editable, "note": note,
                            "diagnostics": diagnostics_data(problems, spec_text),
                            "svg": None, "facts": None, "drawn": False, "diff": diff}
    if ir is not None:
        opts = DrawOptions(problems=problem_nodes(d.message for d in problems))
        data.update(svg=svg_of(draw(ir, opts)), drawn=True, name=ir.name,
                    facts=page_facts(ir, input_shape, figures) if with_facts else None)
    return data


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def page_html(data: dict[str, Any], title: str) -> str:
    """The whole page; ``data`` from :func:`payload`."""
    blob = json.dumps(data).replace("</", "<\\/")  # no `</script>` can end the data early
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'">
<title>{html.escape(title)} - skipgraph view</title>
<style>{_asset("view.css")}</style></head>
<body>
<header><h1>{html.escape(title)}</h1>
<label>input <input id="input" title="input shape N x C x spatial, for shapes and FLOPs"></label>
<span id="totals"></span>
<button id="diff-toggle" hidden></button></header>
<main>
<section id="left">
<div id="editor"><pre id="gutter"></pre><textarea id="spec" spellcheck="false" aria-label="spec"></textarea></div>
<div id="status"></div>
<ul id="errors"></ul>
</section>
<section id="center"><div id="notes"></div><div id="prune-note"></div>
<div id="diagram"></div><div id="diffview" hidden></div></section>
<aside id="info"><p class="hint">hover a node, an edge or a head for its level, channels,
block, parameters, output shape and FLOPs; click a head to grey what pruning to it removes</p></aside>
</main>
<script type="application/json" id="sg-data">{blob}</script>
<script>{_asset("view.js")}</script>
</body></html>
"""
