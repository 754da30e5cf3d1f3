"""Optional extras: which ``pip install "skipgraph[...]"`` brings a missing module.

The core (spec, graph, compile, render) needs only the base dependencies; ONNX export, training,
the MS-SSIM loss and the MONAI example need an extra. A missing one is reported by naming the
extra to install, never with a traceback (the CLI prints :func:`explain`'s text, exit 2).
"""
from __future__ import annotations

import importlib
import shlex
from importlib import metadata
from pathlib import Path
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtraError", "require", "explain", "pip_install", "constraints_file"]

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


def constraints_file() -> Path:
    """The pip constraints file shipped with skipgraph (the repository's ``constraints.txt``,
    copied into the wheel): it pins the CPU torch build the project is tested with, and the
    torchvision built for it."""
    from .zoo import package_or_checkout
    return package_or_checkout("constraints.txt")


def _pinned_torch(path: Path) -> str | None:
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.strip().startswith("torch=="):
            return line.strip().partition("==")[2]
    return None


def pip_install(extra: str) -> str:
    """The command that installs ``skipgraph[extra]`` without replacing the installed torch.

    An extra's packages (monai, timm, nnunetv2, ...) depend on torch, and an unconstrained pip
    may pull a multi-GB CUDA build over the CPU one. Where the installed torch is the version
    the shipped constraints file pins, the command names that file (``-c``); where another torch
    is installed (a GPU build, say), it pins that version instead, so it is kept.
    """
    target = f'"skipgraph[{extra}]"'
    try:
        installed = metadata.version("torch")
    except metadata.PackageNotFoundError:
        installed = None
    path = constraints_file()
    pinned = _pinned_torch(path)
    if installed is None or (pinned is not None and installed.split("+")[0] == pinned):
        return f"pip install -c {shlex.quote(str(path))} {target}"
    return f'pip install {target} "torch=={installed}"  (keeps the installed torch)'


class MissingExtraError(ImportError):
    """An optional module is not installed; the message names the extra that installs it."""


def _install_hint(module: str, needed_for: str | None = None) -> str | None:
    if module not in EXTRAS:
        return None
    extra, default_use = EXTRAS[module]
    return (f"{needed_for or default_use} needs the optional module `{module}`: "
            f"{pip_install(extra)}")


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
