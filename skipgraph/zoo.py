"""Spec names -> spec files: the shipped zoo and the user's own spec folders.

The zoo is package data (``skipgraph/specs/`` in a wheel, copied there from the repository's
top-level ``specs/`` by the build hook in setup.py); a source checkout or an editable install reads
the repository's ``specs/`` in place. ``$SKIPGRAPH_SPEC_PATH`` lists more folders to search
(``os.pathsep``-separated, searched first, so a user's file can shadow a zoo spec of the same name).

A name is a file's stem (``unet_pp``, or ``unet_pp.yaml``); anything that exists as a path is used
as a path. This module is torch-free.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import Diagnostic, Span, SpecError, did_you_mean

__all__ = ["SPEC_PATH_ENV", "zoo_dir", "schema_file", "spec_folders", "zoo_specs", "find_spec",
           "resolve_spec_path", "not_found"]

SPEC_PATH_ENV = "SKIPGRAPH_SPEC_PATH"
_SUFFIXES = (".yaml", ".yml")
_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root in a source checkout


def package_or_checkout(relative: str) -> Path:
    """``skipgraph/<relative>`` when installed from a wheel, else the checkout's ``<relative>``."""
    packaged = resources.files("skipgraph").joinpath(relative)
    if isinstance(packaged, Path) and packaged.exists():
        return packaged
    return _CHECKOUT / relative


def zoo_dir() -> Path:
    """The folder of the shipped specs (``$SKIPGRAPH_ZOO`` replaces it, for tests)."""
    return Path(os.environ.get("SKIPGRAPH_ZOO") or package_or_checkout("specs"))


def schema_file() -> Path:
    """The shipped JSON Schema of the spec format (``skipgraph schema`` prints the same)."""
    return package_or_checkout("docs/skipgraph.schema.json")


def spec_folders() -> list[Path]:
    """Folders searched for spec names, in order: ``$SKIPGRAPH_SPEC_PATH``'s, then the zoo."""
    user = [Path(p) for p in os.environ.get(SPEC_PATH_ENV, "").split(os.pathsep) if p.strip()]
    return user + [zoo_dir()]


def _specs_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in _SUFFIXES and p.is_file()}


def zoo_specs(include_user: bool = False) -> dict[str, Path]:
    """Name -> file of the shipped specs (and of ``$SKIPGRAPH_SPEC_PATH``'s when asked; the
    first folder that has a name wins)."""
    folders = spec_folders() if include_user else [zoo_dir()]
    found: dict[str, Path] = {}
    for folder in folders:
        for name, path in _specs_in(folder).items():
            found.setdefault(name, path)
    return found


def find_spec(name: str) -> Path | None:
    """The file a spec name stands for, or None. Names never contain a folder separator."""
    if not name or os.sep in name or (os.altsep and os.altsep in name):
        return None
    stem = name[:-len(suffix)] if (suffix := Path(name).suffix) in _SUFFIXES else name
    return zoo_specs(include_user=True).get(stem)


def looks_like_path(text: str) -> bool:
    """Whether a spec argument reads as a file path: a ``.yaml`` / ``.yml`` suffix or a
    folder separator (a spec name has neither)."""
    return Path(text).suffix.lower() in _SUFFIXES or os.sep in text or \
        bool(os.altsep and os.altsep in text)


def resolve_spec_path(name_or_path: str | os.PathLike) -> str:
    """A path that exists, as given; else a spec name (``unet_pp``) -> its file. An argument
    that reads as a path (a ``.yaml`` / ``.yml`` suffix or a folder separator) is a file or
    an error, never silently a zoo spec of the same stem (that one is named in the hint).

    Raises:
        SpecError: ``file-not-found`` when it is neither, with the close names as a hint.
    """
    text = os.fspath(name_or_path)
    if os.path.exists(text):
        return text
    if looks_like_path(text):
        stem = Path(text).stem if Path(text).suffix in _SUFFIXES else Path(text).name
        same = zoo_specs(include_user=True).get(stem)
        message = f"spec file {text} does not exist"
        if same is None:
            raise SpecError([not_found(text, message)])
        raise SpecError([Diagnostic("file-not-found", message, hint=f"the zoo spec `{stem}` "
                                    f"has that name: give `{stem}` (no suffix, no folder) "
                                    "for it")])
    found = find_spec(text)
    if found is not None:
        return str(found)
    raise SpecError([not_found(text, f"no spec file or zoo spec `{text}`")])


def not_found(name: str, message: str, span: Span | None = None) -> Diagnostic:
    """A ``file-not-found`` diagnostic whose hint names the closest spec names."""
    names = zoo_specs(include_user=True)
    stem = Path(name).stem if Path(name).suffix in _SUFFIXES else name
    hint = did_you_mean(stem, names, n=3) or f"spec names: {', '.join(names) or 'none found'}"
    return Diagnostic("file-not-found", message, span, hint=hint)

