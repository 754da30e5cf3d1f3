"""skipgraph: U-Net-family architectures as YAML graph specs, compiled to PyTorch.

Pipeline (one direction): ``spec`` (YAML -> validated Spec) -> ``graph`` (IR: expand, validate,
infer) -> ``compile`` (torch.fx module) | ``render`` (graphviz) | ``summary``.

Every function that takes a spec takes a file path or a spec name: ``"unet_pp"`` is looked up in
the folders of ``$SKIPGRAPH_SPEC_PATH`` (``os.pathsep``-separated), then in the zoo shipped with the
package. Tensors are ``(N, C, *spatial)``: ``(N, C, H, W)`` for a 2D spec, ``(N, C, D, H, W)`` for 3D.

Example:
    >>> import skipgraph
    >>> model = skipgraph.build("unet_pp", ds=True)              # doctest: +SKIP
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
           "save_checkpoint", "import_peer", "__version__"]
__version__ = "0.1.0"


def load_spec(path: str | os.PathLike, **params: Any) -> ResolvedSpec:
    """Read and validate a spec, with params overridden by keyword (like ``--set``). Torch-free.

    Args:
        path: a spec file, or a spec name (``"unet_pp"``, ``"unet_pp.yaml"``) searched in
            ``$SKIPGRAPH_SPEC_PATH`` and the zoo. ``extends:`` bases are merged in.
        **params: values for the spec's ``params`` (same type as the default; an int is
            accepted for a float param).

    Returns:
        The validated spec (``.spec``), the resolved params (``.params``) and the file it came
        from (``.path``).

    Raises:
        SpecError: every problem found, with file, line and column: a name that matches no spec
            (``file-not-found``, with the close names as a hint), YAML errors, unknown keys or
            params, wrong types, bad expressions, unknown block or head types, ``extends`` cycles.
    """
    return _load_spec(path, params)


def load_ir(path: str | os.PathLike, **params: Any) -> IRGraph:
    """Load a spec and expand it into the validated graph IR (channels inferred). Torch-free.

    Args:
        path, **params: as for :func:`load_spec`.

    Returns:
        The :class:`~skipgraph.graph.IRGraph`: explicit nodes, edges and heads; ``str(ir)``
        prints one line per node in the papers' notation.

    Raises:
        SpecError: as :func:`load_spec`, plus graph problems: families that connect nothing,
            unknown nodes, cycles outside declared loops, nodes without input or reaching no
            head, level or channel mismatches, and expansions beyond the resource limits.
    """
    return build_ir(_load_spec(path, params))


def build(path: str | os.PathLike, seed: int | None = None, recompute: tuple[str, ...] = (),
          checkpoint: tuple[str, ...] | None = None, **params: Any) -> "SkipGraphModule":
    """Compile a spec into an ``nn.Module`` (a :class:`~skipgraph.compile.SkipGraphModule`).

    The module takes ``(N, in_channels, *spatial)`` float tensors, spatial sizes multiples of
    ``2**max_level`` (or any size with ``input: {pad: true}``). In training mode it returns every
    head: one tensor ``(N, classes, *spatial)`` when the spec has one head, else a dict by head id
    (``{"X[0,1]": ..., "X[0,4]": ...}``; a classification-guided module gives ``(N, 2)``). In eval
    mode it returns one tensor, the spec's ``output``: the selected head, or the mean of the heads.
    Heads end in the activation the spec says (the zoo's: sigmoid probabilities in [0, 1]).

    Args:
        path: a spec file or a spec name (see :func:`load_spec`).
        seed: seeds the weight initialisation (the global RNG is left untouched); None uses the
            global RNG.
        recompute: node families or loops whose activations are recomputed in the backward
            pass (activation checkpointing: less memory, about one more forward pass of time).
        checkpoint: the deprecated name of ``recompute`` (a ``DeprecationWarning``).
        **params: values for the spec's ``params``, e.g. ``ds=True, base=16, dims=3``.

    Raises:
        SpecError: any problem in the spec or the params (see :func:`load_ir`), a model over the
            parameter budget (``SKIPGRAPH_MAX_PARAMS``, checked before any allocation), or a
            ``recompute`` name that is neither a node family nor a loop.
        ImportError: a user block's torch class cannot be imported.
    """
    ir = load_ir(path, **params)  # spec errors surface before torch is imported
    from .compile.module import compile_ir, recompute_names
    return compile_ir(ir, seed=seed, recompute=recompute_names(recompute, checkpoint))


def load_checkpoint(path: str | os.PathLike) -> "SkipGraphModule":
    """Rebuild the module a checkpoint holds, with its weights (no pickled code is executed).

    The checkpoint carries the resolved spec (``extends`` merged, params substituted), so no
    spec file or zoo is read: a checkpoint of a zoo spec loads anywhere. A pruned checkpoint
    comes back pruned. The module is in training mode, on the CPU.

    Raises:
        SpecError: the file does not exist (``file-not-found``), is not a skipgraph checkpoint
            or has an unsupported version (``bad-value``), or its spec no longer validates (for
            example, a block type that is not registered: ``--import`` its module first).
        RuntimeError: the stored weights do not match the rebuilt module (strict loading).
    """
    from .checkpoint import load_checkpoint as _load
    return _load(path)


def save_checkpoint(model: "SkipGraphModule", path: str | os.PathLike,
                    extra: dict[str, Any] | None = None) -> None:
    """Write a checkpoint: the resolved spec, the pruned heads if any, the weights (moved to the
    CPU) and ``extra`` (plain data only: numbers, strings, lists, dicts, tensors).

    Raises:
        ValueError: the model's BatchNorm layers were folded for inference (save it before
            folding).
        OSError: the file cannot be written.
    """
    from .checkpoint import save_checkpoint as _save
    _save(model, path, extra)


def import_peer(path: str | os.PathLike, peer: str, output: str | os.PathLike | None = None,
                spec: str | None = None, plans: str | os.PathLike | None = None,
                configuration: str | None = None, **params: Any) -> "SkipGraphModule":
    """A peer's trained weights as a compiled skipgraph model with equal outputs (what
    ``skipgraph import`` does); written as a checkpoint when ``output`` is given.

    Args:
        path: an nnU-Net trainer's ``checkpoint_final.pth``, a MONAI or smp ``state_dict``
            (``.pt``/``.pth``, or a dict holding one) or a ``.safetensors`` file. Read with
            ``torch.load(weights_only=True)``: nothing in the file is executed.
        peer: ``"nnunet"``, ``"monai"`` or ``"smp"`` (or any package / zoo spec registered in
            :data:`skipgraph.integrations.peers.PEERS`).
        spec: the zoo spec, where the family has several (default: detected from the keys).
        plans, configuration: nnU-Net's plans.json and configuration (default: the trainer
            checkpoint's own).
        **params: spec params the weights do not show (like ``--set``).

    Raises:
        ValueError (``PeerImportError``): an unsafe or unreadable file, a configuration the
            zoo spec does not reproduce, or the first tensor that does not fit (its key, the
            expected and the found shape).
        SpecError: a param the spec rejects. ImportError: the peer package is missing.
    """
    from .integrations.importing import import_checkpoint
    model, info = import_checkpoint(path, peer, spec, params, plans, configuration)
    if output is not None:
        from .checkpoint import save_checkpoint as _save
        _save(model, output, extra={"imported_from": info})
    return model
