"""Segmentation losses of the U-Net-family papers and the deep-supervision combination.

All segmentation losses take *probabilities* ``p`` (the zoo's heads end in a sigmoid, as in the
papers), shape ``(N, C, *spatial)`` with values in [0, 1], and binary targets ``y`` of the same
shape (0/1 floats), and return a 0-dim tensor (a unitless loss, lower is better). They raise
whatever torch raises for mismatched shapes (``ValueError`` / ``RuntimeError``). Names in
:data:`SEG_LOSSES` are what a spec's ``loss: {seg: NAME}`` refers to.

- ``bce_dice`` (UNet++ Eq. 2): binary cross-entropy + soft Dice (smooth 1, sums over the batch,
  as the authors' Keras code).
- ``focal_dice_lovasz`` (UNet# Eq. 2): 0.5 focal (alpha 0.25, gamma 2) + Laplace-smoothed Dice
  (+1) + 0.5 Lovasz hinge (per image, on the logits ``log(p / (1 - p))``).
- ``focal_msssim_iou`` (UNet3+): focal + (1 - MS-SSIM) + IoU loss; MS-SSIM comes from the
  ``pytorch-msssim`` package (5 scales: images must be larger than 160 px).
- :func:`cgm_bce`: BCE of a CGM's 2-way output against "the image contains the object".
- :class:`DeepSupervisionLoss`: the loss of every head (targets brought to each head's
  resolution by its ``target`` rule), combined as a weighted sum (UNet++) or a mean (UNet#).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks.layers import AVG_POOL, MAX_POOL
from .graph.ir import IRGraph
from .loss_registry import LOSSES

__all__ = ["bce", "soft_dice", "focal", "iou_loss", "lovasz_hinge", "ms_ssim_loss", "bce_dice",
           "focal_dice_lovasz", "focal_msssim_iou", "cgm_bce", "SEG_LOSSES",
           "DeepSupervisionLoss", "resize_target", "loss_for"]

_EPS = 1e-7
SegLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy, mean over every element (``p`` clamped to [1e-7, 1 - 1e-7])."""
    return F.binary_cross_entropy(p.clamp(_EPS, 1 - _EPS), y)


def soft_dice(p: torch.Tensor, y: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s), sums over the whole batch."""
    inter = (p * y).sum()
    return 1 - (2 * inter + smooth) / (p.sum() + y.sum() + smooth)


def focal(p: torch.Tensor, y: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
          ) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017), mean over pixels."""
    p = p.clamp(_EPS, 1 - _EPS)
    pos = -alpha * (1 - p) ** gamma * y * torch.log(p)
    neg = -(1 - alpha) * p ** gamma * (1 - y) * torch.log(1 - p)
    return (pos + neg).mean()


