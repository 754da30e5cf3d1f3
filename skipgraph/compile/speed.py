"""Speed switches for a compiled spec: channels_last, autocast, torch.compile (its CUDA-graph
mode for fixed shapes). Activation checkpointing is chosen at build time
(``skipgraph.build(..., checkpoint=["X"])``) because it changes the generated code."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

__all__ = ["optimize", "AMP_DTYPES"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class _Autocast(nn.Module):
    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x: torch.Tensor) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x)


def optimize(model: nn.Module, *, channels_last: bool = False, amp: str | None = None,
             compile_mode: str | None = None, device: str | torch.device = "cpu"
             ) -> Callable[[torch.Tensor], Any]:
    """A callable running ``model`` with the chosen switches.

    Args:
        channels_last: NHWC / NDHWC memory format for weights (feed inputs the same way).
        amp: ``bf16`` or ``fp16`` autocast (``fp16`` needs a GPU).
        compile_mode: ``default``, ``reduce-overhead`` (CUDA graphs for fixed shapes on a GPU),
            ``max-autotune``; None for eager.
    """
    device = torch.device(device)
    model = model.to(device)
    if channels_last:
        fmt = torch.channels_last if model.ir.dims == 2 else torch.channels_last_3d
        model = model.to(memory_format=fmt)
    runner: nn.Module = model
    if amp is not None:
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, not {amp!r}")
        runner = _Autocast(model, device.type, AMP_DTYPES[amp])
    if compile_mode is not None:
        return torch.compile(runner, mode=None if compile_mode == "default" else compile_mode,
                             fullgraph=True)
    return runner
