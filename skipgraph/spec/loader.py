"""From a YAML file (+ ``--set`` overrides) to a validated :class:`ResolvedSpec`.

Steps: read YAML with positions -> merge ``extends:`` bases -> resolve params (defaults, then
overrides) -> substitute ``${expr}`` placeholders -> merge each family's ``block:`` over
``defaults.block`` -> validate with pydantic (block settings by their block type's model, as
``down:``/``up:`` by their op's). Every failure becomes a positioned diagnostic (a setting merged
in from ``defaults.block`` is reported where it is written); everything that can be checked
together is reported together.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from ..blocks.registry import merge_block
from ..errors import Diagnostic, DiagnosticSink, Span, SpecError, did_you_mean
from ..registry import RegisteredModel
from ..zoo import find_spec, not_found, resolve_spec_path
from ..fields.expr import Expr, ExprError
from .limits import check_limits
from .schema import Spec
from .yaml_source import PositionMap, SourceDoc, load_yaml_file

__all__ = ["ResolvedSpec", "load_spec", "load_spec_text", "parse_overrides"]

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_MAX_EXTENDS_DEPTH = 16
_BUILTIN_PARAMS = ("dims",)


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated spec with its params resolved; ``positions`` map key paths to sources."""

    spec: Spec
    params: dict[str, Any]
    positions: PositionMap
    path: str
    overrides: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the merged document, placeholders resolved

    def span(self, *path: Any):
        return self.positions.span(tuple(path))

    # notebook display (IPython calls these): the diagram, drawn by the view stage; the one
    # place an earlier stage reaches a later one, lazily (tests/test_rules.py allows it here)
    def _repr_svg_(self) -> str | None:
        from ..view.notebook import diagram_svg
        return diagram_svg(self)

    def _repr_html_(self) -> str | None:
        from ..view.notebook import diagram_html
        return diagram_html(self)


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["depth=3", "norm=batch"]`` -> ``{"depth": 3, "norm": "batch"}`` (values read as YAML)."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError([Diagnostic("bad-value", f"--set expects KEY=VALUE, got `{item}`")])
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def load_spec(path: str | os.PathLike, overrides: Iterable[str] | Mapping[str, Any] | None = None
              ) -> ResolvedSpec:
    """Load, merge, resolve and validate the spec at ``path`` (a file, or a spec name such as
    ``unet_pp`` found in ``$SKIPGRAPH_SPEC_PATH`` or the zoo); raises :class:`SpecError`."""
    path = resolve_spec_path(path)
    doc = _load_with_extends(path, chain=())
    return _resolve(doc, path, parse_overrides(overrides))


def load_spec_text(text: str, overrides: Iterable[str] | Mapping[str, Any] | None = None,
                   file: str = "<string>") -> ResolvedSpec:
    from .yaml_source import load_yaml_text
    doc = load_yaml_text(text, file)
    if isinstance(doc.data, dict) and doc.data.get("extends"):
        base_dir = os.path.dirname(file) if file != "<string>" else os.getcwd()
        doc = _merge_base(doc, base_dir, chain=(file,))
    return _resolve(doc, file, parse_overrides(overrides))


# --- extends -------------------------------------------------------------------------------

def _load_with_extends(path: str, chain: tuple[str, ...]) -> SourceDoc:
    real = os.path.realpath(path)
    if real in chain:
        raise SpecError([Diagnostic("extends-cycle", "specs extend each other in a cycle: "
                                    + " -> ".join(list(chain) + [real]))])
    if len(chain) > _MAX_EXTENDS_DEPTH:
        raise SpecError([Diagnostic("resource-limit", "`extends:` chain is too long")])
    doc = load_yaml_file(path)
    if isinstance(doc.data, dict) and doc.data.get("extends"):
        doc = _merge_base(doc, os.path.dirname(path), chain + (real,))
    return doc


def _merge_base(doc: SourceDoc, base_dir: str, chain: tuple[str, ...]) -> SourceDoc:
    ref = doc.data["extends"]
    if not isinstance(ref, str):
        raise SpecError([Diagnostic("bad-type", "`extends` must be a file path or a spec name",
                                    doc.positions.span(("extends",)))])
    base_path = _find_base(ref, base_dir, doc.positions.span(("extends",)))
    base = _load_with_extends(base_path, chain)
    merged = _deep_merge(base.data if isinstance(base.data, dict) else {}, doc.data)
    return SourceDoc(merged, base.positions.merged_with(doc.positions))


