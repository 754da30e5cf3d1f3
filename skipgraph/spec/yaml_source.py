"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we convert them to plain Python data and keep a
:class:`PositionMap` from key paths (tuples of keys/indices) to :class:`Span`. Only the safe
constructors are used (no tags executed), duplicate keys are errors, and alias expansion is bounded
so that a "billion laughs" document fails fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Diagnostic, Span, SpecError

__all__ = ["PositionMap", "SourceDoc", "load_yaml_text", "load_yaml_file", "MAX_YAML_VALUES",
           "MAX_YAML_DEPTH"]

MAX_YAML_VALUES = 100_000  # values after alias expansion; a spec is a few hundred
MAX_YAML_DEPTH = 32        # nesting; a spec needs about 6

Path = tuple  # tuple[str | int, ...]
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in
               ("str", "int", "float", "bool", "null", "map", "seq", "merge")}


@dataclass
class PositionMap:
    """Key path -> span of the value (and, for mapping entries, of the key)."""

    file: str
    values: dict[Path, Span] = field(default_factory=dict)
    keys: dict[Path, Span] = field(default_factory=dict)

    def span(self, path: Path, prefer_key: bool = False) -> Span:
        """The span of ``path`` or of its nearest known ancestor."""
        path = tuple(path)
        while True:
            table = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            for t in table:
                if path in t:
                    return t[path]
            if not path:
                return Span(self.file)
            path = path[:-1]

    def merged_with(self, other: "PositionMap") -> "PositionMap":
        """Positions of ``other`` win (used by ``extends:`` overrides)."""
        out = PositionMap(self.file, dict(self.values), dict(self.keys))
        out.values.update(other.values)
        out.keys.update(other.keys)
        out.file = other.file
        return out


@dataclass
class SourceDoc:
    data: Any
    positions: PositionMap


def _span(file: str, mark: Any) -> Span:
    return Span(file, mark.line + 1, mark.column + 1)


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.positions = PositionMap(file)
        self.count = 0
        self.active: set[int] = set()  # nodes being converted (a recursive alias revisits one)
        self.errors: list[Diagnostic] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self.active:
            raise SpecError([Diagnostic("yaml-syntax", "a YAML alias refers to itself "
                                        "(recursive anchor)", _span(self.file, node.start_mark))])
        if len(path) > MAX_YAML_DEPTH:
            raise SpecError([Diagnostic("resource-limit", f"values nested more than "
                                        f"{MAX_YAML_DEPTH} deep", _span(self.file,
                                                                        node.start_mark))])
        self.active.add(id(node))
        try:
            return self._convert(node, path)
        finally:
            self.active.discard(id(node))

    def _convert(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_YAML_VALUES:
            raise SpecError([Diagnostic(
                "resource-limit",
                f"the document expands to more than {MAX_YAML_VALUES:,} values "
                "(YAML aliases nested too deep?)", _span(self.file, node.start_mark))])
        self.positions.values.setdefault(path, _span(self.file, node.start_mark))
        if node.tag not in _PLAIN_TAGS:
            self.errors.append(Diagnostic("yaml-syntax", f"YAML tag `{node.tag}` is not allowed "
                                          "in a spec", _span(self.file, node.start_mark)))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.errors.append(Diagnostic("yaml-syntax", str(exc).splitlines()[0],
                                          _span(self.file, node.start_mark)))
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        self._constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out: dict = {}
        for key_node, value_node in node.value:
            # Keys are taken as written: YAML 1.1 would read `on:` or `no:` as booleans.
            if not isinstance(key_node, yaml.ScalarNode):
                self.errors.append(Diagnostic("bad-type", "mapping keys must be plain scalars",
                                              _span(self.file, key_node.start_mark)))
                continue
            key = key_node.value
            if key in out:
                self.errors.append(Diagnostic("duplicate-key", f"key `{key}` appears twice",
                                              _span(self.file, key_node.start_mark),
                                              key=".".join(map(str, path + (key,)))))
                continue
            self.positions.keys[path + (key,)] = _span(self.file, key_node.start_mark)
            out[key] = self.convert(value_node, path + (key,))
        return out


def _compose(text: str, file: str) -> Any:
    # PyYAML's composer recurses once per nesting level: refuse pathological nesting first
    depth = peak = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            peak = max(peak, depth)
        elif ch in "]}":
            depth -= 1
    if peak > 4 * MAX_YAML_DEPTH:
        raise SpecError([Diagnostic("resource-limit", f"brackets nested {peak} deep",
                                    Span(file, 1, 1))])
    try:  # libyaml's composer when PyYAML has it (about 10x faster) ...
        return yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:  # ... and the pure-Python one for errors: its messages and marks
        return yaml.compose(text, Loader=yaml.SafeLoader)


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_text(text: str, file: str = "<string>") -> SourceDoc:
    """Parse YAML text into plain data plus positions; raises SpecError on any problem."""
    try:
        root = _compose(text, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = _span(file, mark) if mark else Span(file)
        msg = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise SpecError([Diagnostic("yaml-syntax", msg, span)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise SpecError([Diagnostic("yaml-syntax", f"character {exc.character!r} is not "
                                    "allowed in YAML", Span(file, line, column))]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Diagnostic("yaml-syntax", str(exc).splitlines()[0], Span(file, 1, 1))]
                        ) from None
    if root is None:
        return SourceDoc({}, PositionMap(file))
    conv = _Converter(file)
    data = conv.convert(root, ())
    if conv.errors:
        raise SpecError(conv.errors)
    return SourceDoc(data, conv.positions)


# how torch.save files begin: a zip archive (the default since torch 1.6) or a raw pickle
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x04", b"\x80\x05")


def load_yaml_file(path: str) -> SourceDoc:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise SpecError([Diagnostic("file-not-found", f"no such spec file: {path}")]) from None
    except OSError as exc:
        raise SpecError([Diagnostic("file-not-found", f"cannot read {path}: {exc}")]) from None
    if raw.startswith(_CHECKPOINT_MAGIC):
        raise SpecError([Diagnostic(
            "not-a-spec", f"{path} is a checkpoint or another torch.save file, not a spec",
            Span(path), hint="evaluate, prune, export and eject take checkpoints; build, check "
            "and render take a spec (a YAML file or a zoo name)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError([Diagnostic(
            "not-a-spec", f"byte 0x{raw[exc.start]:02x} is not UTF-8 text; a spec is a UTF-8 "
            "YAML file", Span(path, line, column))]) from None
    return load_yaml_text(text, path)
