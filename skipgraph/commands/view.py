"""``skipgraph view``: the interactive page for a spec or a checkpoint, served on 127.0.0.1
(or written as one file with ``-o x.html``). Figures are exact: the spec is compiled and
summarised (``compile.summary``) at the chosen input size; the spec text is only loaded and
validated, never run."""
from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence

from ..errors import Diagnostic, SpecError
from ..graph import IRGraph, build_ir, expand, infer, validate
from ..spec.loader import load_spec_text
from .common import parse_shape

__all__ = ["add_commands", "ViewSession", "figures_of"]

_CKPT = (".pt", ".pth", ".ckpt")


def figures_of(model: Any, shape: Sequence[int] | None):
    """A compiled module's exact figures (``build``'s summary; pruned counts from
    ``model.prune``) for the page."""
    from ..compile.summary import count_params, summarize
    from ..view import Figures
    s = summarize(model, shape)
    pruned = {h: count_params(model.prune(h)) for h, head in model.ir.heads.items()
              if head.pixelwise}
    return Figures(params=s.params, row_params={r.id: r.params for r in s.nodes},
                   module_params=s.module_params,
                   row_shapes={r.id: r.output_shape for r in s.nodes if r.output_shape},
                   row_flops={r.id: r.flops for r in s.nodes if r.flops is not None},
                   module_flops=s.module_flops, flops=s.flops, pruned_params=pruned)


class ViewSession:
    """One spec on the page: its file name (for positions, as ``check`` reports them), the
    ``--set`` overrides, and the spec to diff against."""

    def __init__(self, file: str, sets: list[str], against: IRGraph | None = None,
                 against_label: str = "", against_params: int | None = None,
                 editable: bool = True):
        self.file, self.sets, self.editable = file, sets, editable
        self.against, self.against_label, self.against_params = (against, against_label,
                                                                  against_params)

    def analyse(self, text: str, input_text: str = "", model: Any = None) -> dict[str, Any]:
        """The page's data for spec ``text``: loaded and validated like a file (nothing in it
        is run); compiled for exact figures when valid. ``model``: use this module (a
        checkpoint's) instead of compiling the text."""
        from ..view import default_input_shape, diff_data, payload
        if model is not None:
            ir = model.ir  # a pruned checkpoint draws pruned
        else:
            try:
                ir = expand(load_spec_text(text, self.sets, file=self.file))
            except SpecError as exc:
                return payload(None, text, None, problems=exc.diagnostics,
                               editable=self.editable)
            try:
                infer(validate(ir))
            except SpecError as exc:  # drawn with the problems marked, as `render` does
                return payload(ir, text, None, problems=exc.diagnostics,
                               editable=self.editable, with_facts=False,
                               note="fix the problems to see parameters, shapes and FLOPs")
        problems: list[Diagnostic] = []
        try:
            shape = parse_shape(input_text) if input_text.strip() else default_input_shape(ir)
            from ..graph import check_input_shape
            check_input_shape(ir, shape)
        except SpecError as exc:
            problems, shape = exc.diagnostics, None
        try:
            figures = self._figures(model if model is not None else ir, shape)
        except SpecError as exc:  # over the resource budget: said, the IR's estimates shown
            problems, figures, shape = problems + exc.diagnostics, None, None
        diff = None
        if self.against is not None and figures is not None:
            params = (figures.params, self.against_params) \
                if self.against_params is not None else None
            diff = diff_data(ir, self.against, self.against_label, params)
        note = "" if shape else "no input size: shapes and FLOPs are left out"
        return payload(ir, text, shape, figures, problems, editable=self.editable,
                       note=note, diff=diff)

    @staticmethod
    def _figures(source: Any, shape: Sequence[int] | None):
        from ..compile import compile_ir
        from ..graph.estimate import check_budget
        if isinstance(source, IRGraph):
            check_budget(source, input_shape=shape)  # before allocating weights or the input
            source = compile_ir(source, seed=0)
        return figures_of(source, shape)


def _against(args: argparse.Namespace) -> tuple[IRGraph | None, int | None]:
    if not args.diff:
        return None, None
    from ..compile import compile_ir
    from ..compile.summary import count_params
    from ..spec import load_spec
    b = build_ir(load_spec(args.diff, args.set))
    return b, count_params(compile_ir(b, seed=0))


def cmd_view(args: argparse.Namespace) -> int:
    from ..view import page_html
    from ..zoo import resolve_spec_path
    against, against_params = _against(args)
    model = None
    if str(args.spec).endswith(_CKPT):
        from ..checkpoint import model_from_checkpoint, read_checkpoint
        data = read_checkpoint(args.spec)
        text, file = data["spec"], f"{args.spec}#spec"
        model = model_from_checkpoint(data, args.spec)
    else:
        file = resolve_spec_path(args.spec)
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
        build_ir(load_spec_text(text, args.set, file=file))  # errors as `check` prints them
    session = ViewSession(file, args.set, against, args.diff or "", against_params,
                          editable=not args.output)
    first = session.analyse(text, args.input or "", model=model)
    if model is not None:
        first["note"] = (first.get("note") or "") + f" figures of the checkpoint {args.spec}; " \
            "edits rebuild the spec with fresh weights"
    title = first.get("name", str(args.spec))
    if args.output:
        first["note"] = ((first.get("note") or "") + " static file: editing needs "
                         "`skipgraph view SPEC`").strip()
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(page_html(first, title))
        print(f"wrote {args.output}")
        return 0
    from ..view.server import ViewServer
    try:
        server = ViewServer(lambda: page_html(first, title), session.analyse, port=args.port)
    except OSError as exc:
        raise OSError(f"cannot serve on 127.0.0.1:{args.port} ({exc.strerror}); pick another "
                      "--port, or --port 0 for any free one") from None
    print(f"skipgraph view: {server.url} (this machine only; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"`{text}` is not a port (0-65535; 0: any free one)")
    return port


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    v = add("view", cmd_view, "an interactive page of a spec or checkpoint (hover facts, "
            "pruning, diff, live editing) on 127.0.0.1")
    v.add_argument("--port", type=_port, default=8765, help="port on 127.0.0.1 (0: any free)")
    v.add_argument("--input", help="input shape for shapes and FLOPs (default 1xCx256x256 "
                   "in 2D, 1xCx64x64x64 in 3D)")
    v.add_argument("--diff", metavar="SPEC_B", help="also show what SPEC_B adds or removes")
    v.add_argument("-o", "--output", metavar="X.html", help="write the page as one file "
                   "instead of serving it")
