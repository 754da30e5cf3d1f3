"""Segmentation losses of the U-Net-family papers, extended to label maps, and the
deep-supervision combination.

Every built-in segmentation loss is called ``loss(out, y, act)`` (registered with
``reads="output"``, see :mod:`skipgraph.loss_registry`): ``out`` (N, K, *spatial) is what a head
gives and ``act`` says what that is (the head's ``activation()``):

- ``none``: logits. One channel is read as a sigmoid, K > 1 channels as a softmax over exclusive
  classes (:mod:`skipgraph.label_rule`); the losses then use the numerically stable with-logits
  forms (``log_softmax``, ``binary_cross_entropy_with_logits``), so no pixel loses its gradient
  to a clamp.
- ``sigmoid`` / ``softmax``: probabilities (K sigmoid channels are independent labels).

``y`` (N, K, *spatial) is the one-hot label map (``mask > 0`` for one class), possibly brought
to a low-resolution head by :func:`resize_target`. Names in :data:`SEG_LOSSES` are what a spec's
``loss: {seg: NAME}`` refers to.

- ``bce`` / ``ce``: binary cross-entropy for one channel or independent sigmoid channels,
  categorical cross-entropy for exclusive classes.
- ``dice``, ``iou``: soft Dice / IoU per class (sums over the batch), averaged over classes.
- ``bce_dice`` (UNet++ Eq. 2, defined over classes): cross-entropy + soft Dice (smooth 1).
- ``dice_ce``: MONAI's ``DiceCELoss`` definition (Dice per image and class, smooth 1e-5, mean;
  plus cross-entropy), the nnU-Net-style loss for label maps; equal to MONAI's on logits.
- ``focal_dice_lovasz`` (UNet# Eq. 2): 0.5 focal (alpha 0.25, gamma 2; for K exclusive classes
  the multi-class focal loss without alpha) + Dice (+1) + 0.5 Lovasz hinge (one class) or
  Lovasz-softmax (K classes; Berman et al. 2018).
- ``focal_msssim_iou`` (UNet3+): focal + (1 - MS-SSIM, per class channel) + IoU loss; MS-SSIM
  comes from the ``pytorch-msssim`` package (5 scales: images must be larger than 160 px).
- :func:`cgm_bce`: BCE of a CGM's 2-way output against "the image contains the object".
- :class:`DeepSupervisionLoss`: the loss of every head (targets brought to each head's
  resolution by its ``target`` rule), combined as a weighted sum (UNet++) or a mean (UNet#).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks.layers import AVG_POOL, MAX_POOL
from .graph.ir import IRGraph
from .graph.contract import head_shape
from .label_rule import exclusive, foreground, probabilities, valid_mask
from .loss_registry import LOSSES

__all__ = ["bce", "cross_entropy", "soft_dice", "focal", "iou_loss", "lovasz_hinge",
           "ms_ssim_loss", "bce_dice", "dice_ce", "focal_dice_lovasz", "focal_msssim_iou",
           "cgm_bce", "probabilities", "SEG_LOSSES", "DeepSupervisionLoss", "resize_target",
           "loss_for", "loss_min_size", "seg_loss", "LossSignatureError"]

_EPS = 1e-7
SegLoss = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]


def _exclusive(out: torch.Tensor, act: str) -> bool:
    return exclusive(out.shape[1], act)


def _log_probs(out: torch.Tensor, act: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p, log(1 - p)) of independent channels, stable for logits."""
    if act == "none":
        return F.logsigmoid(out), F.logsigmoid(-out)
    p = out.clamp(_EPS, 1 - _EPS)
    return torch.log(p), torch.log1p(-p)


def _class_log_probs(out: torch.Tensor, act: str) -> torch.Tensor:
    """log p over exclusive classes, stable for logits."""
    return F.log_softmax(out, 1) if act == "none" else torch.log(out.clamp_min(_EPS))


