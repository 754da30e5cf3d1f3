"""Parameter models of the built-in blocks, registered by name (torch-free)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ..spec.axes import KernelSize
from ..spec.types import KernelExpr
from .options import ACT_NAMES, resolve_norm, split_option
from .registry import BlockParams, register_block

__all__ = ["ConvParams", "RecurrentParams", "ResidualParams", "check_norm", "check_act"]


def check_norm(value: Any) -> Any:
    resolve_norm(value)
    return value


def check_act(value: Any) -> Any:
    split_option(value, ACT_NAMES, "activation")
    return value


def check_odd_kernel(kernel: KernelSize | str) -> KernelSize | str:
    if isinstance(kernel, str):
        return kernel  # an expression (`kernels[i]`): checked per node once evaluated
    if any(k % 2 == 0 for k in ([kernel] if isinstance(kernel, int) else kernel)):
        shown = kernel if isinstance(kernel, int) else list(kernel)
        raise ValueError(f"a size-preserving conv needs an odd kernel, not {shown}")
    return kernel


class ConvParams(BlockParams):
    """A stack of ``convs`` convolutions, each followed by norm and activation.

    ``order`` is ``cna`` (conv -> norm -> act, the usual) or ``can`` (conv -> act -> norm, BiO-Net).
    Dropout, when set, follows each conv unit. Submodules are named ``conv1, norm1, act1, ...``.
    """

    type: Literal["conv"] = "conv"
    convs: int = Field(2, ge=1, le=64)
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = True
    norm: str | dict[str, Any] = "none"
    act: str | dict[str, Any] = "relu"
    order: Literal["cna", "can"] = "cna"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))


class RecurrentParams(BlockParams):
    """RU-Net / R2U-Net units: [1x1 projection] -> ``layers`` RCLs of ``steps`` recurrent steps
    [+ residual]. ``tied``: one conv for W_f and W_r (public code) or two (the paper's
    equation); ``norm_per_step``: a norm per step or one shared (public code)."""

    type: Literal["recurrent"] = "recurrent"
    steps: int = Field(2, ge=0, le=64)
    layers: int = Field(2, ge=1, le=16)
    residual: bool = True
    tied: bool = True
    projection: Literal["first", "shortcut", "none"] = "first"
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = True
    norm: str | dict[str, Any] = "batch"
    act: str | dict[str, Any] = "relu"
    norm_per_step: bool = False

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))


class ResidualParams(BlockParams):
    """ResU-Net units: ``convs`` x (conv -> norm -> act) plus a residual through a projection."""

    type: Literal["residual"] = "residual"
    convs: int = Field(2, ge=1, le=16)
    projection: Literal["first", "shortcut"] = "first"
    kernel: KernelSize | KernelExpr = 3  # an int, one per axis ([1, 3, 3]), or `kernels[i]`
    bias: bool = True
    norm: str | dict[str, Any] = "batch"
    act: str | dict[str, Any] = "relu"

    _norm = field_validator("norm")(classmethod(lambda cls, v: check_norm(v)))
    _act = field_validator("act")(classmethod(lambda cls, v: check_act(v)))
    _kernel = field_validator("kernel")(classmethod(lambda cls, v: check_odd_kernel(v)))


register_block("conv", ConvParams, "skipgraph.blocks.conv:ConvStack",
               "convs x (conv -> norm -> act [-> dropout]), the U-Net family's H(.)")
register_block("recurrent", RecurrentParams, "skipgraph.blocks.recurrent:RecurrentUnit",
               "[1x1 projection] -> RCLs (steps t) [+ residual]: RU-Net / R2U-Net units")
register_block("residual", ResidualParams, "skipgraph.blocks.recurrent:ResidualUnit",
               "convs x (conv -> norm -> act) + projected residual: ResU-Net units")

from . import backbone_params  # noqa: E402,F401  (registers `backbone`, the stage of a timm encoder)