def iou_loss(p: torch.Tensor, y: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft IoU (Jaccard) loss, 1 - (sum(p y) + s) / (sum(p) + sum(y) - sum(p y) + s), sums
    over the whole batch (UNet3+'s hybrid loss)."""
    inter = (p * y).sum()
    return 1 - (inter + smooth) / (p.sum() + y.sum() - inter + smooth)


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_hinge(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge (Berman et al. 2018; Yu & Blaschko) per image, averaged over the batch."""
    logits = torch.logit(p.clamp(_EPS, 1 - _EPS))
    losses = []
    for lg, gt in zip(logits.flatten(1), y.flatten(1)):
        errors = 1 - lg * (2 * gt - 1)
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(F.relu(errors_sorted), _lovasz_grad(gt[perm])))
    return torch.stack(losses).mean()


def ms_ssim_loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (5 scales, data range 1): 2D ``(N, C, H, W)`` larger than 160 px per side.

    Raises:
        MissingExtraError: ``pytorch-msssim`` is not installed (``pip install
            "skipgraph[losses]"``).
    """
    from .extras import require
    ms_ssim = require("pytorch_msssim").ms_ssim
    return 1 - ms_ssim(p, y, data_range=1.0, size_average=True)


def bce_dice(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """UNet++'s per-head loss (Eq. 2): :func:`bce` + :func:`soft_dice`."""
    return bce(p, y) + soft_dice(p, y)


def focal_dice_lovasz(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """UNet#'s per-head loss: 0.5 :func:`focal` + :func:`soft_dice` (+1) + 0.5
    :func:`lovasz_hinge`."""
    return 0.5 * focal(p, y) + soft_dice(p, y, smooth=1.0) + 0.5 * lovasz_hinge(p, y)


def focal_msssim_iou(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """UNet3+'s hybrid loss: :func:`focal` + :func:`ms_ssim_loss` + :func:`iou_loss` (needs the
    ``losses`` extra)."""
    return focal(p, y) + ms_ssim_loss(p, y) + iou_loss(p, y)


def cgm_bce(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE of a CGM's ``(N, 2)`` probabilities against one-hot [absent, present] of each target
    image (present: any foreground pixel in ``y``, ``(N, C, *spatial)``)."""
    present = (y.flatten(1).amax(dim=1) > 0).to(probs.dtype)
    return bce(probs, torch.stack([1 - present, present], dim=1))


# name -> pixel-wise loss, as a spec's `loss: {seg: NAME}` refers to it (the registered ones,
# see skipgraph.loss_registry; this module's functions are their builders)
SEG_LOSSES: dict[str, SegLoss] = {e.name: e.load_builder() for e in map(LOSSES.get, LOSSES.names())
                                  if e.params.input == "pixel"}

# a head's `target` rule -> how a full-size target is shrunk by `factor` (as (y, factor, dims))
_TARGET_RULES: dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "maxpool": lambda y, f, dims: MAX_POOL[dims](y, kernel_size=f, stride=f),
    "avgpool": lambda y, f, dims: AVG_POOL[dims](y, kernel_size=f, stride=f),
    "nearest": lambda y, f, dims: F.interpolate(y, scale_factor=1 / f, mode="nearest"),
}


def resize_target(y: torch.Tensor, factor: int, rule: str, dims: int) -> torch.Tensor:
    """Bring a full-size target to a head ``factor`` times smaller (``maxpool``: a pixel is
    foreground if any pixel under it is, as UNet# compares its low-resolution heads)."""
    return y if factor == 1 else _TARGET_RULES[rule](y, factor, dims)


class DeepSupervisionLoss(nn.Module):
    """The loss of every head the model returns in training, combined.

    Args:
        ir: the model's IR (``model.ir``): it says each head's resolution and target rule.
        seg: a name from :data:`SEG_LOSSES` or a callable ``(p, y) -> scalar``: the loss of
            every pixel-wise head.
        combine: ``sum`` (UNet++: weighted sum, weights 1) or ``mean`` (UNet#).
        weights: per pixel-wise head, in ``model.heads`` order (default all 1).
        cgm_weight: weight of each image-level head's loss (the registered loss its head type
            names: a CGM's BCE).

    Raises:
        ValueError: an unknown ``seg`` name or ``combine`` mode.
    """

    def __init__(self, ir: IRGraph, seg: str | SegLoss = "bce_dice", combine: str = "sum",
                 weights: Sequence[float] | None = None, cgm_weight: float = 1.0):
        super().__init__()
        if isinstance(seg, str) and seg not in SEG_LOSSES:
            raise ValueError(f"unknown loss `{seg}`; known: {sorted(SEG_LOSSES)}")
        if combine not in ("sum", "mean"):
            raise ValueError(f"combine must be `sum` or `mean`, not `{combine}`")
        self.ir = ir
        self.seg = SEG_LOSSES[seg] if isinstance(seg, str) else seg
        self.combine = combine
        seg_heads = [h for h in ir.heads.values() if h.pixelwise]
        self.weights = dict(zip([h.id for h in seg_heads], weights or [1.0] * len(seg_heads)))
        self.cgm_weight = cgm_weight
        self.image_losses = {h.id: LOSSES.get(h.settings.loss).load_builder()
                             for h in ir.heads.values() if not h.pixelwise}

    def forward(self, outputs: Mapping[str, torch.Tensor] | torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        """The combined loss, a 0-dim tensor.

        Args:
            outputs: what the model returns in training mode: a dict by head id, or the tensor
                of a one-head model.
            y: the full-size binary target ``(N, C, *spatial)``; it is shrunk for each
                low-resolution head by that head's ``target`` rule.

        Raises:
            KeyError: ``outputs`` names a head the IR does not have.
        """
        if isinstance(outputs, torch.Tensor):
            outputs = {next(iter(self.weights)): outputs}
        terms = []
        for head_id, out in outputs.items():
            head = self.ir.heads[head_id]
            if not head.pixelwise:
                terms.append(self.cgm_weight * self.image_losses[head_id](out, y))
                continue
            target = resize_target(y, head.stride, head.settings.target, self.ir.dims)
            terms.append(self.weights[head_id] * self.seg(out, target))
        total = torch.stack(terms).sum()
        return total / len(terms) if self.combine == "mean" else total


def loss_for(model: nn.Module) -> DeepSupervisionLoss:
    """The loss a compiled spec declares in its ``loss:`` section, for every head ``model``
    returns in training mode (``loss_for(model)(model(x), y)``)."""
    return DeepSupervisionLoss(model.ir, **model.ir.loss)
