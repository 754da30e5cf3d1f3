"""Checks of data and a training set-up against a model before the first step: each failure a
:class:`DataError` that says what to change (the option, the file or the spec), instead of a
traceback minutes later. :func:`check_fit` is the one data-vs-model check (training,
validation and evaluation, images and volumes); :func:`check_training_setup` adds what
training on 2D crops needs."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..compile import SkipGraphModule
from ..compile.batch_norm import batch_norm_problems
from ..graph.estimate import check_budget
from ..graph.contract import head_shape, per_axis, total_stride
from ..losses import loss_min_size
from .data import SegmentationFolder
from .errors import DataError

__all__ = ["check_fit", "model_classes", "check_training_setup", "batch_norm_problems",
           "step_batch", "crop_stride"]


def model_classes(model: SkipGraphModule) -> int:
    """The label-map classes K a model outputs (its eval head's channels)."""
    return model.ir.heads[model.main_head].out_channels


def check_fit(model: SkipGraphModule, data: Any, where: str | Path,
              trained: bool = False) -> None:
    """The data's spatial dimensions and channels are what the model takes, or a DataError
    naming ``where`` and the fix. ``data``: an image folder (``spatial_dims``) or a volume
    folder (``dims``), with ``channels``. ``trained``: the model is a checkpoint (``evaluate``),
    whose dims and channels are fixed, so the fix never names ``--set``."""
    ir = model.ir
    dims = data.spatial_dims if hasattr(data, "spatial_dims") else data.dims
    if ir.dims != dims:
        fix = (f"evaluate on {ir.dims}D data, or a model trained on {dims}D data" if trained
               else f"use --set dims={dims} if the spec declares it, or {ir.dims}D data")
        raise DataError(f"{where}: the data is {dims}D but {ir.name} is {ir.dims}D; {fix}")
    if ir.in_channels != data.channels:
        alpha = getattr(data, "has_alpha", False) and data.channels - 1 == ir.in_channels
        if trained:
            fix = ("add --drop-alpha: the images have an alpha channel" if alpha else
                   f"evaluate a model trained on {data.channels}-channel images")
        else:
            fix = f"add --set in_channels={data.channels}" + (
                " (or --drop-alpha: the images have an alpha channel)" if alpha else "")
        raise DataError(f"{where}: images have {data.channels} channel(s) but the model "
                        f"takes {ir.in_channels}; {fix}")


def crop_stride(ir) -> int:
    """What a square ``--crop`` must be a multiple of: the total stride (on an anisotropic
    grid the least common multiple of its axes)."""
    return math.lcm(*per_axis(total_stride(ir), ir.dims))


def check_training_setup(model: SkipGraphModule, train_set: SegmentationFolder, crop: int,
                         batch: int, world: int = 1) -> None:
    """Raise DataError unless ``model`` can train on crops of ``train_set`` at ``batch``."""
    ir = model.ir
    check_fit(model, train_set, train_set.root)
    stride = crop_stride(ir)
    if crop % stride and not ir.pad_input:
        lower, upper = crop // stride * stride, -(-crop // stride) * stride
        options = " or ".join(f"--crop {c}" for c in (lower, upper) if c > 0)
        raise DataError(f"--crop {crop} is not a multiple of the total stride {stride} of "
                        f"{ir.name}: use {options}, or set `input: {{pad: true}}` in the spec")
    problems = batch_norm_problems(model, crop, step_batch(batch, len(train_set), world))
    if problems:
        raise DataError(problems[0])
    _check_loss_sizes(model, crop)
    check_budget(ir, input_shape=[batch, ir.in_channels] + [crop] * ir.dims, training=True)


def step_batch(batch: int, samples: int, world: int = 1) -> int:
    """The smallest number of images in one process's training step (the loader drops the
    last incomplete batch when there is more than one)."""
    per_process = -(-samples // world)
    return batch if per_process > batch else per_process


def _check_loss_sizes(model: SkipGraphModule, crop: int) -> None:
    """A loss that needs larger images (MS-SSIM's five scales) than a head gets from ``crop``."""
    ir = model.ir
    need = loss_min_size(ir.loss.get("seg", "bce_dice"))
    if not need:
        return
    for head in ir.heads.values():
        if not head.pixelwise:
            continue
        factor = max(per_axis(head.stride, ir.dims))
        side = min(head_shape([crop] * ir.dims, head.stride))
        if side < need:
            stride = crop_stride(ir)
            fix = math.ceil(need * factor / stride) * stride
            raise DataError(
                f"{ir.name}: its loss `{ir.loss['seg']}` needs outputs of at least {need} px "
                f"a side, but head {head.id} gets {side} px from --crop {crop}: use --crop "
                f"{fix} or larger, or another loss in the spec's `loss: {{seg: ...}}`")
