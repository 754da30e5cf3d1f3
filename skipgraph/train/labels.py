"""Label maps against a model's classes: the one rule every data folder applies (2D masks, NIfTI
label maps, the nnU-Net converter); the rule tying channels to labels is
:mod:`skipgraph.label_rule`.

A folder's mask values are read as a whole (:func:`label_table`), so a decision is made once per
folder and said once: 0/max masks are binary for a one-class model, ``--binary`` reads any value
> 0 as foreground, ``--palette`` maps gray values or colours to classes, and the ignore label
(``--ignore-index``, or nnU-Net's ``dataset.json`` ``labels: {ignore: N}``) becomes
:data:`IGNORE`, which every loss term and metric leaves out."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..label_rule import IGNORE, max_label, one_hot, valid_mask
from .errors import DataError

__all__ = ["IGNORE", "LabelOptions", "LabelTable", "check_labels", "label_table", "one_hot",
           "parse_palette", "colour_code", "valid_mask", "dataset_ignore_index"]


@dataclass(frozen=True)
class LabelOptions:
    """How mask values become classes.

    Attributes:
        binary: foreground = any value > 0 (instance-coloured masks).
        ignore_index: the mask value of unlabelled pixels (left out of losses and metrics).
        palette: mask value -> class; keys are gray values (ints) or RGB colours as
            :func:`colour_code` integers (see :func:`parse_palette`).
        colour_palette: whether ``palette`` has colour keys.
        trained: the model's classes are fixed (a trained checkpoint): hints name reading
            options only, not ``--set classes=``.
    """

    binary: bool = False
    ignore_index: int | None = None
    palette: Mapping[int, int] | None = None
    colour_palette: bool = False
    trained: bool = False


@dataclass
class LabelTable:
    """A folder's mask value -> class (:data:`IGNORE` for the ignore label), and what was
    decided about it (``note``: one line for the log, or None)."""

    table: dict[float, int]
    note: str | None = None
    ignored: bool = False  # whether any pixel carries the ignore label

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Mask values (any shape) -> int16 label map (:data:`IGNORE` for ignored pixels)."""
        u, inverse = np.unique(values, return_inverse=True)
        return np.array([self.table[float(v)] for v in u], np.int16)[inverse].reshape(
            values.shape)


def colour_code(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) integer RGB -> one integer per pixel (r * 65536 + g * 256 + b)."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _colour(code: float) -> str:
    c = int(code)
    return f"({c >> 16}, {(c >> 8) & 255}, {c & 255})"


def parse_palette(text: str) -> tuple[dict[int, int], bool]:
    """``--palette``: a JSON object (or a file holding one) mapping each mask value to a class:
    keys ``"#00ff00"`` or ``"0,255,0"`` for colour masks, ``"128"`` for gray values. Returns
    (value -> class, whether the keys are colours).

    Raises:
        ValueError: unreadable JSON, a key that is not a colour or a gray value, a class that is
            not an integer >= 0, or colour and gray keys mixed.
    """
    path = Path(text)
    source = path.read_text() if not text.lstrip().startswith("{") and path.is_file() else text
    try:
        raw = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--palette: not a JSON object or a file holding one ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError("--palette: expected a JSON object such as "
                         "'{\"#000000\": 0, \"#00ff00\": 1}'")
    table, kinds = {}, set()
    for key, cls in raw.items():
        k = key.strip().lower()
        try:
            if k.startswith("#") and len(k) == 7:
                rgb, kind = [int(k[i:i + 2], 16) for i in (1, 3, 5)], "colour"
            elif "," in k:
                rgb, kind = [int(p) for p in k.split(",")], "colour"
            else:
                rgb, kind = [int(k)], "gray"
        except ValueError:
            rgb, kind = [], ""
        if not rgb or kind == "colour" and (len(rgb) != 3 or not all(0 <= c < 256 for c in rgb)):
            raise ValueError(f"--palette: key {key!r} is neither a colour (#rrggbb or r,g,b) "
                             "nor a gray value")
        if not isinstance(cls, int) or isinstance(cls, bool) or cls < 0:
            raise ValueError(f"--palette: {key!r} maps to {cls!r}, not a class number >= 0")
        kinds.add(kind)
        table[int(colour_code(np.array(rgb))) if kind == "colour" else rgb[0]] = cls
    if len(kinds) > 1:
        raise ValueError("--palette mixes colour and gray-value keys: use one kind")
    return table, kinds == {"colour"}


def _shown(values: Sequence[float], colour: bool = False) -> str:
    fmt = _colour if colour else (lambda v: f"{v:g}")
    return "{" + ", ".join(fmt(v) for v in values[:8]) + (", ...}" if len(values) > 8 else "}")