def _find_base(ref: str, base_dir: str, span: Span | None) -> str:
    """``extends:`` names a file relative to the extending spec, else a spec name (``unet_pp``)."""
    relative = os.path.join(base_dir, ref)
    if os.path.exists(relative):
        return relative
    found = find_spec(ref)
    if found is None:
        raise SpecError([not_found(ref, f"extended spec `{ref}` not found (no file {relative}, "
                                   "no spec of that name)", span)])
    return str(found)


def _deep_merge(base: dict, override: dict) -> dict:
    """Mappings merge recursively; ``null`` in the override deletes the key (drops a family)."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --- params and placeholders -----------------------------------------------------------------

def _resolve(doc: SourceDoc, path: str, overrides: dict[str, Any]) -> ResolvedSpec:
    if not isinstance(doc.data, dict):
        raise SpecError([Diagnostic("bad-type", "a spec must be a YAML mapping at the top level",
                                    doc.positions.span(()))])
    sink = DiagnosticSink()
    data = dict(doc.data)
    params = _resolve_params(data, doc.positions, overrides, sink)
    sink.raise_if_any()
    data = _substitute(data, params, doc.positions, (), sink)
    data["params"] = {k: v for k, v in params.items() if k not in _BUILTIN_PARAMS
                      or k in (doc.data.get("params") or {})}
    data["dims"] = params["dims"]
    sink.raise_if_any()
    spec = _validate(_merged_blocks(data), doc.positions, sink)
    if spec is not None:  # a param outside its range explains the errors it would cause
        check_limits(spec.limits, params, overrides, doc.positions, sink)
        sink.raise_if_any()
    if spec is None:  # expansion, which checks the names, will not run: report them now too
        _check_family_names(data, doc.positions, sink)
    sink.raise_if_any()
    assert spec is not None
    return ResolvedSpec(spec, params, doc.positions, path, overrides, data)


def _resolve_params(data: dict, pos: PositionMap, overrides: dict[str, Any],
                    sink: DiagnosticSink) -> dict[str, Any]:
    declared = data.get("params") or {}
    if not isinstance(declared, dict):
        sink.error("bad-type", "`params` must be a mapping of name: value", pos.span(("params",)))
        return {"dims": 2}
    defaults = {"dims": data.get("dims", 2), **declared}
    params: dict[str, Any] = {}
    for name, value in defaults.items():
        if isinstance(value, str) and _PLACEHOLDER.search(value):
            value = _fill(value, params, pos, ("params", name), sink)
        params[name] = value
    for name, value in overrides.items():
        if name not in params:
            sink.error("unknown-param", f"--set {name}: the spec has no param `{name}`",
                       pos.span(("params",)), hint=did_you_mean(name, params))
            continue
        expected = type(params[name])
        if isinstance(params[name], float) and isinstance(value, int) \
                and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            sink.error("bad-type", f"--set {name}={value!r}: expected {expected.__name__} "
                       f"like the default {params[name]!r}", pos.span(("params", name)))
            continue
        params[name] = value
    # params that depend on overridden ones are recomputed
    for name, value in declared.items():
        if name not in overrides and isinstance(value, str) and _PLACEHOLDER.search(value):
            params[name] = _fill(value, params, pos, ("params", name), sink)
    return params


def _substitute(value: Any, params: dict, pos: PositionMap, path: tuple, sink: DiagnosticSink
                ) -> Any:
    if path == ("params",):
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, params, pos, path + (k,), sink) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, pos, path + (i,), sink) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _fill(value, params, pos, path, sink)
    return value


def _fill(text: str, params: Mapping[str, Any], pos: PositionMap, path: tuple,
          sink: DiagnosticSink) -> Any:
    """``"${depth}"`` -> the param's typed value; ``"X[0,${depth}]"`` -> interpolated text."""
    def evaluate(source: str) -> Any:
        try:
            return Expr(source).evaluate(params)
        except ExprError as exc:
            code = "unknown-param" if exc.code == "eval-error" and "unknown name" in str(exc) \
                else exc.code
            sink.error(code, f"in `${{{source}}}`: {exc} (only params may appear in ${{...}})",
                       pos.span(path), hint=exc.hint, key=".".join(map(str, path)))
            return None

    whole = _PLACEHOLDER.fullmatch(text.strip())
    if whole:
        return evaluate(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(evaluate(m.group(1))), text)


