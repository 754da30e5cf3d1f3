"""Checkpoints: the resolved spec + (optionally pruned) heads + weights, in one versioned file.

Saved with ``torch.save`` as plain data (strings, numbers, lists, dicts, tensors) and loaded with
``torch.load(weights_only=True)``, so loading never executes pickled code. The spec travels as
the resolved document (params substituted, ``extends`` merged), so a checkpoint rebuilds the
same module without the original files.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

import torch
import yaml

from .compile import SkipGraphModule, compile_ir
from .errors import Diagnostic, SpecError
from .graph import build_ir
from .safe_load import UnreadableFileError, load_torch_file
from .spec import load_spec_text

__all__ = ["FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "model_from_checkpoint", "unwrap", "strip_wrapper_prefixes"]

FORMAT = "skipgraph-checkpoint"
VERSION = 1


# what torch's wrappers put in front of the keys: torch.compile's OptimizedModule (`_orig_mod.`),
# DataParallel and DistributedDataParallel (`module.`)
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def unwrap(model: Any) -> SkipGraphModule:
    """The SkipGraphModule inside any nesting of ``torch.compile``, ``DataParallel`` and
    ``DistributedDataParallel``; raises TypeError for anything else."""
    seen = model
    for _ in range(8):  # wrappers nest a few levels at most (DDP inside compile, ...)
        if isinstance(model, SkipGraphModule):
            return model
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(model, (torch.nn.DataParallel,
                                                torch.nn.parallel.DistributedDataParallel)):
            inner = model.module
        if inner is None:
            break
        model = inner
    raise TypeError(f"save_checkpoint needs a compiled skipgraph model (or one wrapped by "
                    f"torch.compile / DataParallel / DistributedDataParallel), got "
                    f"{type(seen).__name__}")


def strip_wrapper_prefixes(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Keys without the `_orig_mod.` / `module.` prefixes that wrapped models write (files
    saved from a wrapped model's ``state_dict()`` by other code)."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def save_checkpoint(model: SkipGraphModule, path: str | os.PathLike,
                    extra: dict[str, Any] | None = None) -> None:
    """Write ``model`` (a full or pruned compiled spec, or one wrapped by torch.compile,
    DataParallel or DistributedDataParallel: the wrappers are not saved) and optional
    plain-data ``extra``.

    Raises:
        TypeError: ``model`` is not a compiled skipgraph model (wrapped or not).
        ValueError: the model's BatchNorm layers are folded (save before folding).
        OSError: the file cannot be written.
    """
    model = unwrap(model)
    if getattr(model, "norms_folded", False):
        raise ValueError("a model with folded BatchNorm layers cannot be saved as a checkpoint "
                         "(its spec still has the norm layers): save the model before folding")
    doc = {k: v for k, v in model.ir.spec_doc.items() if k != "extends"}
    torch.save({
        "format": FORMAT, "version": VERSION,
        "spec": yaml.safe_dump(doc, sort_keys=False),
        "params": dict(model.ir.params),
        "heads": list(model.output_heads) if model.pruned else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }, os.fspath(path))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's contents, checked for format and version (no code is executed).

    Returns:
        A dict: ``spec`` (YAML text), ``params``, ``heads`` (None unless pruned),
        ``state_dict`` (CPU tensors), ``extra``, ``format``, ``version``.

    Raises:
        SpecError: a missing file, a file that is not a skipgraph checkpoint, or an
            unsupported version.
    """
    try:
        data = load_torch_file(path)
    except FileNotFoundError:
        raise SpecError([Diagnostic("file-not-found", f"no such checkpoint: {path}")]) from None
    except UnreadableFileError as exc:
        raise SpecError([Diagnostic("bad-value", f"{path} is not a skipgraph checkpoint: {exc}")]
                        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError([Diagnostic("bad-value", f"{path} is not a skipgraph checkpoint")])
    if data.get("version") != VERSION:
        raise SpecError([Diagnostic("bad-value", f"{path}: checkpoint version "
                                    f"{data.get('version')} is not supported (expected {VERSION})")])
    return data


def model_from_checkpoint(data: dict[str, Any], source: str | os.PathLike,
                          recompute: Iterable[str] = ()) -> SkipGraphModule:
    """The module a checkpoint's contents (:func:`read_checkpoint`) describe, with its
    weights loaded strictly: the one way every command rebuilds a saved model. ``recompute``
    names node families or loops to recompute in the backward pass (a build option, not
    saved)."""
    ir = build_ir(load_spec_text(data["spec"], file=f"{source}#spec"))
    heads = data.get("heads")
    model = compile_ir(ir.subgraph(heads) if heads else ir, recompute=recompute,
                       weights=False)
    model.pruned = bool(heads)
    load_weights(model, data, source)
    return model


def load_checkpoint(path: str | os.PathLike) -> SkipGraphModule:
    """Rebuild the module a checkpoint holds and load its weights (strictly), in training mode
    on the CPU; see :func:`skipgraph.load_checkpoint`.

    Raises:
        SpecError: as :func:`read_checkpoint`, or a stored spec that no longer validates.
        RuntimeError: the weights do not match the rebuilt module.
    """
    return model_from_checkpoint(read_checkpoint(path), path)


def load_weights(model: SkipGraphModule, data: dict[str, Any], path: str | os.PathLike) -> None:
    """Load a checkpoint's weights into the module rebuilt from its spec (strictly)."""
    try:
        model.load_state_dict(checked_state_dict(data, path, model), strict=True)
    except RuntimeError as exc:  # a tensor of the wrong shape
        last = str(exc).splitlines()[-1].strip()
        raise SpecError([Diagnostic("bad-value", f"{path}: the weights do not fit the spec "
                                    f"the checkpoint carries ({last})")]) from None


def checked_state_dict(data: dict[str, Any], path: str | os.PathLike,
                       model: SkipGraphModule) -> dict[str, Any]:
    """The checkpoint's weights with wrapper prefixes removed; a SpecError naming the missing
    and unexpected keys when they do not fit the spec the file carries."""
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise SpecError([Diagnostic("bad-value", f"{path}: the checkpoint has no state_dict")])
    state = strip_wrapper_prefixes(state)
    want = set(model.state_dict())
    missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
    if missing or unexpected:
        parts = ([f"missing {len(missing)} key(s), e.g. `{missing[0]}`"] if missing else []) + \
            ([f"{len(unexpected)} unexpected key(s), e.g. `{unexpected[0]}`"] if unexpected
             else [])
        raise SpecError([Diagnostic("bad-value", f"{path}: the weights do not fit the spec "
                                    f"the checkpoint carries ({'; '.join(parts)})")])
    return state
