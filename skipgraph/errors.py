"""Diagnostics as data, rendered like a compiler's messages.

Every problem found in a spec becomes a :class:`Diagnostic` with a stable ``code`` slug from
:data:`CODES`, a source :class:`Span` and an optional hint. Passes collect them and raise one
:class:`SpecError` holding all of them; only the CLI prints.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

__all__ = ["CODES", "Span", "Diagnostic", "SpecError", "DiagnosticSink", "did_you_mean"]

# code slug -> one-line description (stable; tests and users may match on the slug)
CODES: dict[str, str] = {
    "yaml-syntax": "the file is not valid YAML",
    "file-not-found": "a spec or extended spec file does not exist",
    "not-a-spec": "a file that is not spec text (binary, not UTF-8, or a checkpoint)",
    "duplicate-key": "a mapping repeats a key",
    "unknown-key": "a key the schema does not know",
    "missing-key": "a required key is absent",
    "bad-type": "a value of the wrong type",
    "bad-value": "a value outside the allowed set or range",
    "bad-expression": "an expression that does not parse or uses something not allowed",
    "eval-error": "an expression that fails when evaluated",
    "unknown-param": "a --set or ${...} names a parameter the spec does not declare",
    "unknown-block": "a block type that is not registered",
    "unknown-name": "a resampling op, head type or loss that is not registered",
    "unknown-family": "a node pattern names a family that does not exist",
    "unknown-node": "a reference to a node that the expansion did not create",
    "empty-family": "a family that expands to nothing",
    "duplicate-node": "two families create the same node name",
    "cycle-outside-loop": "the graph has a cycle that is not a declared loop",
    "no-input": "a node that receives no input",
    "unreachable": "a node that the network input does not reach",
    "dead-node": "a node whose output reaches no head",
    "level-mismatch": "an edge whose resampling contradicts the level change",
    "channel-mismatch": "inputs of a sum or product merge with different channel counts",
    "head-loss-mismatch": "a head whose activation the loss cannot train",
    "head-contract": "a head type whose activation or target rule is not a known value",
    "bad-input-size": "an input size that the network's total stride does not divide",
    "extends-cycle": "specs that extend each other in a cycle",
    "resource-limit": "a spec that would expand beyond the configured limits",
    "export-failed": "an export that cannot work, named by the node where it fails",
    "bad-option": "command-line options that cannot work together or on this machine",
    "missing-extra": "a feature whose optional dependencies are not installed",
}


@dataclass(frozen=True)
class Span:
    """A place in a source file; ``line`` and ``column`` are 1-based (0 means unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, what (stable ``code`` + message), and how to fix it (``hint``)."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    key: str | None = None  # dotted path of the offending key, e.g. "edges.dense.from"

    def __post_init__(self) -> None:
        assert self.code in CODES, f"unregistered diagnostic code {self.code!r}"

    def format(self, source_lines: Sequence[str] | None = None) -> str:
        where = f"{self.span}: " if self.span else ""
        key = f" (at `{self.key}`)" if self.key else ""
        text = f"{where}error: {self.message}{key}  [{self.code}]"
        if source_lines and self.span and 0 < self.span.line <= len(source_lines):
            src = source_lines[self.span.line - 1].rstrip("\n")
            caret = " " * max(self.span.column - 1, 0) + "^"
            text += f"\n    {src}\n    {caret}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def sort_key(self) -> tuple:
        span = self.span or Span("")
        return (span.file, span.line, span.column, self.code, self.message)


class SpecError(Exception):
    """All problems found in a spec, sorted by position and without repeats."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        unique = {(d.sort_key(), d.hint, d.key): d for d in diagnostics}
        self.diagnostics: list[Diagnostic] = sorted(unique.values(), key=Diagnostic.sort_key)
        assert self.diagnostics, "SpecError needs at least one diagnostic"
        super().__init__(self.format())

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def format(self, with_source: bool = False) -> str:
        parts = []
        for d in self.diagnostics:
            lines = _read_lines(d.span.file) if (with_source and d.span) else None
            parts.append(d.format(lines))
        n = len(self.diagnostics)
        if n > 1:
            parts.append(f"{n} errors")
        return "\n".join(parts)


def _read_lines(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readlines()
    except (OSError, UnicodeDecodeError):
        return None


@dataclass
class DiagnosticSink:
    """Collects diagnostics during a pass; :meth:`raise_if_any` ends the pass."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span | None = None,
              hint: str | None = None, key: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, hint, key))

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def did_you_mean(word: str, options: Iterable[str], n: int = 1) -> str | None:
    """A hint naming the ``n`` closest options, or listing the options when none is close."""
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.6)
    if close:
        names = [f"`{c}`" for c in close]
        return "did you mean " + (" or ".join(names) if len(names) < 3
                                  else ", ".join(names[:-1]) + " or " + names[-1]) + "?"
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(f"`{o}`" for o in options)
    return None
