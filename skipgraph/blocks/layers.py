"""Torch layer factories indexed by ``dims`` (MONAI-style), so no call site branches on 2D/3D."""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn
import torch.nn.functional as F

from .options import ACT_NAMES, NORM_NAMES, resolve_norm, split_option

__all__ = ["by_dims", "CONV", "CONV_T", "MAX_POOL", "AVG_POOL", "make_norm", "make_act",
           "interp_mode"]


class _DimsTable(dict):
    """``TABLE[dims]`` with a clear error instead of a silent wrong class."""

    def __init__(self, what: str, **entries: Any):
        super().__init__({int(k[1]): v for k, v in entries.items()})
        self.what = what

    def __missing__(self, dims: Any) -> Any:
        raise ValueError(f"{self.what} exists for dims {sorted(self)}, not {dims!r}")


def by_dims(what: str, d2: Any, d3: Any) -> _DimsTable:
    return _DimsTable(what, d2=d2, d3=d3)


CONV = by_dims("convolution", nn.Conv2d, nn.Conv3d)
CONV_T = by_dims("transposed convolution", nn.ConvTranspose2d, nn.ConvTranspose3d)
MAX_POOL = by_dims("max-pool", F.max_pool2d, F.max_pool3d)
AVG_POOL = by_dims("avg-pool", F.avg_pool2d, F.avg_pool3d)
_BATCH = by_dims("batch norm", nn.BatchNorm2d, nn.BatchNorm3d)
_INSTANCE = by_dims("instance norm", nn.InstanceNorm2d, nn.InstanceNorm3d)


def interp_mode(mode: str, dims: int) -> str:
    """``bilinear`` means trilinear in 3D."""
    return "trilinear" if mode == "bilinear" and dims == 3 else mode


_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batch": lambda dims, c, **kw: _BATCH[dims](c, **kw),
    "instance": lambda dims, c, **kw: _INSTANCE[dims](c, **kw),
    "group": lambda dims, c, groups=8, **kw: nn.GroupNorm(min(groups, c), c, **kw),
    "layer": lambda dims, c, **kw: nn.GroupNorm(1, c, **kw),
}
_ACTS: dict[str, Callable[..., nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True), "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
}
assert set(_NORMS) | {"none"} == set(NORM_NAMES) and set(_ACTS) | {"none"} == set(ACT_NAMES)


def make_norm(setting: Any, dims: int, channels: int) -> nn.Module | None:
    name, kwargs = resolve_norm(setting)
    return None if name == "none" else _NORMS[name](dims, channels, **kwargs)


def make_act(setting: Any) -> nn.Module | None:
    name, kwargs = split_option(setting, ACT_NAMES, "activation")
    return None if name == "none" else _ACTS[name](**kwargs)
