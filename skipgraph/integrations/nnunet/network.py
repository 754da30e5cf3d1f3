"""A skipgraph spec as the network of an nnU-Net v2 plans file.

nnU-Net builds its network with ``pydoc.locate(network_class_name)(input_channels=...,
num_classes=..., deep_supervision=..., **arch_kwargs)``; a plans file written by
``skipgraph nnunet plans`` names :class:`SkipGraphNetwork` there, with ``arch_kwargs``
``{"spec": ..., "params": {...}, "strides": [...]}``.

How the spec's heads become nnU-Net's outputs (its loss wants a list, highest resolution first,
one target per output at the scales the trainer derives):

- Every ``seg`` head is built, whatever the deep-supervision flag (nnU-Net builds the network
  without deep supervision for inference and loads the weights trained with it, as nnU-Net's own
  U-Net keeps all its segmentation layers).
- The first output is the spec's main head: its ``output: {head: ...}``, or for an ensemble
  output the last of the ensemble's heads (nnU-Net ensembles folds itself). The other heads
  follow by resolution, highest first, and within one resolution from the deepest decoder
  column down (UNet++: ``X[0,4], X[0,3], X[0,2], X[0,1]``; nnU-Net's U-Net: ``D[0], D[1], ...``).
- A head at level ``l`` has the scale ``1 / prod(strides[1..l])`` per axis; a full-size head
  (level 0, or ``resize: full``) has scale 1. ``nnUNetTrainerSkipGraph`` hands these scales to
  nnU-Net's target down-sampling, so UNet++'s four full-resolution heads get four full-size
  targets.
- Heads output logits: nnU-Net's losses apply softmax (or sigmoid for regions) themselves, so
  a head's ``act`` is dropped. Classification heads (``type: cgm``) are refused.
- Without deep supervision the network returns the main head's tensor, as nnU-Net expects.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ... import load_ir
from ...graph.ir import IRGraph, IRHead
from ...zoo import resolve_spec_path
from . import NETWORK_CLASS

__all__ = ["SkipGraphNetwork", "NETWORK_CLASS", "nnunet_ir", "output_heads",
           "deep_supervision_scales", "deep_supervision_weights", "he_init"]


def nnunet_ir(spec: str, params: dict[str, Any], input_channels: int | None = None,
              num_classes: int | None = None) -> IRGraph:
    """The spec's IR as nnU-Net trains it: ``in_channels`` / ``classes`` set where the spec
    declares them (and checked where it does not), head activations dropped.

    Raises SpecError for a bad spec or params, ValueError when the spec cannot be an nnU-Net
    network (channels that do not match, a classification head, no segmentation head)."""
    path = resolve_spec_path(spec)
    declared = set(load_ir(path, **params).params)
    params = dict(params)
    if input_channels is not None and "in_channels" in declared:
        params["in_channels"] = input_channels
    if num_classes is not None and "classes" in declared:
        params["classes"] = num_classes
    ir = load_ir(path, **params)
    seg = {k: h for k, h in ir.heads.items() if h.type == "seg"}
    if len(seg) != len(ir.heads):
        raise ValueError(f"{spec}: heads {sorted(set(ir.heads) - set(seg))} are not segmentation "
                         "heads; nnU-Net trains segmentation outputs only")
    if not seg:
        raise ValueError(f"{spec}: no segmentation head")
    if input_channels is not None and ir.in_channels != input_channels:
        raise ValueError(f"{spec} takes {ir.in_channels} input channels, the dataset has "
                         f"{input_channels} (the spec declares no `in_channels` param)")
    wrong = {k: h.out_channels for k, h in seg.items()
             if num_classes is not None and h.out_channels != num_classes}
    if wrong:
        raise ValueError(f"{spec}: heads {wrong} do not output nnU-Net's {num_classes} "
                         "segmentation channels (the spec declares no `classes` param)")
    heads = {k: dataclasses.replace(h, settings=h.settings.model_copy(update={"act": "none"}))
             for k, h in ir.heads.items()}
    return dataclasses.replace(ir, heads=heads)


def output_heads(ir: IRGraph) -> list[str]:
    """The heads in nnU-Net's output order: the main head, then by resolution (highest first),
    deepest decoder column first within a resolution."""
    main = ir.main_head or ir.output_heads[-1]  # output.head (select, list)
    order = list(ir.heads)

    def resolution(h: IRHead) -> int:
        return 0 if h.full_size else h.level

    rest = sorted((k for k in ir.heads if k != main),
                  key=lambda k: (resolution(ir.heads[k]), -order.index(k)))
    return [main] + rest


def deep_supervision_scales(ir: IRGraph, strides: Sequence[Sequence[int]]) -> list[list[float]]:
    """Per output (in :func:`output_heads` order), its size relative to the patch per axis,
    from the plans' per-stage ``strides`` (nnU-Net's ``pool_op_kernel_sizes``)."""
    cum = np.cumprod(np.vstack(strides), axis=0)
    scales = []
    for k in output_heads(ir):
        h = ir.heads[k]
        if not h.full_size and h.level >= len(cum):
            raise ValueError(f"head {k} sits at level {h.level}; the plans have only "
                             f"{len(cum)} stages")
        scales.append([1.0] * cum.shape[1] if h.full_size else [float(v) for v in 1.0 / cum[h.level]])
    return scales


def deep_supervision_weights(ir: IRGraph) -> list[float]:
    """nnU-Net's loss weights generalised to any heads: 2^-l for a head at resolution level
    ``l``, 0 for the lowest resolution when it is below full size (nnU-Net does not supervise its
    lowest output), normalised to sum 1. nnU-Net's U-Net gets exactly nnU-Net's weights; heads
    all at full resolution (UNet++) get equal weights, as in UNet++'s Eq. 2."""
    levels = [0 if ir.heads[k].full_size else ir.heads[k].level for k in output_heads(ir)]
    w = np.array([0.5 ** lv for lv in levels])
    if max(levels) > 0:
        w[np.array(levels) == max(levels)] = 0.0
    return [float(v) for v in w / w.sum()]


