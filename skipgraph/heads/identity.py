"""``type: identity`` heads (torch-free): the node's output is the network's output, no conv.

For networks whose last block already gives the classes (MONAI's UNet ends in a transposed
conv to ``out_channels``); the node's width must equal ``out``, which `check` verifies.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from ..fields.types import ExprText
from . import HeadType, register_head

__all__ = ["IdentityHead"]


class IdentityHead(HeadType):
    """The node's output itself [-> act]: no parameters."""

    type: Literal["identity"]
    """The node's output as the head (no conv)."""
    out: ExprText = "classes"
    """Output channels: the node's width, which must equal it."""
    act: Literal["none", "sigmoid", "softmax"] = "none"
    """Output activation: raw logits (`none`), `sigmoid` or `softmax` over channels."""

    target: Literal["maxpool", "avgpool", "nearest"] = "maxpool"
    """How a loss shrinks the full-size target for a head on a low-resolution node."""

    expressions: ClassVar[dict[str, int]] = {"out": 1}

    def out_channels(self) -> int:
        return int(self.out)

    def problems(self, in_channels: int) -> list[str]:
        if in_channels != self.out_channels():
            return [f"an identity head passes its node's {in_channels} channels through, but "
                    f"`out` is {self.out_channels()}: give the node that width"]
        return []

    def activation(self) -> str:
        return self.act

    def target_rule(self) -> str:
        return self.target

    def term(self, node: str, level: int) -> str:
        return node if self.act == "none" else f"{self.act}({node})"

    def drawing(self, level: int, scale: Any = None) -> tuple[str, list[str]]:
        return str(self.out_channels()), [] if self.act == "none" else [self.act]

    def estimate_params(self, dims: int, in_channels: int) -> int:
        return 0


register_head("identity", IdentityHead, "skipgraph.heads.identity_modules:IdentityHeadBuilder",
              "the node's output itself [-> act], no conv")
