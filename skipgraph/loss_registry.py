"""The loss registry (torch-free): names a spec's ``loss: {seg: NAME}`` and a head type's own
loss may use. Each entry is a function named by ``"pkg.module:function"`` (the formulas and
their papers are in :mod:`skipgraph.losses`), imported only when training, and its calling
convention, declared when it is registered (never guessed from the function):

- ``reads="probabilities"`` (the default): ``fn(p, y, **keywords)``, ``p`` the head's output as
  probabilities (logits through :func:`skipgraph.label_rule.probabilities`);
- ``reads="logits"``: ``fn(logits, y, **keywords)``; every pixel-wise head must then give
  logits (``act: none``), or training refuses to start;
- ``reads="output"``: ``fn(out, y, act, **keywords)``, the head's output as it is and its
  activation (``none``, ``sigmoid``, ``softmax``): the built-ins, which use the stable
  with-logits forms.

``keywords`` are the keyword arguments passed on every call (checked against the function's
signature when training starts). ``takes_valid=True`` declares that the function also takes
``valid=`` ((N, 1, *spatial) bool, the labelled pixels, when the target has an ignore label)
and leaves the ignored pixels out of its means and sums itself, as the built-ins do; for any
other loss the ignored pixels are made certain, correct predictions before the call (zero loss
and zero gradient there, though its means still count them). ``y`` (N, K, *spatial) is the one-hot target. An ``image``
loss (``ImageLossSettings``) is ``fn(out, y, **keywords)`` with an image-level output.

Example:
    >>> from skipgraph.loss_registry import LOSSES
    >>> "bce_dice" in LOSSES
    True
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal, Mapping

from .registry import Entry, Registry, RegistryError
from .fields.types import SpecModel

__all__ = ["LossSettings", "ImageLossSettings", "LOSSES", "READS", "register_loss", "get_loss",
           "list_losses"]

Reads = Literal["probabilities", "logits", "output"]
READS: tuple[str, ...] = ("probabilities", "logits", "output")


class LossSettings(SpecModel):
    """What a loss compares: ``pixel`` (probability maps against a target of the same shape)
    or ``image`` (an image-level output against "the target contains the object")."""

    input: ClassVar[Literal["pixel", "image"]] = "pixel"
    min_size: ClassVar[int] = 0  # the smallest output side (px) the loss accepts
    # the calling convention (see the module docstring), set by register_loss
    reads: ClassVar[Reads] = "probabilities"
    keywords: ClassVar[Mapping[str, Any]] = {}
    takes_valid: ClassVar[bool] = False  # fn(..., valid=mask) leaves ignored pixels out


class MSSSIMLossSettings(LossSettings):
    # pytorch-msssim's 5 scales with an 11-px window need every side > (11 - 1) * 2**4 px
    min_size: ClassVar[int] = 161


class ImageLossSettings(LossSettings):
    """An image-level loss, ``fn(out, y, **keywords)`` (``reads`` does not apply)."""
    input: ClassVar[Literal["pixel", "image"]] = "image"
    reads: ClassVar[Reads] = "output"


LOSSES: Registry[LossSettings] = Registry("loss", "skipgraph.loss_registry")


def register_loss(name: str, builder: str | Callable[..., Any], description: str = "",
                  params: type[LossSettings] = LossSettings, replace: bool = False, *,
                  reads: Reads | None = None, keywords: Mapping[str, Any] | None = None,
                  takes_valid: bool | None = None) -> Entry[LossSettings]:
    """Add a loss: ``builder`` is the function (or ``"pkg.module:function"``), ``reads``,
    ``keywords`` and ``takes_valid`` its calling convention (default: ``params``'s, i.e.
    ``fn(p, y)``, no ``valid=``).

    Raises:
        RegistryError: ``reads`` is not one of :data:`READS`, a keyword is not an identifier,
            or the name is taken (unless ``replace``).

    Example:
        >>> register_loss("mine", "my_losses:soft_dice", "my Dice",  # doctest: +SKIP
        ...               reads="probabilities", keywords={"eps": 1e-5})
    """
    if reads is not None and reads not in READS:
        raise RegistryError(f"loss `{name}`: reads={reads!r}; use one of {', '.join(READS)}")
    bad = [k for k in (keywords or {}) if not str(k).isidentifier()]
    if bad:
        raise RegistryError(f"loss `{name}`: keyword {bad[0]!r} is not an identifier")
    if reads is not None or keywords is not None or takes_valid is not None:
        params = type(params.__name__, (params,), {  # the declared convention, on its own model
            "__module__": params.__module__, "__doc__": params.__doc__,
            "reads": reads or params.reads,
            "keywords": dict(params.keywords if keywords is None else keywords),
            "takes_valid": params.takes_valid if takes_valid is None else takes_valid})
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
                  {"focal_msssim_iou": MSSSIMLossSettings}.get(_name, LossSettings),
                  reads="output", takes_valid=True)
register_loss("cgm_bce", "skipgraph.losses:cgm_bce",
              "BCE of a CGM's 2-way output against 'the image contains the object'",
              ImageLossSettings)
