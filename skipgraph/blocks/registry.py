"""The block registry: names -> (parameter model, channel rule, torch builder). Torch-free.

A block type is registered once with its pydantic parameter model; the model's
``out_channels(in_channels, width)`` states the block's channel rule, so inference, summaries and
the renderer never switch on block type. The torch class is named by ``"module:qualname"`` (loaded
only when compiling) or given directly.

Users extend skipgraph by importing their own module that calls :func:`register_block`
(``skipgraph build --import mypkg.blocks``); nothing named inside a spec is ever imported.

Example:
    >>> from pydantic import Field
    >>> class MyParams(BlockParams):
    ...     depth: int = Field(2, ge=1)
    >>> register_block("mine", MyParams, "mypkg.blocks:MyBlock")  # doctest: +SKIP
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import DiagnosticSink, did_you_mean

__all__ = ["BlockParams", "BlockDef", "RegistryError", "register_block", "get_block",
           "list_blocks", "validate_block_config", "parse_block_config", "merge_block"]


class RegistryError(ValueError):
    """Registering a name twice, or asking for one that does not exist."""


class BlockParams(BaseModel):
    """Base of every block's parameter model. Override :meth:`out_channels` if it is not ``width``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str

    # fields that may hold expressions over params, index variables and `width` (the node's
    # width), evaluated per node at expansion: name -> minimum (a list field: per item)
    expressions: ClassVar[dict[str, int]] = {}

    def out_channels(self, in_channels: int, width: int) -> int:
        """Output channels for ``in_channels`` and the spec's ``width``; raises ValueError
        where the block cannot give them (reported at the node)."""
        return width

    def levels_down(self) -> int:
        """Levels the block itself goes down (log2 of its stride): its node sits at the level of
        its output and its inputs arrive that many levels higher (ResNet's strided stages)."""
        return 0

    def note(self) -> str:
        """What drawings and the IR printout add to the block's type: a repeat count, a
        stride (``x3 /2``); empty when there is nothing to add."""
        return ""

    def resolve(self, evaluate: Callable[[Any, tuple, int], Any]) -> "BlockParams | None":
        """A copy with the expression fields evaluated by ``evaluate(value, path, minimum)``
        (``path`` is the field, plus the item's index in a list); None if one failed.
        Raises pydantic's ValidationError when a value breaks the field's own rule."""
        values: dict[str, Any] = {}
        for name, minimum in self.expressions.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, list):
                value = [evaluate(v, (name, k), minimum) for k, v in enumerate(value)]
                failed = None in value
            else:
                value = evaluate(value, (name,), minimum)
                failed = value is None
            if failed:
                return None
            values[name] = value
        if not values:
            return self
        return type(self).model_validate({**self.model_dump(), **values})

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        """What stops this block from being built with these channels (group norm groups that
        do not divide them, a kernel with the wrong number of axes), so that `check` reports
        what `build` would raise; override to add a block's own rules."""
        from ..fields.axes import check_axes
        from .options import channel_problem
        found = [channel_problem(getattr(self, "norm", "none"), getattr(self, "act", "none"),
                                 out_channels)]
        kernel = getattr(self, "kernel", None)
        if isinstance(kernel, tuple):
            found.append(check_axes(kernel, dims) and f"kernel: {check_axes(kernel, dims)}")
        return [p for p in found if p]

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Parameters the block will allocate, for the resource guard (an upper-bound-ish
        estimate is enough; override for exactness)."""
        kernel = getattr(self, "kernel", 3)
        layers = getattr(self, "convs", getattr(self, "layers", 1))
        from ..fields.axes import volume
        return volume(kernel, dims) * (in_channels + (layers - 1) * out_channels) * out_channels


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: type[BlockParams]
    builder: str | Callable[..., Any]  # "module:qualname" or the class itself
    description: str = ""

    def load_builder(self) -> Callable[..., Any]:
        if not isinstance(self.builder, str):
            return self.builder
        module, _, qualname = self.builder.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj

    @property
    def origin(self) -> str:
        if isinstance(self.builder, str):
            return self.builder
        return f"{self.builder.__module__}:{self.builder.__qualname__}"


_BLOCKS: dict[str, BlockDef] = {}  # block type name -> definition


def register_block(name: str, params: type[BlockParams], builder: str | Callable[..., Any],
                   description: str = "", replace: bool = False) -> BlockDef:
    """Add a block type; a duplicate name is an error unless ``replace=True``."""
    if not name.isidentifier():
        raise RegistryError(f"block name `{name}` must be an identifier")
    new = BlockDef(name, params, builder, description)
    old = _BLOCKS.get(name)
    if old is not None and not replace and old.origin != new.origin:
        raise RegistryError(f"block `{name}` is already registered by {old.origin}; "
                            f"{new.origin} would replace it (pass replace=True to do so)")
    _BLOCKS[name] = new
    return new


def get_block(name: str) -> BlockDef:
    _ensure_builtins()
    if name not in _BLOCKS:
        raise RegistryError(f"unknown block type `{name}`; "
                            + (did_you_mean(name, _BLOCKS) or ""))
    return _BLOCKS[name]


def list_blocks(pattern: str = "*") -> list[BlockDef]:
    _ensure_builtins()
    return [_BLOCKS[n] for n in sorted(_BLOCKS) if fnmatch.fnmatch(n, pattern)]


def merge_block(defaults: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """A family's block mapping over ``defaults.block``. Where the family names another block
    type, the defaults' settings that type does not have are left out (they were written for
    the default type: a `resblock` stage keeps the default `norm` and `act` but not `order`);
    the family's own settings are always checked."""
    base_type, own_type = defaults.get("type", "conv"), written.get("type")
    if own_type is None or own_type == base_type or not isinstance(own_type, str):
        return {**defaults, **written}
    try:
        fields = get_block(own_type).params.model_fields
    except RegistryError:
        return {**defaults, **written}  # the unknown type is reported by validation
    return {**{k: v for k, v in defaults.items() if k in fields}, **written}


