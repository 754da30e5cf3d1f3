"""How each edge kind and node state is drawn, and the legend (one table, used everywhere)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EdgeStyle", "EDGE_STYLES", "NODE_FILL", "legend_label", "GREY", "PROBLEM", "ADDED"]


@dataclass(frozen=True)
class EdgeStyle:
    label: str
    color: str
    style: str = "solid"
    penwidth: float = 1.4


# edge kind -> drawing (colours chosen to stay apart for colour-blind readers)
EDGE_STYLES: dict[str, EdgeStyle] = {
    "input": EdgeStyle("input", "#333333"),
    "encoder": EdgeStyle("down-sampling (encoder)", "#1f4e9c", penwidth=1.8),
    "up": EdgeStyle("up-sampling", "#2a9d3a", penwidth=1.8),
    "skip": EdgeStyle("same-level skip", "#555555", "dashed"),
    "dense": EdgeStyle("dense skip", "#1f77b4", "dotted", 1.6),
    "full_scale": EdgeStyle("full-scale skip", "#e07b00", "dashed"),
    "backward": EdgeStyle("backward skip (loop-carried)", "#c0392b", "bold"),
    "head": EdgeStyle("output head", "#7b2d8b", penwidth=1.6),
}
NODE_FILL = {0: "#dbe8f6", 1: "#f6e3c6"}  # encoder column, decoder nodes
GREY = "#b8b8b8"
PROBLEM = "#d62728"
ADDED = "#d6338a"


def legend_label(kinds: list[str], notes: list[tuple[str, str]] = ()) -> str:
    """An HTML-like table: one row per edge kind used, with a sample of its line style, then
    one row per highlight colour in use (``notes``: colour, meaning)."""
    rows = []
    for kind in kinds:
        st = EDGE_STYLES[kind]
        dash = {"dashed": "- - - -", "dotted": "· · · · ·", "bold": "━━━━"}.get(st.style,
                                                                            "────")
        rows.append(f'<TR><TD><FONT COLOR="{st.color}"><B>{dash}</B></FONT></TD>'
                    f'<TD ALIGN="LEFT">{st.label}</TD></TR>')
    for color, meaning in notes:
        rows.append(f'<TR><TD><FONT COLOR="{color}"><B>━━━━</B></FONT></TD>'
                    f'<TD ALIGN="LEFT">{meaning}</TD></TR>')
    return ('<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" COLOR="#999999">'
            '<TR><TD COLSPAN="2"><B>edges</B></TD></TR>' + "".join(rows) + "</TABLE>>")