def _mean(t: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of a per-pixel map ``t`` (N, C, *spatial) over the labelled pixels (``valid``:
    (N, 1, *spatial) bool, None: all)."""
    if valid is None:
        return t.mean()
    return (t * valid).sum() / (valid.sum() * t.shape[1]).clamp_min(1)


def _labelled(t: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``t`` with the ignored pixels zeroed, so sums over space leave them out."""
    return t if valid is None else t * valid


def cross_entropy(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy per pixel: categorical for exclusive classes (targets that a max-pool
    made ambiguous are spread evenly over their classes), else binary per channel. ``valid``
    (N, 1, *spatial) bool: the labelled pixels, the only ones averaged over (all: None)."""
    if _exclusive(out, act):
        target = y / y.sum(1, keepdim=True).clamp_min(1)
        return _mean(-(target * _class_log_probs(out, act)).sum(1, keepdim=True), valid)
    if act == "none":
        return _mean(F.binary_cross_entropy_with_logits(out, y, reduction="none"), valid)
    return _mean(F.binary_cross_entropy(out.clamp(_EPS, 1 - _EPS), y, reduction="none"), valid)


bce = cross_entropy


def _per_class(t: torch.Tensor, batch: bool = True) -> torch.Tensor:
    """Sums over space (and the batch): (K,) or (N, K)."""
    return t.flatten(2).sum(2).sum(0) if batch else t.flatten(2).sum(2)


def soft_dice(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid", smooth: float = 1.0,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over classes of 1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s), sums over the batch
    and the labelled pixels (``valid``)."""
    p, y = _labelled(probabilities(out, act), valid), _labelled(y, valid)
    inter = _per_class(p * y)
    return (1 - (2 * inter + smooth) / (_per_class(p) + _per_class(y) + smooth)).mean()


def focal(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid", alpha: float = 0.25,
          gamma: float = 2.0, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), mean over the labelled pixels: binary per channel with
    ``alpha``, or ``sum_c -y_c (1 - p_c)^gamma log p_c`` over exclusive classes."""
    p = probabilities(out, act)
    if _exclusive(out, act):
        return _mean(-(y * (1 - p) ** gamma * _class_log_probs(out, act)).sum(1, keepdim=True),
                     valid)
    log_p, log_q = _log_probs(out, act)
    pos = -alpha * (1 - p) ** gamma * y * log_p
    neg = -(1 - alpha) * p ** gamma * (1 - y) * log_q
    return _mean(pos + neg, valid)


def iou_loss(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid", smooth: float = 1.0,
             valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over classes of 1 - (sum(p y) + s) / (sum(p) + sum(y) - sum(p y) + s), sums over
    the batch and the labelled pixels (``valid``)."""
    p, y = _labelled(probabilities(out, act), valid), _labelled(y, valid)
    inter = _per_class(p * y)
    return (1 - (inter + smooth) / (_per_class(p) + _per_class(y) - inter + smooth)).mean()


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def _pixels(t: torch.Tensor, valid: torch.Tensor | None) -> list[torch.Tensor]:
    """Per image, ``t``'s labelled pixels as (C, P) (the Lovasz losses sort pixels)."""
    flat = t.flatten(2)
    if valid is None:
        return list(flat)
    return [ti[:, vi] for ti, vi in zip(flat, valid.flatten(1))]


def lovasz_hinge(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
                 valid: torch.Tensor | None = None) -> torch.Tensor:
    """Lovasz hinge (Berman et al. 2018; Yu & Blaschko) per image for one channel, or the
    Lovasz-softmax over the classes present in each image for exclusive classes; averaged over
    the batch; over the labelled pixels (``valid``) only."""
    if _exclusive(out, act):
        return _lovasz_softmax(_pixels(probabilities(out, act), valid), _pixels(y, valid))
    logits = out if act == "none" else torch.logit(out.clamp(_EPS, 1 - _EPS))
    losses = []
    for lg, gt in zip(_pixels(logits, valid), _pixels(y, valid)):
        lg, gt = lg.flatten(), gt.flatten()
        errors = 1 - lg * (2 * gt - 1)
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(F.relu(errors_sorted), _lovasz_grad(gt[perm])))
    return torch.stack(losses).mean()


def _lovasz_softmax(p: list[torch.Tensor], y: list[torch.Tensor]) -> torch.Tensor:
    losses = []
    for pi, yi in zip(p, y):  # (K, pixels) per image
        per_class = []
        for pc, yc in zip(pi, yi):
            if yc.sum() == 0:
                continue
            errors_sorted, perm = torch.sort((yc - pc).abs(), descending=True)
            per_class.append(torch.dot(errors_sorted, _lovasz_grad(yc[perm])))
        losses.append(torch.stack(per_class).mean() if per_class else pi.sum() * 0)
    return torch.stack(losses).mean()


def ms_ssim_loss(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
                 valid: torch.Tensor | None = None) -> torch.Tensor:
    """1 - MS-SSIM (5 scales, data range 1) of the probabilities, per class channel: 2D
    ``(N, C, H, W)`` larger than 160 px per side. SSIM compares windows, so ignored pixels
    (``valid`` False) cannot be left out: there both maps are set to 0 (equal, no gradient).

    Raises:
        MissingExtraError: ``pytorch-msssim`` is not installed (``pip install
            "skipgraph[losses]"``).
    """
    from .extras import require
    ms_ssim = require("pytorch_msssim").ms_ssim
    p, y = _labelled(probabilities(out, act), valid), _labelled(y, valid)
    return 1 - ms_ssim(p, y, data_range=1.0, size_average=True)


def bce_dice(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
             valid: torch.Tensor | None = None) -> torch.Tensor:
    return cross_entropy(out, y, act, valid) + soft_dice(out, y, act, valid=valid)


def dice_ce(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
            valid: torch.Tensor | None = None) -> torch.Tensor:
    """MONAI's ``DiceCELoss`` (Dice per image and class with smooth 1e-5 in numerator and
    denominator, mean over both; + cross-entropy), over the labelled pixels (``valid``)."""
    p, t = _labelled(probabilities(out, act), valid), _labelled(y, valid)
    inter = _per_class(p * t, batch=False)
    dice = 1 - (2 * inter + 1e-5) / (_per_class(p, False) + _per_class(t, False) + 1e-5)
    return dice.mean() + cross_entropy(out, y, act, valid)


def focal_dice_lovasz(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    return (0.5 * focal(out, y, act, valid=valid) + soft_dice(out, y, act, 1.0, valid)
            + 0.5 * lovasz_hinge(out, y, act, valid))


def focal_msssim_iou(out: torch.Tensor, y: torch.Tensor, act: str = "sigmoid",
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    return (focal(out, y, act, valid=valid) + ms_ssim_loss(out, y, act, valid)
            + iou_loss(out, y, act, valid=valid))


def cgm_bce(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE of a CGM's (N, 2) output against one-hot [absent, present] of each target image
    (present: any foreground, i.e. any class but 0 of a label map)."""
    present = (foreground(y).flatten(1).amax(dim=1) > 0).to(probs.dtype)
    return bce(probs, torch.stack([1 - present, present], dim=1))


class LossSignatureError(ValueError):
    """A registered loss whose declared calling convention does not fit its function, or a
    loss reading logits on a head that gives probabilities."""


def _loss_call(name: str, kind: str) -> Callable[..., torch.Tensor]:
    """The registered loss ``name`` as ``(out, y, act, valid=None)`` (``kind`` pixel) or
    ``(out, y)`` (image), called as its registration declares (``reads``, ``keywords``,
    ``takes_valid``: ``valid`` reaches only a loss that declares it).

    Raises:
        LossSignatureError: the function cannot take the declared arguments.
    """
    entry = LOSSES.get(name)
    fn, reads, kw = entry.load_builder(), entry.params.reads, dict(entry.params.keywords)
    if kind == "image":
        reads = "image"
    declared = {**kw, "valid": None} if entry.params.takes_valid and kind == "pixel" else kw
    shown = {"output": "(out, y, act", "probabilities": "(p, y", "logits": "(logits, y",
             "image": "(out, y"}[reads] + "".join(f", {k}=..." for k in declared) + ")"
    try:
        inspect.signature(fn).bind(*([None] * (3 if reads == "output" else 2)), **declared)
    except TypeError as exc:
        raise LossSignatureError(
            f"loss `{name}` ({entry.origin}) is registered with reads={reads!r} and is called "
            f"{shown}, which its signature {inspect.signature(fn)} does not take ({exc}); "
            "fix the `reads=`, `keywords=` or `takes_valid=` of its register_loss") from None
    except ValueError:  # a builtin without a signature: called as declared
        pass
    if reads == "image":
        return lambda out, y: fn(out, y, **kw)

    def call(out: torch.Tensor, y: torch.Tensor, act: str, valid: torch.Tensor | None = None
             ) -> torch.Tensor:
        extra = {**kw, "valid": valid} if valid is not None else kw
        if reads == "output":
            return fn(out, y, act, **extra)
        return fn(probabilities(out, act) if reads == "probabilities" else out, y, **extra)
    call.takes_valid = entry.params.takes_valid  # type: ignore[attr-defined]
    return call


def seg_loss(name: str) -> SegLoss:
    """The registered pixel-wise loss ``name`` as ``(out, y, act) -> scalar``."""
    return _loss_call(name, "pixel")


# name -> pixel-wise loss as (out, y, act), as a spec's `loss: {seg: NAME}` refers to it (the
# registered ones, see skipgraph.loss_registry; this module's functions are their builders)
SEG_LOSSES: dict[str, SegLoss] = {name: seg_loss(name) for name in LOSSES.names()
                                  if LOSSES.get(name).params.input == "pixel"}


# a head's `target` rule -> how a full-size target is shrunk by `factor` (as (y, factor, dims))
# (ceil mode: the head's size for any input size, see resize_target)
_TARGET_RULES: dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "maxpool": lambda y, f, dims: MAX_POOL[dims](y, kernel_size=f, stride=f, ceil_mode=True),
    "avgpool": lambda y, f, dims: AVG_POOL[dims](y, kernel_size=f, stride=f, ceil_mode=True),
    "nearest": lambda y, f, dims: F.interpolate(y, size=head_shape(y.shape[2:], f),
                                                mode="nearest"),
}


def loss_min_size(name: str | object) -> int:
    """The smallest side (px) a head's output may have for the registered loss ``name``
    (``min_size`` of its settings; 0: no limit, also for a callable)."""
    if not isinstance(name, str) or name not in LOSSES:
        return 0
    return LOSSES.get(name).params.min_size


def resize_target(y: torch.Tensor, factor: Any, rule: str, dims: int) -> torch.Tensor:
    """Bring a full-size target (N, C, *spatial) to a head ``factor`` times smaller (an int,
    or one factor per axis on an anisotropic grid: nnU-Net's deep supervision), of side
    :func:`~skipgraph.graph.contract.head_size` (``ceil``, as the padded module's heads): a
    partial window at the border covers the pixels it has (``maxpool``: a pixel is foreground
    if any pixel under it is, as UNet# compares its low-resolution heads)."""
    return y if factor == 1 else _TARGET_RULES[rule](y, factor, dims)


class DeepSupervisionLoss(nn.Module):
    """The loss of every head the model returns in training, combined.

    Args:
        ir: the model's IR (``model.ir``): it says each head's resolution and target rule.
        seg: a registered pixel-wise loss (called as its registration declares) or a callable
            ``(out, y, act) -> scalar``: the loss of every pixel-wise head (``act``: the head's
            ``activation()``).
        combine: ``sum`` (UNet++: weighted sum, weights 1) or ``mean`` (UNet#).
        weights: per pixel-wise head, in ``model.heads`` order (default all 1).
        cgm_weight: weight of each image-level head's loss (the registered loss its head type
            names: a CGM's BCE).

    Raises:
        ValueError: an unknown loss or ``combine``.
        LossSignatureError: a loss whose registration does not fit its function, or one that
            reads logits while a pixel-wise head applies an activation.
    """

    def __init__(self, ir: IRGraph, seg: str | SegLoss = "bce_dice", combine: str = "sum",
                 weights: Sequence[float] | None = None, cgm_weight: float = 1.0):
        super().__init__()
        pixel = [e.name for e in map(LOSSES.get, LOSSES.names()) if e.params.input == "pixel"]
        if isinstance(seg, str) and seg not in pixel:
            raise ValueError(f"unknown loss `{seg}`; known: {sorted(pixel)}")
        if combine not in ("sum", "mean"):
            raise ValueError(f"combine must be `sum` or `mean`, not `{combine}`")
        self.ir = ir
        self.seg = seg_loss(seg) if isinstance(seg, str) else seg
        if isinstance(seg, str) and LOSSES.get(seg).params.reads == "logits":
            _check_logit_heads(seg, ir)
        self.combine = combine
        seg_heads = [h for h in ir.heads.values() if h.pixelwise]
        self.weights = dict(zip([h.id for h in seg_heads], weights or [1.0] * len(seg_heads)))
        self.cgm_weight = cgm_weight
        self.image_losses = {h.id: _loss_call(h.settings.loss, "image")
                             for h in ir.heads.values() if not h.pixelwise}

    def forward(self, outputs: Mapping[str, torch.Tensor] | torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = {next(iter(self.weights)): outputs}
        terms = []
        valid = valid_mask(y)  # the ignore label: IGNORE in every channel of y
        if valid is not None:
            y = y.clamp_min(0)
        for head_id, out in outputs.items():
            head = self.ir.heads[head_id]
            if not head.pixelwise:
                terms.append(self.cgm_weight * self.image_losses[head_id](out, y))
                continue
            target = resize_target(y, head.stride, head.target_rule, self.ir.dims)
            if valid is None:
                terms.append(self.weights[head_id] * self.seg(out, target, head.activation))
                continue
            labelled = _valid_at(valid, head, self.ir.dims)
            if getattr(self.seg, "takes_valid", False):  # leaves them out of means and sums
                loss = self.seg(out, target, head.activation, valid=labelled)
            else:  # a loss that cannot: certain, correct predictions there
                loss = self.seg(*mask_ignored(out, target, labelled, head.activation),
                                head.activation)
            terms.append(self.weights[head_id] * loss)
        total = torch.stack(terms).sum()
        return total / len(terms) if self.combine == "mean" else total


def _valid_at(valid: torch.Tensor, head: Any, dims: int) -> torch.Tensor:
    """The labelled pixels at a head's resolution, by the head's own target rule: a
    low-resolution pixel counts only when no ignored pixel is under it."""
    return resize_target((~valid).float(), head.stride, head.target_rule, dims) == 0


def mask_ignored(out: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, act: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Take ignored pixels (``valid`` False, (N, 1, *spatial)) out of a loss: there the output
    becomes a constant, certain prediction (no gradient) and the target agrees with it
    (background; class 0 of exclusive classes), so every term (cross-entropy, focal, Dice, IoU,
    Lovasz) gets zero loss and zero gradient from them. Means over pixels still count them (as
    0), and for K > 1 the background Dice counts them as matched: used only for a registered
    loss that does not take ``valid=`` (the built-ins leave them out themselves)."""
    low, high = (-30.0, 30.0) if act == "none" else (0.0, 1.0)  # certain: logits or p
    sure = torch.full_like(out, low)
    fill = torch.zeros_like(target)
    if exclusive(out.shape[1], act):
        sure[:, :1], fill[:, :1] = high, 1.0
    return torch.where(valid, out, sure), torch.where(valid, target, fill)


def _check_logit_heads(name: str, ir: IRGraph) -> None:
    """A loss that reads logits cannot train a head that gives probabilities."""
    for head in ir.heads.values():
        if head.pixelwise and head.activation != "none":
            raise LossSignatureError(
                f"loss `{name}` reads logits but head {head.id} of {ir.name} gives "
                f"`{head.activation}` probabilities: set `act: none` on its heads, or register "
                "the loss with reads='probabilities'")


def loss_for(model: nn.Module) -> DeepSupervisionLoss:
    """The loss a compiled spec declares in its ``loss:`` section."""
    return DeepSupervisionLoss(model.ir, **model.ir.loss)
