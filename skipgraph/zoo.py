"""The shipped specs (``specs/`` beside the package) and name -> path lookup."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import Diagnostic, SpecError, did_you_mean
from .spec.yaml_source import load_yaml_file

__all__ = ["zoo_dir", "zoo_specs", "resolve_spec_path", "describe"]


def zoo_dir() -> Path:
    """``$SKIPGRAPH_ZOO`` if set, else the repository's ``specs/`` folder."""
    return Path(os.environ.get("SKIPGRAPH_ZOO") or Path(__file__).resolve().parent.parent / "specs")


def zoo_specs() -> dict[str, Path]:
    folder = zoo_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def resolve_spec_path(name_or_path: str) -> str:
    """A path as given, or a zoo name (``unet_pp``) -> its file."""
    if os.path.exists(name_or_path) or name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    specs = zoo_specs()
    if name_or_path in specs:
        return str(specs[name_or_path])
    raise SpecError([Diagnostic("file-not-found", f"no spec file or zoo spec `{name_or_path}`",
                                hint=did_you_mean(name_or_path, specs))])


def describe(path: Path) -> str:
    data = load_yaml_file(str(path)).data
    if not isinstance(data, dict):
        return ""
    return f"{data.get('name', path.stem)}: {data.get('description', '')}"
