"""Which cases a split holds: the names ``split.json`` lists, or, when a folder has no such file,
a deterministic split by name (so that validation and test are never the training images)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import DataError

__all__ = ["split_names", "auto_split", "AUTO_SPLITS", "check_no_leak"]

AUTO_SPLITS = ("train", "val", "test")
_HELD_OUT = 0.15  # share of the cases in each of val and test (at least one each)


def auto_split(names: list[str]) -> dict[str, list[str]]:
    """``train`` / ``val`` / ``test`` of ``names`` ordered by the SHA-1 of each name (the same
    on every machine, and a name keeps its split when others are added): 15 % each for val and
    test (at least one), the rest train: the same names always split the same way. Fewer than
    3 names cannot be split: every split is
    all of them."""
    if len(names) < 3:
        return {k: list(names) for k in AUTO_SPLITS}
    order = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    held = max(1, round(_HELD_OUT * len(names)))
    val, test, train = order[:held], order[held:2 * held], order[2 * held:]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


# a held-out split must not share a case with the training split (its metrics would be
# training metrics); val and test may share cases (a small set used for both)
HELD_OUT_SPLITS = ("val", "test")


def _stems(names: list[str]) -> list[str]:
    return [n[:-len(".nii.gz")] if n.endswith(".nii.gz") else Path(n).stem for n in names]


def check_no_leak(path: Path, table: dict) -> None:
    """A DataError naming the cases ``split.json`` lists both in ``train`` and in ``val`` or
    ``test``."""
    train = set(_stems(table.get("train", [])))
    for held in HELD_OUT_SPLITS:
        shared = sorted(train & set(_stems(table.get(held, []))))
        if shared:
            raise DataError(f"{path}: {_listed(shared)} listed in both `train` and `{held}`: "
                            f"a case in `{held}` must not be a training case (its metrics "
                            "would be training metrics); list each case in one of them")


def _listed(names: list[str], k: int = 4) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names)})" if len(names) > k else "")


def split_names(root: Path, split: str | None, available: list[str], where: str,
                notes: list[str] | None = None) -> list[str]:
    """The names ``split.json`` lists for ``split`` (extensions dropped); every available name
    when ``split`` is None; without ``split.json`` the ``split`` part of :func:`auto_split`
    (said in ``notes``). A listed name not available is a DataError."""

    names = available
    if split is not None and (root / "split.json").exists():
        try:
            table = json.loads((root / "split.json").read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{root / 'split.json'}: not valid JSON ({exc})") from None
        if split not in table:
            raise DataError(f"{root / 'split.json'} has no split `{split}` "
                            f"(it has {sorted(table)})")
        check_no_leak(root / "split.json", table)
        names = _stems(table[split])
    elif split is not None:
        if split not in AUTO_SPLITS:  # a name only split.json could define: every case
            if notes is not None:
                notes.append(f"note: {root} has no split.json: split `{split}` is every case")
            return _checked(root, split, names, available, where)
        parts = auto_split(sorted(available))
        names = parts[split]
        if notes is not None and len(available) < 3 and split != "train":
            notes.append(f"warning: {root} has no split.json and only {len(available)} "
                         "case(s), too few to hold any out: validation and test use the "
                         "training cases (their metrics are training metrics); write "
                         "split.json with held-out cases")
        elif notes is not None and len(available) >= 3:
            notes.append(f"no split.json in {root}: a deterministic split by name hash, "
                         + "; ".join(f"{k} {len(v)} ({_listed(v)})" for k, v in parts.items())
                         + f"; write {root / 'split.json'} to choose")
    return _checked(root, split, names, available, where)


def _checked(root: Path, split: str | None, names: list[str], available: list[str],
             where: str) -> list[str]:
    missing = [n for n in names if n not in available]
    if missing:
        raise DataError(f"{root}: {missing[0]} has no file in {where}"
                        + (f" ({len(missing) - 1} more like it)" if len(missing) > 1 else ""))
    if not names:
        raise DataError(f"{root}: no cases in split `{split}`")
    return names
