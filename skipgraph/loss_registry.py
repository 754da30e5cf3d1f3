"""The loss registry (torch-free): names a spec's ``loss: {seg: NAME}`` and a head type's own
loss may use. Each entry is a function named by ``"pkg.module:function"`` (the formulas and
their papers are in :mod:`skipgraph.losses`), imported only when training: a ``pixel`` loss is
``(out, y, act) -> scalar`` (``act``: the head's activation, ``none`` for logits), an ``image``
loss ``(out, y) -> scalar``.

Example:
    >>> from skipgraph.loss_registry import LOSSES
    >>> "bce_dice" in LOSSES
    True
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from .registry import Entry, Registry
from .fields.types import SpecModel

__all__ = ["LossSettings", "LOSSES", "register_loss", "get_loss", "list_losses"]


class LossSettings(SpecModel):
    """What a loss compares: ``pixel`` (probability maps against a target of the same shape)
    or ``image`` (an image-level output against "the target contains the object")."""

    input: ClassVar[Literal["pixel", "image"]] = "pixel"
    min_size: ClassVar[int] = 0  # the smallest output side (px) the loss accepts


class MSSSIMLossSettings(LossSettings):
    # pytorch-msssim's 5 scales with an 11-px window need every side > (11 - 1) * 2**4 px
    min_size: ClassVar[int] = 161


class ImageLossSettings(LossSettings):
    input: ClassVar[Literal["pixel", "image"]] = "image"


LOSSES: Registry[LossSettings] = Registry("loss", "skipgraph.loss_registry")


def register_loss(name: str, builder: str | Callable[..., Any], description: str = "",
                  params: type[LossSettings] = LossSettings, replace: bool = False
                  ) -> Entry[LossSettings]:
    return LOSSES.register(name, params, builder, description, replace)


def get_loss(name: str) -> Entry[LossSettings]:
    return LOSSES.get(name)


def list_losses(pattern: str = "*") -> list[Entry[LossSettings]]:
    return LOSSES.list(pattern)


_BUILTIN = {  # name -> (function in skipgraph.losses, description)
    "bce": ("cross_entropy", "binary cross-entropy (categorical for exclusive classes)"),
    "ce": ("cross_entropy", "cross-entropy: categorical over exclusive classes, else binary"),
    "dice_ce": ("dice_ce", "Dice per image and class + cross-entropy (MONAI's DiceCELoss)"),
    "dice": ("soft_dice", "soft Dice per class, sums over the batch"),
    "focal": ("focal", "binary focal loss (Lin et al. 2017)"),
    "iou": ("iou_loss", "soft IoU (Jaccard) loss"),
    "lovasz_hinge": ("lovasz_hinge", "Lovasz hinge per image; Lovasz-softmax for classes "
                     "(Berman et al. 2018)"),
    "bce_dice": ("bce_dice", "BCE + soft Dice (UNet++ Eq. 2)"),
    "focal_dice_lovasz": ("focal_dice_lovasz", "0.5 focal + Dice + 0.5 Lovasz (UNet# Eq. 2)"),
    "focal_msssim_iou": ("focal_msssim_iou", "focal + MS-SSIM + IoU (UNet3+)"),
}
for _name, (_fn, _text) in _BUILTIN.items():
    register_loss(_name, f"skipgraph.losses:{_fn}", _text,
                  {"focal_msssim_iou": MSSSIMLossSettings}.get(_name, LossSettings))
register_loss("cgm_bce", "skipgraph.losses:cgm_bce",
              "BCE of a CGM's 2-way output against 'the image contains the object'",
              ImageLossSettings)
