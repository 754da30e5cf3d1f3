"""The one rule that ties a head's K output channels to a label map (imports torch).

- K = 1: the channel is the foreground; logits are read as a sigmoid, a pixel is foreground
  where p > 0.5; label values 0/1.
- K > 1: exclusive classes; logits are read as a softmax, the label is the argmax; channel 0
  is the background; label values 0..K-1.

Losses (:mod:`skipgraph.losses`), evaluation, sliding windows and the data folders
(:mod:`skipgraph.train`) all read it from here. The one exception a head may declare is
``act: sigmoid`` on K > 1 channels: independent labels (:func:`exclusive`).

Ignored pixels (the ignore label, ``--ignore-index`` or nnU-Net's ``labels: {ignore: N}``) are
:data:`IGNORE` in a label map and in every channel of its one-hot target; losses and metrics
leave out what :func:`valid_mask` excludes.

Example:
    >>> import torch
    >>> label_map(torch.tensor([[[0.2, 0.7]]])).tolist()
    [[[0, 1]]]
"""
from __future__ import annotations

import torch

__all__ = ["IGNORE", "exclusive", "probabilities", "label_map", "foreground",
           "foreground_classes", "max_label", "one_hot", "valid_mask"]

IGNORE = -1  # an ignored pixel: its value in a label map and in every one-hot channel


def exclusive(channels: int, act: str) -> bool:
    """Whether ``channels`` outputs with activation ``act`` (``none``, ``sigmoid``,
    ``softmax``) are a distribution over exclusive classes rather than independent sigmoids."""
    return act == "softmax" or (act == "none" and channels > 1)


def probabilities(out: torch.Tensor, act: str = "sigmoid") -> torch.Tensor:
    """What a head gives (N, K, *spatial), as probabilities: logits (``act: none``) through a
    sigmoid for K = 1 and a softmax over channels for K > 1; probabilities as they are."""
    if act != "none":
        return out
    return torch.softmax(out, 1) if out.shape[1] > 1 else torch.sigmoid(out)


def label_map(probs: torch.Tensor) -> torch.Tensor:
    """(N, K, *spatial) probabilities or one-hot maps -> (N, 1, *spatial) long label map:
    ``p > 0.5`` for K = 1, the argmax for K > 1."""
    if probs.shape[1] == 1:
        return (probs > 0.5).long()
    return probs.argmax(1, keepdim=True)


def foreground(maps: torch.Tensor) -> torch.Tensor:
    """The foreground channels of (N, K, *spatial) maps: the one channel for K = 1, channels
    1..K-1 for K > 1 (channel 0 is the background)."""
    return maps if maps.shape[1] == 1 else maps[:, 1:]


def foreground_classes(classes: int) -> list[int]:
    """The label values of the foreground classes: ``[1]`` for one class, ``1..K-1``."""
    return [1] if classes == 1 else list(range(1, classes))


def max_label(classes: int) -> int:
    """The largest label value ``classes`` output channels can represent (1 or K - 1)."""
    return 1 if classes == 1 else classes - 1


def one_hot(label: torch.Tensor, classes: int) -> torch.Tensor:
    """(1, *spatial) label map -> (K, *spatial) float one-hot (K = 1: the foreground mask,
    ``label > 0``); an ignored pixel (:data:`IGNORE`) is :data:`IGNORE` in every channel."""
    out = (label > 0).float() if classes == 1 else \
        torch.cat([label == c for c in range(classes)]).float()
    ignored = label < 0
    return torch.where(ignored, float(IGNORE), out) if bool(ignored.any()) else out


def valid_mask(y: torch.Tensor) -> torch.Tensor | None:
    """(N, 1, *spatial) bool: the labelled pixels of a one-hot target or label map ``y``
    (N, K, *spatial); None when no pixel is ignored."""
    ignored = y[:, :1] < 0
    return ~ignored if bool(ignored.any()) else None