def label_table(values_by_file: Mapping[str, set], classes: int, opts: LabelOptions,
                colour: Mapping[str, bool] | None = None, source: str = "") -> LabelTable:
    """The value -> class table of a whole folder, from the distinct mask values of each file
    (``values_by_file``: file -> values; ``colour``: file -> whether its values are
    :func:`colour_code` colours). ``classes`` is the model's output channels K: 0/1 for one
    class (a sigmoid), 0..K-1 for K classes (channel 0 background).

    Raises:
        DataError: naming the first file with values the rule cannot read (non-finite, not
            whole numbers, colours without a palette, values outside the palette or the
            classes), and the option that fits them; a suggested class count is never larger
            than the number of distinct values present.
    """
    colour = colour or {}
    every: set[float] = set()
    for f, vals in values_by_file.items():
        bad = [v for v in vals if not np.isfinite(v)]
        if bad:
            raise DataError(f"{f}: the label map holds non-finite values ({_shown(bad)}): "
                            "fix the file (labels cannot be replaced the way image pixels can)")
        if colour.get(f) and not (opts.palette and opts.colour_palette):
            raise DataError(
                f"{f}: a colour mask ({len(vals)} colours, e.g. {_shown(sorted(vals), True)}): "
                "its classes cannot be read from one channel; give --palette mapping each "
                "colour to a class, e.g. --palette '{\"#000000\": 0, \"#00ff00\": 1}'")
        every |= {float(v) for v in vals}

    def first_file(pred) -> str:
        return next(f for f, vals in values_by_file.items() if any(pred(float(v)) for v in vals))

    ignore = opts.ignore_index
    present = sorted(v for v in every if v != ignore)
    table: dict[float, int] = {}
    note = None
    if opts.palette:
        missing = [v for v in present if int(v) not in opts.palette or v != int(v)]
        if missing:
            f = first_file(lambda v: v in missing)
            raise DataError(f"{f}: mask value(s) {_shown(missing, opts.colour_palette)} are not "
                            "in --palette: add them (each value or colour -> its class)")
        table = {v: opts.palette[int(v)] for v in present}
    elif opts.binary:
        table = {v: int(v > 0) for v in present}
    else:
        if any(v != int(v) or v < 0 for v in present):
            f = first_file(lambda v: v != ignore and (v != int(v) or v < 0))
            raise DataError(f"{f}: label values {_shown(present)} are not all whole numbers "
                            ">= 0")
        table = {v: int(v) for v in present}
        if classes == 1 and len(present) <= 2 and present and present[-1] > 1 and \
                set(present) - {0.0} == {present[-1]}:
            top = present[-1]
            table = {v: int(v > 0) for v in present}
            note = (f"the masks hold the values {{0, {top:g}}}: read as binary masks "
                    f"({top:g} = foreground) for the model's 1 class")
    _check_classes(table, classes, present, ignore, first_file, opts, source)
    if ignore is not None:
        table[float(ignore)] = IGNORE
    return LabelTable(table, note, ignored=ignore is not None and float(ignore) in every)


def _check_classes(table: dict[float, int], classes: int, present: list[float],
                   ignore: int | None, first_file, opts: LabelOptions, source: str = ""
                   ) -> None:
    limit = max_label(classes)
    over = sorted(v for v, c in table.items() if c > limit)
    if not over:
        return
    f = first_file(lambda v: v in over)
    kind = "1 class (0/1 masks)" if classes == 1 else f"{classes} classes (values 0..{limit})"
    if source:
        raise DataError(f"{f}: label values {_shown(present)} but {source} has {kind}")
    mapped = sorted(set(table.values()))
    n = len(present)
    hints = []
    if mapped == list(range(len(mapped))) and len(mapped) <= n and not opts.trained:
        hints.append(f"--set classes={len(mapped)}")
    if classes == 1 and not opts.binary and not opts.palette:
        hints.append("--binary: foreground = any value > 0")
    if 255 in over and ignore is None and len(present) > 1:
        hints.append("--ignore-index 255 if 255 marks unlabelled pixels")
    if not opts.palette and mapped != list(range(len(mapped))) and not opts.trained:
        example = ", ".join(f'"{v:g}": {k}' for k, v in enumerate(present[:4]))
        hints.append(f"--palette '{{{example}{', ...' if n > 4 else ''}}}' --set classes="
                     f"{max(n, 2)} (each of the {n} values -> a class 0..{n - 1})")
    fix = "add " + hints[0] + (f" (or {'; or '.join(hints[1:])})" if hints[1:] else "") \
        if hints else "check the masks"
    if opts.trained:  # a checkpoint: its classes are what it was trained for
        fix = (f"{fix}, or evaluate a model trained for these labels" if hints else
               "evaluate a model trained for these labels")
    raise DataError(f"{f}: label values {_shown(present)} but the model has {kind}; {fix}")


def check_labels(values: Sequence[int | float], classes: int, where: str) -> None:
    """Label values must be whole numbers that the model's ``classes`` output channels can
    represent: 0/1 for one class (a sigmoid), 0..K-1 for K classes (:func:`label_table` for one
    file, without options).

    Raises:
        DataError: naming ``where``, the values found and the option that fits them.
    """
    label_table({where: set(values)}, classes, LabelOptions())


def dataset_ignore_index(root: Path) -> int | None:
    """nnU-Net's ignore label: ``labels: {"ignore": N}`` in ``root/dataset.json`` (None when
    there is no such file or entry)."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return None
    try:
        labels = json.loads(path.read_text()).get("labels", {})
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DataError(f"{path}: not a JSON object ({exc})") from None
    value = labels.get("ignore") if isinstance(labels, dict) else None
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise DataError(f"{path}: labels.ignore is {value!r}, not a label value")
    return value
