"""Label maps against a model's classes: the one check every data folder applies (the rule
itself is :mod:`skipgraph.label_rule`)."""
from __future__ import annotations

from typing import Sequence

from ..label_rule import max_label, one_hot
from .errors import DataError

__all__ = ["check_labels", "one_hot"]


def check_labels(values: Sequence[int | float], classes: int, where: str) -> None:
    """Label values must be whole numbers that the model's ``classes`` output channels can
    represent: 0/1 for one class (a sigmoid), 0..K-1 for K classes.

    Raises:
        DataError: naming ``where``, the values found and the ``--set`` that fits them.
    """
    values = sorted({float(v) for v in values})
    shown = "{" + ", ".join(f"{v:g}" for v in values[:8]) + (", ...}" if len(values) > 8 else "}")
    if any(v != int(v) or v < 0 for v in values):
        raise DataError(f"{where}: label values {shown} are not all whole numbers >= 0")
    top = int(max(values, default=0))
    limit = max_label(classes)
    if top > limit:
        kind = "1 class (0/1 masks)" if classes == 1 else f"{classes} classes (values 0..{limit})"
        raise DataError(f"{where}: label values {shown} but the model has {kind}; add --set "
                        f"classes={top + 1}" + (" (or --binary: foreground = any value > 0)"
                                                if classes == 1 else ""))