# --- pydantic validation with positions ------------------------------------------------------

_FAMILY = re.compile(r"\s*([A-Za-z_]\w*)")


def _check_family_names(data: dict, pos: PositionMap, sink: DiagnosticSink) -> None:
    """Node patterns of edges, heads and loops that name an undeclared node family, found in
    the raw document (the same errors expansion reports), so that `check` shows them with the
    schema errors instead of in a second round."""
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return
    known = set(nodes) | {"input"}
    places = [(("edges", name, key), fam.get(key))
              for name, fam in _items(data.get("edges")) for key in ("from", "to")]
    places += [(("heads", name, "on"), head.get("on")) for name, head in _items(data.get("heads"))]
    for name, loop in _items(data.get("loops")):
        members = loop.get("nodes")
        places += [(("loops", name, "nodes"), f) for f in (members if isinstance(members, list)
                                                          else [])]
    for path, text in places:
        match = _FAMILY.match(text) if isinstance(text, str) else None
        if match and match.group(1) not in known:
            family = match.group(1)
            what = (f"loop `{path[1]}` names node family `{family}`" if path[0] == "loops" else
                    f"`{text}` names the node family `{family}`")
            sink.error("unknown-family", f"{what}, which is not declared", pos.span(path),
                       hint=did_you_mean(family, nodes), key=".".join(map(str, path)))


def _items(section: Any) -> list[tuple[str, dict]]:
    return [(k, v) for k, v in section.items() if isinstance(v, dict)] \
        if isinstance(section, dict) else []


def _validate(data: dict, pos: PositionMap, sink: DiagnosticSink) -> Spec | None:
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        sink.items.extend(_diagnostics_from_pydantic(exc, data, pos))
        return None


def _diagnostics_from_pydantic(exc: ValidationError, data: dict, pos: PositionMap
                               ) -> list[Diagnostic]:
    out: dict[tuple, Diagnostic] = {}
    for err in exc.errors():
        path = _data_path(err["loc"], data)
        key = ".".join(map(str, path))
        etype = err["type"]
        if etype == "extra_forbidden":
            diag = Diagnostic("unknown-key", f"unknown key `{path[-1]}`",
                              pos.span(path, prefer_key=True), key=key,
                              hint=did_you_mean(str(path[-1]), _fields_at(path[:-1], data)))
        elif etype == "missing":
            diag = Diagnostic("missing-key", f"missing required key `{path[-1]}`",
                              pos.span(path[:-1]), key=key)
        elif etype == "literal_error":
            options = re.findall(r"'([^']*)'|(\d+)", err["ctx"].get("expected", ""))
            options = [a or b for a, b in options]
            diag = Diagnostic("bad-value", f"{err['input']!r} is not allowed here: {err['msg']}",
                              pos.span(path), key=key,
                              hint=did_you_mean(str(err["input"]), options))
        elif etype == "unknown_name":  # a name no registry knows (skipgraph.registry)
            diag = Diagnostic(err["ctx"].get("code", "unknown-name"), err["ctx"]["message"],
                              pos.span(path), key=key,
                              hint=err["ctx"]["hint"] or None)
        elif etype == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
            code = "bad-expression" if msg.startswith("invalid ") else "bad-value"
            diag = Diagnostic(code, msg, pos.span(path), key=key)
        elif etype.endswith("_type") or etype.endswith("_parsing") or "type" in etype:
            diag = Diagnostic("bad-type", f"{err['msg']}, got {err['input']!r}", pos.span(path),
                              key=key)
        else:
            diag = Diagnostic("bad-value", err["msg"], pos.span(path), key=key)
        if diag.span is not None and path not in pos.values:
            moved = _merged_span(pos, path, diag.span)
            if moved is not diag.span and any(d.message == diag.message and d.span is not None
                                              and d.span.line == moved.line
                                              for d in out.values()):
                continue  # reported at `defaults.block` already
            diag = dataclasses.replace(diag, span=moved)
        out.setdefault(path, diag)  # union members repeat the same place: keep the first
    typos = {(_parent(d.key), d.hint) for d in out.values() if d.code == "unknown-key"}
    return [d for d in out.values() if not (
        d.code == "missing-key"
        and (_parent(d.key), f"did you mean `{d.key.rsplit('.', 1)[-1]}`?") in typos)]


