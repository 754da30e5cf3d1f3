"""skipgraph: U-Net-family architectures as YAML graph specs, compiled to PyTorch.

Pipeline (one direction): ``spec`` (YAML -> validated Spec) -> ``graph`` (IR: expand, validate,
infer) -> ``compile`` (torch.fx module) | ``render`` (graphviz) | ``summary``.

Example:
    >>> import skipgraph
    >>> model = skipgraph.build("specs/unet_pp.yaml", ds=True)   # doctest: +SKIP
    >>> sum(p.numel() for p in model.parameters())                # doctest: +SKIP
    9041700
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import Diagnostic, SpecError
from .graph import IRGraph, build_ir
from .spec import ResolvedSpec
from .spec import load_spec as _load_spec

if TYPE_CHECKING:
    from .compile import SkipGraphModule

__all__ = ["SpecError", "Diagnostic", "load_spec", "load_ir", "build", "load_checkpoint",
           "save_checkpoint", "__version__"]
__version__ = "0.1.0"


def load_spec(path: str | os.PathLike, **params: Any) -> ResolvedSpec:
    """Load and validate a spec, with params overridden by keyword (like ``--set``)."""
    return _load_spec(path, params)


def load_ir(path: str | os.PathLike, **params: Any) -> IRGraph:
    """Load a spec and expand it into the typed, validated IR (no torch needed)."""
    return build_ir(_load_spec(path, params))


def build(path: str | os.PathLike, seed: int | None = None, recompute: tuple[str, ...] = (),
          checkpoint: tuple[str, ...] | None = None, **params: Any) -> "SkipGraphModule":
    """Compile the spec at ``path`` into an ``nn.Module``; ``seed`` makes the weights
    reproducible; ``recompute`` names node families or loops whose activations are recomputed
    in the backward pass (activation checkpointing: less memory); ``checkpoint`` is its
    deprecated name (DeprecationWarning). Raises :class:`SpecError` for any problem in the
    spec."""
    ir = load_ir(path, **params)  # spec errors surface before torch is imported
    from .compile.module import compile_ir, recompute_names
    return compile_ir(ir, seed=seed, recompute=recompute_names(recompute, checkpoint))


def load_checkpoint(path: str | os.PathLike) -> "SkipGraphModule":
    """Rebuild a module from a skipgraph checkpoint (no pickled code is executed)."""
    from .checkpoint import load_checkpoint as _load
    return _load(path)


def save_checkpoint(model: "SkipGraphModule", path: str | os.PathLike,
                    extra: dict[str, Any] | None = None) -> None:
    """Write a checkpoint: the resolved spec, pruned heads if any, weights, ``extra``."""
    from .checkpoint import save_checkpoint as _save
    _save(model, path, extra)
