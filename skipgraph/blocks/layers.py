"""Torch layer factories indexed by ``dims`` (MONAI-style), so no call site branches on 2D/3D;
the builders of the built-in normalisations and activations (:mod:`.options` registers them)."""
from __future__ import annotations

from typing import Any

import torch.nn as nn
import torch.nn.functional as F

from .options import ACTS, NORMS, act_choice, norm_choice

__all__ = ["by_dims", "CONV", "CONV_T", "MAX_POOL", "AVG_POOL", "make_norm", "make_act",
           "in_place_act", "output_free_backward", "make_dropout", "interp_mode"]


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
SPATIAL_DROPOUT = by_dims("spatial dropout", nn.Dropout2d, nn.Dropout3d)
_BATCH = by_dims("batch norm", nn.BatchNorm2d, nn.BatchNorm3d)
_INSTANCE = by_dims("instance norm", nn.InstanceNorm2d, nn.InstanceNorm3d)


def interp_mode(mode: str, dims: int) -> str:
    """``bilinear`` means trilinear in 3D."""
    return "trilinear" if mode == "bilinear" and dims == 3 else mode


# --- the built-in normalisations and activations (registered in .options) --------------------

def none_norm(dims: int, channels: int) -> None:
    return None


def batch_norm(dims: int, channels: int, **kw: Any) -> nn.Module:
    return _BATCH[dims](channels, **kw)


def instance_norm(dims: int, channels: int, **kw: Any) -> nn.Module:
    return _INSTANCE[dims](channels, **kw)


def group_norm(dims: int, channels: int, groups: int = 8, **kw: Any) -> nn.Module:
    return nn.GroupNorm(min(groups, channels), channels, **kw)


def layer_norm(dims: int, channels: int, **kw: Any) -> nn.Module:
    return nn.GroupNorm(1, channels, **kw)


def none_act() -> None:
    return None


def relu_act() -> nn.Module:
    return nn.ReLU(inplace=True)


elu_act, leaky_relu_act, prelu_act, gelu_act = nn.ELU, nn.LeakyReLU, nn.PReLU, nn.GELU
silu_act, tanh_act, sigmoid_act = nn.SiLU, nn.Tanh, nn.Sigmoid


def make_norm(setting: Any, dims: int, channels: int) -> nn.Module | None:
    """The normalisation a ``norm:`` setting names, on ``channels`` channels (None: none)."""
    name, options = norm_choice(setting)
    return NORMS.get(name).load_builder()(dims, channels, **options.kwargs())


def make_act(setting: Any) -> nn.Module | None:
    """The activation an ``act:`` setting names (None: none)."""
    name, options = act_choice(setting)
    return ACTS.get(name).load_builder()(**options.kwargs())


def in_place_act(act: nn.Module | None) -> nn.Module | None:
    """``act`` made to overwrite its input (``inplace=True``) where torch's backward reads the
    output instead of the input: ReLU, LeakyReLU with a positive slope and ELU with alpha >= 0
    (MONAI's and nnU-Net's blocks build theirs so); any other activation is returned as it is.

    Only for an activation whose input is a fresh tensor that no other layer reads: a conv's,
    a norm's or a dropout's output, or a residual sum, inside one unit. Outputs are bit for bit
    those of the out-of-place layer, and so are the gradients of ReLU and LeakyReLU (ELU's
    backward from its output rounds differently, at the 1e-6 level, exactly as the peers' in-place
    ELU); it saves one activation-sized buffer."""
    if (isinstance(act, nn.ReLU) or isinstance(act, nn.LeakyReLU) and act.negative_slope > 0
            or isinstance(act, nn.ELU) and act.alpha >= 0):
        act.inplace = True
    return act


_OUTPUT_FREE = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm,
                nn.LayerNorm)


def output_free_backward(layer: nn.Module) -> bool:
    """Whether ``layer``'s backward leaves its output alone (convolutions and the batch,
    instance, group and layer norms save their input and statistics), so a unit may add a
    shortcut into that output in place."""
    return isinstance(layer, _OUTPUT_FREE)
def make_dropout(dims: int, rate: float, spatial: bool) -> nn.Module | None:
    """Dropout of single values (``nn.Dropout``) or of whole channels (``Dropout2d`` /
    ``Dropout3d`` for ``(N, C, *spatial)`` with ``dims`` spatial axes); None for rate 0 (torch
    draws no random numbers for it either)."""
    if not rate:
        return None
    return (SPATIAL_DROPOUT[dims] if spatial else nn.Dropout)(rate)