def _parent(key: str | None) -> str:
    return (key or "").rpartition(".")[0]


def _data_path(loc: tuple, data: Any) -> tuple:
    """pydantic's ``loc`` minus union-member tags (``int``, ``seg``) that are not document keys."""
    path: list = []
    node = data
    for k, seg in enumerate(loc):
        last = k == len(loc) - 1
        if isinstance(node, (dict, list)) and _has(node, seg):
            path.append(seg)
            node = node[seg]
        elif isinstance(node, dict) and isinstance(seg, str) and last and not _is_union_tag(seg):
            path.append(seg)  # a missing key
            node = None
    return tuple(path)


def _is_union_tag(seg: Any) -> bool:
    """pydantic names union members in ``loc`` (``int``, ``function-after[...]``)."""
    return isinstance(seg, str) and (seg in ("int", "float", "str", "bool")
                                     or "[" in seg or "(" in seg)


def _has(node: Any, seg: Any) -> bool:
    if isinstance(node, dict):
        return seg in node
    return isinstance(seg, int) and 0 <= seg < len(node)


def _fields_at(path: tuple, data: Any = None) -> list[str]:
    """Field names (aliases) of the model found at ``path`` in the Spec schema (a section whose
    model a registry chooses, such as a head, is looked up by its ``type``)."""
    tp: Any = Spec
    node = data
    for seg in path:
        tp = _unwrap(tp, node)
        node = node.get(seg) if isinstance(node, dict) else None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fld = next((f for n, f in tp.model_fields.items() if (f.alias or n) == seg), None)
            if fld is None:
                return []
            tp = fld.annotation if not fld.metadata else Annotated[(fld.annotation,
                                                                    *fld.metadata)]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp, node)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any, node: Any = None) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            chooser = next((m for m in tp.__metadata__ if isinstance(m, RegisteredModel)), None)
            if chooser is not None:
                try:
                    return chooser.model_for(node)
                except (ValueError, LookupError):
                    return None
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return tp
            tp = models[0]
        else:
            return tp


def _merged_blocks(data: dict) -> dict:
    """``data`` with every family's ``block:`` mapping merged over ``defaults.block``
    (:func:`merge_block`), as the schema validates it; the document itself is kept as written."""
    def mapping(value: Any) -> dict:
        return value if isinstance(value, dict) else {}

    base = mapping(mapping(data.get("defaults")).get("block"))

    def merged(fam: Any, *keys: str) -> Any:
        inner = fam
        for key in keys[:-1]:
            inner = mapping(inner).get(key)
        if not isinstance(mapping(inner).get(keys[-1]), dict):
            return fam  # absent (the defaults apply) or not a mapping (a type error there)
        new = merge_block(base, inner[keys[-1]])
        if len(keys) == 1:
            return {**fam, keys[0]: new}
        return {**fam, keys[0]: {**fam[keys[0]], keys[1]: new}}

    out = dict(data)
    if isinstance(data.get("nodes"), dict):
        out["nodes"] = {k: merged(v, "block") for k, v in data["nodes"].items()}
    if isinstance(data.get("edges"), dict):
        out["edges"] = {k: merged(v, "conv", "block") for k, v in data["edges"].items()}
    return out


def _merged_span(pos: PositionMap, path: tuple, span: Span) -> Span:
    """A block setting merged in from ``defaults.block`` is reported where it is written."""
    if "block" not in path or path[:2] == ("defaults", "block"):
        return span
    written = ("defaults", "block") + path[path.index("block") + 1:]
    return pos.span(written) if written in pos.values else span
