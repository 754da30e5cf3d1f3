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

import math
from typing import Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict

from ..registry import Entry, Registry, RegistryError

__all__ = ["BlockParams", "BlockDef", "RegistryError", "register_block", "get_block",
           "list_blocks", "BLOCKS", "merge_block"]


class BlockParams(BaseModel):
    """Base of every block's parameter model. Override :meth:`out_channels` if it is not ``width``."""

    # a string literal under a field is its description (the JSON Schema documents it)
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    type: str
    """The block type: a registered name (`skipgraph blocks` lists them)."""

    # fields that may hold expressions over params, index variables and `width` (the node's
    # width), evaluated per node at expansion: name -> minimum (a list field: per item)
    expressions: ClassVar[dict[str, int]] = {}

    # True where the node's module is built together with its family's other nodes (the
    # stages of one encoder: compile/backbone.py), not by the entry's builder alone
    built_by_family: ClassVar[bool] = False
    # False for a block type only expansion makes (never written in a spec)
    written: ClassVar[bool] = True

    def label(self) -> str:
        """A line drawings add under the node's name (a backbone stage: its encoder)."""
        return ""

    def written_problem(self) -> str | None:
        """Why this block cannot be written in a spec (it is made by expansion), or None."""
        return None

    def out_channels(self, in_channels: int, width: int) -> int:
        """Output channels for ``in_channels`` and the spec's ``width``; raises ValueError
        where the block cannot give them (reported at the node)."""
        return width

    def levels_down(self) -> int:
        """Levels the block itself goes down (log2 of its stride): its node sits at the level of
        its output and its inputs arrive that many levels higher (ResNet's strided stages)."""
        return 0

    def export_side(self) -> int:
        """The smallest map side (positions per axis at the node's level) an export should be
        traced at: torch.export specialises any size that is 1 in the example it traces
        (0/1 specialisation), so a block that derives sizes from its input (windows per axis)
        asks for a side where none of them is 1; 1 (any side) by default."""
        return 1

    def norm_positions(self, shape: Sequence[int]) -> int:
        """Positions per channel its norms see when the node's map has spatial ``shape``
        (BatchNorm's training rule: more than one value per channel in a step); the map's own
        by default, fewer for a block that pools before its norm."""
        return math.prod(shape)

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

    def work_floats(self, positions: int, in_channels: int, out_channels: int) -> int:
        """Floats per sample the block holds besides its output, for ``positions`` positions
        of its map (an attention map: positions^2); counted by the memory guards
        (:mod:`skipgraph.graph.estimate`). 0 for blocks that keep only conv outputs."""
        return 0

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Parameters the block will allocate, for the resource guard (an upper-bound-ish
        estimate is enough; override for exactness)."""
        kernel = getattr(self, "kernel", 3)
        layers = getattr(self, "convs", getattr(self, "layers", 1))
        from ..fields.axes import volume
        return volume(kernel, dims) * (in_channels + (layers - 1) * out_channels) * out_channels


    def estimate_norm_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """The part of :meth:`estimate_params` in the block's norms: what a loop copy whose
        other weights are tied to the first copy's (``tied_to``) still holds of its own. Read
        as the difference with ``norm: none`` (0 for a block without a ``norm`` setting)."""
        if getattr(self, "norm", "none") == "none":
            return 0
        plain = self.model_copy(update={"norm": "none"})
        return max(self.estimate_params(dims, in_channels, out_channels)
                   - plain.estimate_params(dims, in_channels, out_channels), 0)


BlockDef = Entry  # the entry of a block type (its name, settings model and builder)

BLOCKS: Registry[BlockParams] = Registry("block type", "skipgraph.blocks.catalog",
                                         code="unknown-block")


def register_block(name: str, params: type[BlockParams], builder: str | Callable[..., Any],
                   description: str = "", replace: bool = False) -> Entry[BlockParams]:
    """Add a block type (``params.type`` must be ``Literal[name]``); a duplicate name from
    another origin raises :class:`skipgraph.registry.RegistryError` unless ``replace=True``."""
    return BLOCKS.register(name, params, builder, description, replace)


def get_block(name: str) -> Entry[BlockParams]:
    """The entry of block type ``name``; raises RegistryError (did-you-mean) if unknown."""
    return BLOCKS.get(name)


def list_blocks(pattern: str = "*") -> list[Entry[BlockParams]]:
    return BLOCKS.list(pattern)


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
