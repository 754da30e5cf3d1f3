"""Optional extras: which ``pip install "skipgraph[...]"`` brings a missing module.

The core (spec, graph, compile, render) needs only the base dependencies; ONNX export, training,
the MS-SSIM loss and the MONAI example need an extra. A missing one is reported by naming the
extra to install, never with a traceback (the CLI prints :func:`explain`'s text, exit 2).
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtraError", "require", "explain"]

# top-level module -> (extra, what needs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "onnx": ("export", "ONNX export"),
    "onnxscript": ("export", "ONNX export"),
    "onnxruntime": ("export", "running ONNX models"),
    "PIL": ("train", "reading images for training and evaluation"),
    "scipy": ("train", "object metrics for training and evaluation"),
    "matplotlib": ("train", "training plots"),
    "tqdm": ("train", "progress bars"),
    "pytorch_msssim": ("losses", "the MS-SSIM loss (UNet3+'s hybrid loss)"),
    "monai": ("monai", "the MONAI example"),
    "nibabel": ("medical", "NIfTI volumes"),
}


class MissingExtraError(ImportError):
    """An optional module is not installed; the message names the extra that installs it."""


def _install_hint(module: str, needed_for: str | None = None) -> str | None:
    if module not in EXTRAS:
        return None
    extra, default_use = EXTRAS[module]
    return (f"{needed_for or default_use} needs the optional module `{module}`: "
            f'pip install "skipgraph[{extra}]"')


def require(module: str, needed_for: str | None = None) -> ModuleType:
    """Import ``module`` (a key of :data:`EXTRAS`).

    Raises:
        MissingExtraError: it is not installed; the message says which extra to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(_install_hint(module, needed_for), name=module) from None


def explain(exc: ImportError) -> str:
    """The message to show for an import error: the extra to install when a known optional
    module is missing, else the error's own text."""
    if isinstance(exc, MissingExtraError):
        return str(exc)
    top = (exc.name or "").partition(".")[0]
    return _install_hint(top) or str(exc)
