"""``skipgraph render`` and ``skipgraph diff``. Drawing never imports torch; diff imports the
compiler for its parameter counts, only when torch is installed."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..errors import Diagnostic, SpecError
from ..graph import IRGraph, expand, infer, validate
from ..render import DrawOptions, diff_irs, draw, write_drawing
from ..render.draw import problem_nodes
from ..spec import load_spec

__all__ = ["add_commands", "load_for_drawing"]


def load_for_drawing(spec: str, sets: list[str]) -> tuple[IRGraph, list[Diagnostic]]:
    """The IR, even when it fails validation: the problems come back to be marked."""
    ir = expand(load_spec(spec, sets))
    try:
        infer(validate(ir))
    except SpecError as exc:
        return ir, exc.diagnostics
    return ir, []


def cmd_render(args: argparse.Namespace) -> int:
    from ..render.output import check_drawing_format
    check_drawing_format(args.output, also=("html",))  # before any work
    ir, problems = load_for_drawing(args.spec, args.set)
    if args.prune and args.prune not in ir.heads:
        from ..errors import did_you_mean
        raise SpecError([Diagnostic("unknown-node", f"--prune {args.prune}: not a head",
                                    hint=did_you_mean(args.prune, ir.heads))])
    shape = [int(s) for s in args.input.lower().split("x")] if args.input else None
    if args.output.lower().endswith(".html"):
        print(_write_page(args, ir, shape, problems))
    else:
        opts = DrawOptions(detail=args.detail, input_shape=shape, prune=args.prune,
                           unroll=args.unroll,
                           problems=problem_nodes(d.message for d in problems))
        for msg in write_drawing(draw(ir, opts), args.output):
            print(msg)
    if problems:
        print(SpecError(problems).format(with_source=True), file=sys.stderr)
        print(f"rendered with {len(problems)} problem(s) marked in red", file=sys.stderr)
        return 2
    return 0


def _write_page(args: argparse.Namespace, ir: IRGraph, shape: list[int] | None,
                problems: list[Diagnostic]) -> str:
    """``-o x.html``: ``skipgraph view``'s page as one file, torch-free: parameters are the
    IR's estimate (:mod:`skipgraph.graph.estimate`), no FLOPs, editing off."""
    from ..view import default_input_shape, page_html, payload
    from ..zoo import resolve_spec_path
    with open(resolve_spec_path(args.spec), encoding="utf-8") as fh:
        text = fh.read()
    note = ("static file (render): parameters are counted from the settings (exact for the built-in "
            "blocks, approximate for others), "
            "no FLOPs; `skipgraph view SPEC -o x.html` writes exact figures, "
            "`skipgraph view SPEC` serves an editable page")
    data = payload(ir, text, shape or default_input_shape(ir), problems=problems,
                   editable=False, note=note, with_facts=not problems)
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page_html(data, ir.name), encoding="utf-8")
    return f"wrote {path}"


def cmd_diff(args: argparse.Namespace) -> int:
    from ..graph import build_ir
    from ..render.output import check_drawing_format
    if args.output:
        check_drawing_format(args.output)
    a = build_ir(load_spec(args.a, args.set))
    b = build_ir(load_spec(args.b, args.set))
    d = diff_irs(a, b)
    print(d.format(_param_counts(a, b)))
    if args.output:
        opts = DrawOptions(added_nodes=set(d.added_nodes), added_edges=d.added_edges, removed=a,
                           title=f"{a.name} -> {b.name}")
        for msg in write_drawing(draw(b, opts), args.output):
            print(msg)
    return 0


def _param_counts(a: IRGraph, b: IRGraph) -> tuple[int, int] | None:
    try:
        from ..compile import compile_ir
        from ..compile.summary import count_params
    except ImportError:
        return None
    return count_params(compile_ir(a)), count_params(compile_ir(b))


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    r = add("render", cmd_render, "draw a spec as in the papers' figures "
            "(.svg/.png/.pdf/.dot/.gv/.html)")
    r.add_argument("-o", "--output", required=True, help="output file; format from suffix: "
                   ".svg, .png, .pdf, .dot or .gv (graphviz source), .html (the `view` page "
                   "as one file)")
    r.add_argument("--detail", action="store_true", help="add block type and output shape")
    r.add_argument("--input", help="input shape (e.g. 1x1x256x256) for --detail shapes")
    r.add_argument("--prune", metavar="HEAD", help="grey what pruning to HEAD removes")
    r.add_argument("--unroll", action="store_true", help="draw loop iterations side by side")
    d = add("diff", cmd_diff, "what spec B adds or removes relative to spec A", spec=False)
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    d.add_argument("-o", "--output", help="also draw B with the additions highlighted")
