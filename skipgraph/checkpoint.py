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
from .spec import load_spec_text

__all__ = ["FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "model_from_checkpoint"]

FORMAT = "skipgraph-checkpoint"
VERSION = 1


def save_checkpoint(model: SkipGraphModule, path: str | os.PathLike,
                    extra: dict[str, Any] | None = None) -> None:
    """Write ``model`` (a full or pruned compiled spec) and optional plain-data ``extra``.

    Raises:
        ValueError: the model's BatchNorm layers are folded (save before folding).
        OSError: the file cannot be written.
    """
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
        data = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpecError([Diagnostic("file-not-found", f"no such checkpoint: {path}")]) from None
    except Exception as exc:  # a non-checkpoint or a pickle that weights_only refuses
        raise SpecError([Diagnostic("bad-value", f"{path} is not a skipgraph checkpoint "
                                    f"({type(exc).__name__}: {str(exc).splitlines()[0]})")]
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
    model = compile_ir(ir.subgraph(heads) if heads else ir, recompute=recompute)
    model.pruned = bool(heads)
    model.load_state_dict(data["state_dict"], strict=True)
    return model


def load_checkpoint(path: str | os.PathLike) -> SkipGraphModule:
    """Rebuild the module a checkpoint holds and load its weights (strictly), in training mode
    on the CPU; see :func:`skipgraph.load_checkpoint`.

    Raises:
        SpecError: as :func:`read_checkpoint`, or a stored spec that no longer validates.
        RuntimeError: the weights do not match the rebuilt module.
    """
    return model_from_checkpoint(read_checkpoint(path), path)
