"""View stage: the interactive page (IR facts + the renderer's SVG), its local server and the
notebook display (torch-free; exact figures come in from a compiled module's summary)."""
from .facts import Figures, default_input_shape, page_facts
from .page import diff_data, page_html, payload, svg_of

__all__ = ["Figures", "default_input_shape", "page_facts", "diff_data", "page_html", "payload",
           "svg_of"]
