"""The head-type registry (torch-free): ``type: seg``, ``type: cgm`` and user head types.

A head type is a settings model (a subclass of :class:`HeadType`, validated when the spec is
read) that states its rules: the head's output channels, whether it is a pixel-wise map or an
image-level output, how it is named, printed and drawn, what it gates, and which loss trains it.
Its *contract* is what training and evaluation read of every head, of any type, and nothing
else: ``pixelwise``, :meth:`HeadType.activation` (what its output is: logits or
probabilities), :meth:`HeadType.target_rule` (how a loss shrinks the target for it when it is
smaller than the input) and, for an image-level head, ``loss``.
Its torch side is a builder named by ``"pkg.module:Builder"`` (see
:mod:`skipgraph.heads.modules`), imported only when compiling.

Example:
    >>> from skipgraph.heads import get_head
    >>> get_head("seg").params(on="X[0,j]").pixelwise
    True
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

from pydantic import Field

from ..registry import Entry, Registry, RegistryError
from ..fields.types import ExprText, SpecModel

__all__ = ["HeadType", "HEADS", "register_head", "get_head", "list_heads", "RegistryError",
           "ACTIVATIONS", "TARGET_RULES"]

# evaluate(field, minimum) -> the int value of an expression field, or None (error reported)
Evaluate = Callable[[str, int], "int | None"]

# what a head's output may be (HeadType.activation): logits, or probabilities of either kind
ACTIVATIONS = ("none", "sigmoid", "softmax")
# how a loss brings a full-size target to a smaller head (HeadType.target_rule; the torch side
# is skipgraph.losses.resize_target)
TARGET_RULES = ("maxpool", "avgpool", "nearest")


class HeadType(SpecModel):
    """Base of every head type's settings. Subclasses set ``type: Literal[name]``, add their
    fields and override the rules below that differ."""

    type: str
    """The head type: `seg`, `cgm` or a registered one."""
    on: str
    """Node pattern the head sits on, e.g. `X[0,j]`."""
    if_: ExprText | None = Field(None, alias="if", description="A condition over params and "
                                 "index variables; a head exists only where it holds.")

    # True: a map (N, C, *spatial) trained by the spec's `loss.seg`; False: an image-level
    # output (N, K) trained by the registered loss named in `loss`.
    pixelwise: ClassVar[bool] = True
    loss: ClassVar[str | None] = None
    # fields holding expressions, evaluated once at expansion: name -> minimum
    expressions: ClassVar[dict[str, int]] = {}

    def resolve(self, evaluate: Evaluate) -> "HeadType | None":
        """A copy with every expression field evaluated (None if one fails)."""
        values = {name: evaluate(name, minimum) for name, minimum in self.expressions.items()}
        if None in values.values():
            return None
        return self.model_copy(update=values)

    def out_channels(self) -> int:
        raise NotImplementedError

    # --- the contract training and evaluation read (graph/validate.py checks its values) ---
    def activation(self) -> str:
        """What the head's output (N, C, ...) is, one of :data:`ACTIVATIONS`: ``none``
        (logits, read by :mod:`skipgraph.label_rule`: a sigmoid for one channel, a softmax for
        more), ``sigmoid`` or ``softmax`` (probabilities). Default: ``none``."""
        return "none"

    def target_rule(self) -> str:
        """How a loss shrinks the full-size target for this head when its output is smaller
        than the input, one of :data:`TARGET_RULES`. Default: ``maxpool`` (UNet#: a pixel is
        foreground if any pixel under it is)."""
        return "maxpool"

    def head_id(self, family: str, node: str) -> str:
        """The head's id in the IR (what ``prune``, ``output.head`` and losses name)."""
        return node

    def module_prefix(self, family: str) -> str:
        """Submodule name prefix (``head`` -> ``head_X0_4``): it fixes state_dict keys."""
        return "head"

    def full_size(self, level: int) -> bool:
        """Whether the output has the input's spatial size."""
        return level == 0

    def gating(self) -> str:
        """Which pixel-wise heads this head's decision gates: ``none``, ``all`` or ``same``."""
        return "none"

    def problems(self, in_channels: int) -> list[str]:
        """What stops this head from sitting on a node of ``in_channels`` channels (checked
        by `check`); none by default."""
        return []

    def term(self, node: str, level: int) -> str:
        """The head in the IR printout (``conv1x1(X[0,4])``)."""
        raise NotImplementedError

    def drawing(self, level: int, scale: Any = None) -> tuple[str, list[str]]:
        """The drawn box: its title and extra lines. ``scale``: how much smaller than the
        input the head's level is (an int, or one factor per axis on an anisotropic grid;
        None: ``2**level``)."""
        return str(self.out_channels()), []

    def estimate_params(self, dims: int, in_channels: int) -> int:
        return in_channels * self.out_channels()


HEADS: Registry[HeadType] = Registry("head type", "skipgraph.heads.builtin")


def register_head(name: str, params: type[HeadType], builder: str | Callable[..., Any],
                  description: str = "", replace: bool = False) -> Entry[HeadType]:
    """Add a head type (``params.type`` must be ``Literal[name]``)."""
    return HEADS.register(name, params, builder, description, replace)


def get_head(name: str) -> Entry[HeadType]:
    return HEADS.get(name)


def list_heads(pattern: str = "*") -> list[Entry[HeadType]]:
    return HEADS.list(pattern)
