"""The ``skipgraph`` command: the parser and error handling. The commands themselves live in
:mod:`skipgraph.commands` (one module per group); only commands print, and errors exit 2 with
compiler-style text."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from .commands import COMMAND_GROUPS
from .commands.common import OUTPUT_OPTIONS, add_spec_args, check_output_path
from .errors import SpecError

__all__ = ["main", "make_parser"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skipgraph", description="U-Net-family architectures "
                                     "as graph specs: validate, expand, draw and compile them.")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a module that registers user blocks, "
                        "resampling ops, head types or losses")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
            spec: bool = True, defaults: bool = False) -> argparse.ArgumentParser:
        # defaults=True: --help shows each option's default
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=(
            _DefaultsFormatter if defaults else argparse.HelpFormatter))
        if spec:
            add_spec_args(p)
        p.set_defaults(fn=fn)
        return p

    for group in COMMAND_GROUPS:
        try:
            module = importlib.import_module(f"skipgraph.commands.{group}")
        except ImportError:  # an optional stage (graphviz for render) is not installed
            continue
        module.add_commands(add)
    return parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, unless the help already says it or there is
    none to say (None, a flag's False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default == []:  # not `in`: 0 == False
            return text
        return super()._get_help_string(action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        for module in args.imports:
            importlib.import_module(module)
        _check_outputs(parser, args)
        status = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return status
    except BrokenPipeError:  # `skipgraph ... | head`: the reader has what it wanted
        _silence_stdout()
        return 141  # what a shell reports for a SIGPIPE death
    except SpecError as exc:
        print(exc.format(with_source=True), file=sys.stderr)
        return 2
    except ImportError as exc:  # a missing optional extra names what to install
        from .extras import explain
        print(f"error: {explain(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # DataError, InputShapeError, PlansError: messages say where
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every output option of the command (:data:`OUTPUT_OPTIONS`) checked before any work:
    ``--out afile`` or ``-o afile/x.py`` is an error naming the option, not an OS error after
    the data is read or the model built."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[args.command]._actions:
        value = getattr(args, action.dest, None)
        if action.dest in OUTPUT_OPTIONS and isinstance(value, str) and action.option_strings:
            check_output_path(value, "/".join(action.option_strings), OUTPUT_OPTIONS[action.dest])


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (captured, replaced)
        pass


if __name__ == "__main__":
    sys.exit(main())