def he_init(module: nn.Module, neg_slope: float = 1e-2) -> None:
    """nnU-Net's initialisation (``InitWeights_He(1e-2)``): Kaiming-normal conv weights for
    LeakyReLU, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, a=neg_slope)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)


class _DeepSupervisionFlag:
    """What nnU-Net's trainer toggles: ``network.decoder.deep_supervision``."""

    def __init__(self, enabled: bool):
        self.deep_supervision = enabled


class SkipGraphNetwork(nn.Module):
    """A compiled skipgraph spec with nnU-Net's network interface.

    Args:
        input_channels, num_classes: from nnU-Net (dataset channels, segmentation heads).
        spec: a zoo name (``unet_pp``) or the path of a spec file.
        params: the spec's params (``--set``s), as the plans file stores them.
        strides: the plans' per-stage strides (kept so nnU-Net's trainer can read
            ``pool_op_kernel_sizes``; used for the deep-supervision scales).
        deep_supervision: return every head (a list, see the module docstring) or the main one.

    Input ``(N, input_channels, *patch)``; output ``(N, num_classes, *patch)`` logits, or with
    deep supervision a list of ``(N, num_classes, *patch * scale)``.
    """

    def __init__(self, input_channels: int, num_classes: int, spec: str,
                 params: dict[str, Any] | None = None,
                 strides: Sequence[Sequence[int]] | None = None, deep_supervision: bool = False):
        super().__init__()
        from ...compile import compile_ir
        self.ir = nnunet_ir(spec, dict(params or {}), input_channels, num_classes)
        self.net = compile_ir(self.ir)
        self.heads = output_heads(self.ir)
        self.strides = [list(s) for s in strides] if strides is not None else None
        self.decoder = _DeepSupervisionFlag(deep_supervision)
        # every head from one call, in training and eval alike (nnU-Net validates with them)
        object.__setattr__(self, "_all_heads", self.net.graph_module(training=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        out = self._all_heads(x)
        if not isinstance(out, dict):
            out = {self.heads[0]: out}
        if self.decoder.deep_supervision:
            return [out[k] for k in self.heads]
        return out[self.heads[0]]

    def deep_supervision_scales(self, strides: Sequence[Sequence[int]] | None = None
                                ) -> list[list[float]]:
        return deep_supervision_scales(self.ir, strides if strides is not None else self.strides)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """Called by nnU-Net on every submodule: its He initialisation."""
        he_init(module)
