"""Probe every documented setting of every registered resampling op, block and head type: a
changed value must change the built model (its modules, generated code, parameter count,
outputs or training loss) or be rejected by `check` with a position. Used by
tests/test_settings_change.py; generic, so settings added to the registries are covered
without editing this file (a setting of a kind no rule here can change fails the test).

A case is (registry, entry, label, base settings, changed settings): the two specs differ only
in the probed setting; ``base`` holds the defaults plus the context the setting needs to matter
(``CONTEXT``: `order` swaps norm and activation, so both are set).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
import pydantic
import torch
import yaml

import skipgraph
from skipgraph.blocks.options import ACTS, NORMS
from skipgraph.blocks.registry import list_blocks
from skipgraph.errors import SpecError
from skipgraph.heads import HEADS
from skipgraph.resampling import RESAMPLE

WIDTH = 8  # every node's width in the probe specs
DIMS = 2

# not settings of the entry but where it sits / which entry it is
PLACEMENT = {"type", "op", "on", "if_"}
# a setting that only matters together with others: the others, set in both specs
CONTEXT: dict[str, dict[str, Any]] = {
    "order": {"norm": "batch", "act": "relu", "dropout": 0.1},  # places norm, act, dropout
    "hidden": {"variant": "pooled_mlp", "layers": 2},   # width of pooled_mlp's hidden stages
    "layers": {"variant": "pooled_mlp"},                # pooled_mlp's stages
    "norm_per_step": {"steps": 2},
    "hidden_act": {"reduction": 2},  # image_pool: the act inside its SE bottleneck
    "input_dropout_spatial": {"input_dropout": 0.5},  # whole channels of a live input dropout
    # the shortcut kinds differ only where a unit strides: the wider encoder nodes stride
    "shortcut": {"stride": f"2 if i > 0 and width > {WIDTH} else 1"},
}
PROBE_FACTOR = 2  # every level-to-level factor of the probe specs (`kernel: factor` is 2)
# settings an op cannot do without (upconv's conv keeps the size only with an odd kernel)
# (the ViT blocks: heads that divide the probe's width; 1x1 patches keep the probe's levels)
ENTRY_BASE: dict[str, dict[str, Any]] = {"upconv": {"kernel": 3},
                                         "transformer": {"heads": 2, "mlp": 16},
                                         "patch_embed": {"stride": 1}, "swin": {"heads": 2}}
# spec params a head type's probe needs: an identity head on E[2] passes its 32 channels, so
# the classes (every head's `out`) are 32
HEAD_PARAMS: dict[str, dict[str, Any]] = {"identity": {"classes": 4 * WIDTH}}
# values of the options a norm / activation takes ({type: batch, momentum: 0.3}); `None`:
# the flipped default of a bool
OPTION_VALUES: dict[str, Any] = {"momentum": 0.3, "eps": 1e-2, "affine": None,
                                 "convention": "keras", "groups": 2, "alpha": 0.5,
                                 "negative_slope": 0.2, "num_parameters": WIDTH}
_AFFINE_DEFAULT = {"batch": True, "instance": False, "group": True, "layer": True}
# entries whose settings are not written in a spec block (a timm encoder stage comes from a
# backbone family; tests/test_backbone.py covers its settings)
NOT_WRITTEN = {("block", "backbone")}


class NoRule(Exception):
    """A setting whose type no rule here knows how to change: the test fails on it."""


@dataclasses.dataclass(frozen=True)
class Case:
    registry: str   # resample | block | head
    entry: str
    label: str      # the setting (and option) probed, e.g. `norm` or `norm.batch.momentum`
    base: dict[str, Any]
    changed: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.registry}:{self.entry}:{self.label}"


# --- the entries and their settings ----------------------------------------------------------
def entries() -> list[tuple[str, str, type]]:
    """(registry, name, settings model) of every entry skipgraph itself registers."""
    out = [("resample", e.name, e.params) for e in RESAMPLE.list()]
    out += [("block", b.name, b.params) for b in list_blocks()]
    out += [("head", e.name, e.params) for e in HEADS.list()]
    return [(r, n, m) for r, n, m in out if _own(r, n) and (r, n) not in NOT_WRITTEN]


def _own(registry: str, name: str) -> bool:
    """Built into skipgraph (other tests register throwaway plugins into the same registries)."""
    origin = {"resample": lambda: RESAMPLE.get(name).origin,
              "head": lambda: HEADS.get(name).origin,
              "block": lambda: next(b for b in list_blocks() if b.name == name).origin}[registry]()
    return origin.startswith("skipgraph.")


def cases_for(registry: str, name: str, model: type) -> list[Case]:
    cases = []
    for field, info in model.model_fields.items():
        if field in PLACEMENT:
            continue
        key = info.alias or field
        context = {k: v for k, v in CONTEXT.get(field, {}).items()
                   if k in model.model_fields}
        default = ENTRY_BASE.get(name, {}).get(key, info.get_default(call_default_factory=True))
        kind = _layer_kind(info.metadata)
        if kind is not None:
            cases += _option_cases(registry, name, field, default, context, model, kind)
            continue
        for value in changed_values(info.annotation, default, list(info.metadata)):
            cases.append(Case(registry, name, f"{key}={value!r}", dict(context),
                              {**context, key: value}))
    return cases


def _layer_kind(metadata: list) -> str | None:
    """``norm`` / ``act`` for a NormSetting / ActSetting field (whatever its name), else None."""
    for item in metadata:
        table = getattr(item, "registry", "")
        if table.endswith(":NORMS"):
            return "norm"
        if table.endswith(":ACTS"):
            return "act"
    return None


def _option_cases(registry: str, name: str, field: str, default: Any,
                  context: dict[str, Any], model: type, kind: str) -> list[Case]:
    """Every other name of the norm / activation table, and each option of each name against
    that name without it (not for a name the entry refuses: its own case probes the refusal,
    e.g. instance norm on image pooling's one-position map)."""
    names = NORMS if kind == "norm" else ACTS
    table = {e.name: tuple(e.params.model_fields) for e in names.list()
             if e.origin.startswith("skipgraph.")}
    current = default if isinstance(default, str) else default["type"]
    cases = [Case(registry, name, f"{field}={n}", dict(context), {**context, field: n})
             for n in table if n != current]
    for n, options in table.items():
        if not _accepts(model, field, n):
            continue
        for opt in options:
            if opt not in OPTION_VALUES:
                raise NoRule(f"{field} `{n}` option `{opt}`: add a changed value to "
                             "OPTION_VALUES in tests/settings_probe.py")
            value = OPTION_VALUES[opt]
            if value is None:  # a bool: flip its default
                value = not _AFFINE_DEFAULT[n]
            cases.append(Case(registry, name, f"{field}.{n}.{opt}={value!r}",
                              {**context, field: n},
                              {**context, field: {"type": n, opt: value}}))
    return cases


def _accepts(model: type, field: str, value: Any) -> bool:
    try:
        model.model_validate({field: value})
    except pydantic.ValidationError:
        return False
    return True


def changed_values(annotation: Any, default: Any, metadata: list) -> list[Any]:
    """Values other than ``default`` that ``annotation`` admits (within its bounds)."""
    values = _values(annotation, default, metadata)
    if not values:
        raise NoRule(f"no rule changes a setting of type {annotation!r}")
    return [v for v in dict.fromkeys(map(_hashable, values)) if v != _hashable(default)]


def _hashable(v: Any) -> Any:
    """Comparable, and `factor` as the size it stands for in the probe specs."""
    return tuple(v) if isinstance(v, list) else PROBE_FACTOR if v == "factor" else v


def _values(ann: Any, default: Any, metadata: list) -> list[Any]:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(ann)
        return _values(base, default, metadata + meta)
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arm in typing.get_args(ann):
            if arm is type(None) or arm is str:  # str arms hold expressions or names
                continue
            try:
                out += _values(arm, default, metadata)
            except NoRule:
                pass
        return out
    if origin is Literal:
        return [v for v in typing.get_args(ann) if v != default]
    if ann is bool:
        return [not default] if isinstance(default, bool) else [True, False]
    if ann is int:
        return _ints(default, metadata)
    if ann is float:
        lo, hi = _bounds(metadata)
        start = default if isinstance(default, (int, float)) else 0.0
        return [min(start + 0.25, (start + hi) / 2 if hi is not None else start + 0.25)]
    if origin in (tuple, list):
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        if args and all(a is int for a in args):  # one int per axis
            first = default[0] if isinstance(default, (tuple, list)) else default
            first = first if isinstance(first, int) else 3
            return [[1] * (DIMS - 1) + [first if first != 1 else 3]]
        if origin is list and len(args) == 1 and _admits_int(args[0]):
            return [[WIDTH // 2]]  # one value per inner conv (widths): half the node's width
    raise NoRule(f"no rule changes a setting of type {ann!r}")


def _admits_int(ann: Any) -> bool:
    if typing.get_origin(ann) is typing.Annotated:
        return _admits_int(typing.get_args(ann)[0])
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return any(_admits_int(a) for a in typing.get_args(ann))
    return ann is int


def _bounds(metadata: list) -> tuple[Any, Any]:
    lo = hi = None
    for m in metadata:
        if isinstance(m, (annotated_types.Ge, annotated_types.Gt)):
            lo = getattr(m, "ge", getattr(m, "gt", None))
        if isinstance(m, (annotated_types.Le, annotated_types.Lt)):
            hi = getattr(m, "le", getattr(m, "lt", None))
    return lo, hi


def _ints(default: Any, metadata: list) -> list[int]:
    lo, hi = _bounds(metadata)
    start = default if isinstance(default, int) and not isinstance(default, bool) else \
        PROBE_FACTOR if default == "factor" else 1
    values = [start + 1, start + 2]
    if hi is not None:
        values = [v for v in values if v <= hi] or [start - 1]
    return [v for v in values if lo is None or v >= lo]


def _strides_by_itself(model: type) -> bool:
    """A block type whose default settings already go down a level (``levels_down() > 0``)."""
    try:
        return model().levels_down() > 0
    except Exception:  # noqa: BLE001 - a model without defaults for every field
        return False


# --- the probe specs ---------------------------------------------------------------------------
def probe_spec(case_registry: str, entry: str, settings: dict[str, Any],
               model: type | None = None) -> dict[str, Any]:
    """A small two-level network using ``entry`` with ``settings``."""
    spec: dict[str, Any] = {
        "skipgraph": 1, "name": "probe", "dims": DIMS,
        "params": {"in_channels": 2, "classes": 1},
        "defaults": {"block": {"type": "conv", "convs": 1}, "down": {"op": "maxpool"},
                     "up": {"op": "transpose"}},
        # encoder widths 8, 16, 32: `out: source / half / target` give three channel counts
        "nodes": {"E": {"for": {"i": "0..2"}, "width": f"{WIDTH} * 2**i", "column": 0},
                  "D": {"for": {"i": "0..1"}, "width": WIDTH, "column": 1}},
        "edges": {"stem": {"from": "input", "to": "E[0]"},
                  "down": {"from": "E[i-1]", "to": "E[i]"},
                  "bottom": {"from": "E[i+1]", "to": "D[i]", "if": "i == 1", "kind": "up"},
                  "up": {"from": "D[i+1]", "to": "D[i]"},
                  "skip": {"from": "E[i]", "to": "D[i]"}},
        "heads": {"seg": {"on": "D[i]", "out": "classes"}},  # defaults: the fields probed
    }
    if case_registry == "resample":
        direction = model.direction if model is not None else "down"
        spec["defaults"]["down" if direction == "down" else "up"] = {
            "op": entry, **ENTRY_BASE.get(entry, {}), **settings}
    elif case_registry == "block" and model is not None and _strides_by_itself(model):
        # a block that always strides (patch merging) cannot sit at level 0: a conv node S
        # there, the entry's block on E[1], E[2] (widths 16, 32: twice their inputs)
        spec["defaults"]["block"] = {"type": "conv", "convs": 1}
        spec["nodes"]["S"] = {"level": 0, "column": 0, "width": WIDTH}
        spec["nodes"]["E"] = {"for": {"i": "1..2"}, "width": f"{WIDTH} * 2**i", "column": 0,
                              "block": {"type": entry, **ENTRY_BASE.get(entry, {}), **settings}}
        spec["edges"] = {"stem": {"from": "input", "to": "S"},
                         "into": {"from": "S", "to": "E[1]"},
                         "down": {"from": "E[i-1]", "to": "E[i]"},
                         "bottom": {"from": "E[i+1]", "to": "D[i]", "if": "i == 1", "kind": "up"},
                         "up": {"from": "D[i+1]", "to": "D[i]"},
                         "skip": {"from": "E[i]", "to": "D[i]"},
                         "skip0": {"from": "S", "to": "D[0]", "kind": "skip"}}
    elif case_registry == "block" and model is not None and "convs" not in model.model_fields:
        # a block without convs keeps its channels: it sits on encoder nodes of one width, a
        # conv on the stem edge maps the input to that width, the decoder keeps conv blocks
        spec["defaults"]["block"] = {"type": entry, **ENTRY_BASE.get(entry, {}), **settings}
        spec["nodes"]["E"]["width"] = WIDTH
        spec["nodes"]["D"]["block"] = {"type": "conv", "convs": 1}
        spec["edges"]["stem"]["conv"] = {"width": WIDTH, "block": {"type": "conv", "convs": 1}}
    elif case_registry == "block":
        spec["defaults"]["block"] = {"type": entry, **ENTRY_BASE.get(entry, {}), **settings}
    elif entry == "seg":
        spec["heads"]["seg"].update(settings)
    else:  # another head type: on the bottom node, beside the seg heads
        spec["heads"]["probe"] = {"type": entry, "on": "E[2]", **settings}
        spec["params"].update(HEAD_PARAMS.get(entry, {}))
    return spec


@dataclasses.dataclass
class Built:
    model: Any = None
    error: SpecError | None = None


def build(spec: dict[str, Any], path: Path) -> Built:
    """The compiled spec, or the SpecError `check` raised (any other error propagates: what
    check accepts, build must build)."""
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        return Built(model=skipgraph.build(path, seed=0))
    except SpecError as exc:
        return Built(error=exc)


def fingerprint(model: Any) -> dict[str, Any]:
    """What a setting can change: modules, code, parameters, outputs (eval and training, same
    weights seed and input) and the training loss."""
    from skipgraph.losses import loss_for
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, *[16] * DIMS, generator=g)
    classes = model.ir.heads[model.main_head].out_channels  # the target fits the seg heads
    y = (torch.rand(2, classes, *[16] * DIMS, generator=g) > 0.5).float()
    with torch.no_grad():
        model.eval()
        eval_out = model(x)
        model.train()
        torch.manual_seed(0)  # dropout draws
        train_out = model(x)
        torch.manual_seed(0)
        loss = loss_for(model)(model(x), y)
    return {"modules": repr(model), "code": model.code + model.train_code,
            "params": sum(p.numel() for p in model.parameters()),
            "outputs": _flat(eval_out) + _flat(train_out), "loss": float(loss)}


def _flat(out: Any) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


def differs(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """Which part of two fingerprints differs, or None."""
    for key in ("modules", "code", "params"):
        if a[key] != b[key]:
            return key
    if len(a["outputs"]) != len(b["outputs"]) or any(
            p.shape != q.shape or not torch.allclose(p, q, atol=1e-6)
            for p, q in zip(a["outputs"], b["outputs"])):
        return "outputs"
    return "loss" if abs(a["loss"] - b["loss"]) > 1e-7 else None


def positioned(error: SpecError) -> bool:
    """Every diagnostic names a file position."""
    return bool(error.diagnostics) and all(d.span is not None and d.span.line
                                           for d in error.diagnostics)