def parse_block_config(config: dict[str, Any]) -> BlockParams:
    """A merged block mapping -> its validated parameter model (raises on bad input)."""
    return get_block(config.get("type", "conv")).params.model_validate(
        {"type": "conv", **config})


def validate_block_config(config: dict[str, Any], pos: Any, path: tuple,
                          sink: DiagnosticSink) -> None:
    """Check a merged block mapping and report problems at their source positions."""
    name = config.get("type", "conv")
    if not isinstance(name, str):
        sink.error("bad-type", f"block `type` must be a name, got {name!r}",
                   pos.span(path + ("type",)), key=".".join(map(str, path + ("type",))))
        return
    try:
        block = get_block(name)
    except RegistryError:
        _ensure_builtins()
        sink.error("unknown-block", f"unknown block type `{name}`", pos.span(path + ("type",)),
                   hint=did_you_mean(name, _BLOCKS), key=".".join(map(str, path + ("type",))))
        return
    try:
        block.params.model_validate({"type": name, **config})
    except ValidationError as exc:
        for err in exc.errors():
            loc = path + tuple(s for s in err["loc"] if isinstance(s, str) and s in config)
            extra = err["type"] == "extra_forbidden"
            hint = did_you_mean(str(err["loc"][-1]), block.params.model_fields) if extra else None
            code = "unknown-key" if extra else ("bad-type" if "type" in err["type"]
                                                else "bad-value")
            msg = f"unknown key `{err['loc'][-1]}` for block `{name}`" if extra else \
                f"block `{name}`: {err['msg'].removeprefix('Value error, ')}"
            sink.error(code, msg, _block_span(pos, loc), hint=hint,
                       key=".".join(map(str, loc)))


def _block_span(pos: Any, loc: tuple):
    """A key merged in from ``defaults.block`` is reported where it was written."""
    if tuple(loc) in pos.values or len(loc) < 2:
        return pos.span(loc)
    fallback = ("defaults", "block") + tuple(loc[-1:])
    return pos.span(fallback) if fallback in pos.values else pos.span(loc)


def _ensure_builtins() -> None:
    if "conv" not in _BLOCKS:
        importlib.import_module("skipgraph.blocks.builtin")
