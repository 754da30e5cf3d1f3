"""Speed switches for a compiled spec: BatchNorm folding for inference, channels_last,
autocast, torch.compile (its CUDA-graph mode for fixed shapes). Activation checkpointing is
chosen at build time (``skipgraph.build(..., recompute=["X"])``) because it changes the
generated code."""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..blocks.layers import by_dims

__all__ = ["optimize", "fold_batchnorm", "AMP_DTYPES", "amp_dtype", "memory_format"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_MEMORY_FORMATS = by_dims("channels-last memory format", torch.channels_last,
                          torch.channels_last_3d)


def amp_dtype(name: str | None) -> torch.dtype | None:
    """``bf16`` / ``fp16`` -> the autocast dtype; None -> None (no autocast)."""
    if name is None:
        return None
    if name not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, not {name!r}")
    return AMP_DTYPES[name]


def memory_format(dims: int) -> torch.memory_format:
    """The channels-last format for ``dims`` spatial dims: ``channels_last`` (NHWC, 4-d
    tensors) in 2D, ``channels_last_3d`` (NDHWC, 5-d) in 3D."""
    return _MEMORY_FORMATS[dims]


class _Autocast(nn.Module):
    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x: torch.Tensor) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` (in eval mode) in which every convolution directly followed
    by a BatchNorm (conv -> norm -> act blocks, transposed convs included) is one convolution
    with the norm's running statistics and affine folded into its weights and bias. Blocks that
    normalise after the activation (BiO-Net's ``order: can``) keep their norm layers. The copy
    computes the same function up to rounding, with fewer kernels and less memory traffic; it
    cannot be trained or saved as a checkpoint (its norm layers are gone)."""
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (call model.eval()): in "
                         "training BatchNorm uses batch statistics, which cannot be folded")
    folded = copy.deepcopy(model)
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, norm = seq._modules[a], seq._modules[b]
            if (isinstance(conv, _ConvNd) and isinstance(norm, _BatchNorm)
                    and norm.running_mean is not None):
                seq._modules[a] = fuse_conv_bn_eval(conv, norm,
                                                    transpose=isinstance(conv, _ConvTransposeNd))
                seq._modules[b] = nn.Identity()
    folded.norms_folded = True
    return folded


def optimize(model: nn.Module, *, channels_last: bool = False, amp: str | None = None,
             compile_mode: str | None = None, fold_bn: bool = False,
             device: str | torch.device = "cpu") -> Callable[[torch.Tensor], Any]:
    """A callable running ``model`` with the chosen switches.

    Args:
        fold_bn: fold BatchNorm into the preceding convolutions (inference, eval mode only;
            the callable runs a folded copy and ``model`` itself is left as it is).
        channels_last: NHWC / NDHWC memory format for weights (feed inputs the same way).
        amp: ``bf16`` or ``fp16`` autocast (``fp16`` needs a GPU).
        compile_mode: ``default``, ``reduce-overhead`` (CUDA graphs for fixed shapes on a GPU),
            ``max-autotune``; None for eager.
    """
    device = torch.device(device)
    if fold_bn:
        model = fold_batchnorm(model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=memory_format(model.ir.dims))
    runner: nn.Module = model
    dtype = amp_dtype(amp)
    if dtype is not None:
        runner = _Autocast(model, device.type, dtype)
    if compile_mode is not None:
        return torch.compile(runner, mode=None if compile_mode == "default" else compile_mode,
                             fullgraph=True)
    return runner
