"""``train --resume``: continue a run only with the model it was started with. The checkpoint
records the resolved spec (params substituted, ``extends`` merged); the spec and ``--set``
values given again must resolve to the same one, or the first difference is named."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml

from .errors import DataError

__all__ = ["check_resume", "first_difference", "check_run_folder", "RUN_FILES"]

RUN_FILES = ("best.pt", "last.pt")  # what makes a folder hold a training run


def check_run_folder(out: Path, resume: bool = False, overwrite: bool = False,
                     hint: str = "continue it with --resume, train into another --out, or "
                     "replace it with --overwrite") -> None:
    """Refuse to start a fresh run in a folder that holds one (``best.pt`` / ``last.pt``),
    unless ``resume`` (continue it) or ``overwrite`` (replace it); ``hint`` says what to do."""
    if resume or overwrite:
        return
    found = [name for name in RUN_FILES if (Path(out) / name).exists()]
    if found:
        raise DataError(f"{out} already holds a training run ({', '.join(found)}); {hint}")


def _walk(a: Any, b: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            yield from _walk(a.get(key, "<absent>"), b.get(key, "<absent>"),
                             f"{path}.{key}" if path else str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b)):
            yield from _walk(x, y, f"{path}[{k}]")
    elif a != b:
        yield path, a, b


def first_difference(old: Any, new: Any) -> tuple[str, Any, Any] | None:
    """(dotted path, old value, new value) of the first place two plain documents differ."""
    return next(_walk(old, new, ""), None)


def _plain(doc: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(doc, sort_keys=False))  # tuples -> lists, as saved


def check_resume(data: dict[str, Any], last: Path, spec: str, ir) -> None:
    """Raise DataError unless ``ir`` (the spec and ``--set`` values given now, resolved) is the
    model ``last.pt`` (its contents ``data``) was trained as: params first (what ``--set``
    changes), then the rest of the resolved spec."""
    old_params, new_params = _plain(data.get("params", {})), _plain(dict(ir.params))
    old_doc = yaml.safe_load(data["spec"])
    new_doc = _plain({k: v for k, v in ir.spec_doc.items() if k != "extends"})
    for what, old, new in (("param", old_params, new_params), ("spec", old_doc, new_doc)):
        diff = first_difference(old, new)
        if diff is None:
            continue
        path, was, now = diff
        fix = (f"--set {path}={was}" if what == "param" else
               "the spec the run was started with")
        raise DataError(f"{last}: --resume with a different model: {what} `{path}` is "
                        f"{was!r} in the checkpoint but {now!r} in {spec} with these --set "
                        f"values; resume with {fix}, or train into a new --out")
