"""One registry type for every open vocabulary. Torch-free.

Blocks (:mod:`skipgraph.blocks.registry`), resampling ops (:mod:`skipgraph.resampling`), head
types (:mod:`skipgraph.heads`), losses (:mod:`skipgraph.loss_registry`), normalisations and
activations (:mod:`skipgraph.blocks.options`) and backbone providers
(:mod:`skipgraph.backbone_registry`) are each a :class:`Registry`. An entry is a name, a
torch-free pydantic settings model (it validates a spec's settings and states the entry's
channel and shape rules) and a torch builder named by ``"pkg.module:attr"``, imported only when
a model is compiled. Nothing named inside a spec is ever imported: only registered names are
accepted, and plugins register themselves when loaded with ``--import``.
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from pydantic_core import PydanticCustomError

from .errors import did_you_mean

__all__ = ["RegistryError", "Entry", "Registry", "load_object", "RegisteredName", "RegisteredModel"]

T = TypeVar("T")


class RegistryError(ValueError):
    """Registering a name twice, or asking for one that does not exist."""


def load_object(ref: str | Any) -> Any:
    """``"pkg.module:qual.name"`` -> the object (anything else is returned as it is)."""
    if not isinstance(ref, str):
        return ref
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    params: type[T]                      # the torch-free settings model
    builder: str | Callable[..., Any]    # "module:qualname" or the object itself
    description: str = ""

    def load_builder(self) -> Any:
        return load_object(self.builder)

    @property
    def origin(self) -> str:
        if isinstance(self.builder, str):
            return self.builder
        return f"{self.builder.__module__}:{self.builder.__qualname__}"


class Registry(Generic[T]):
    """Names -> :class:`Entry`. ``builtins`` is the module that registers the built-in entries
    (imported on first use, so importing the registry itself stays cheap)."""

    def __init__(self, what: str, builtins: str, code: str = "unknown-name"):
        self.what = what
        self._builtins = builtins
        self.code = code  # the diagnostic code of an unknown name in a spec
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, params: type[T], builder: str | Callable[..., Any],
                 description: str = "", replace: bool = False) -> Entry[T]:
        """Add an entry; a duplicate name from another origin is an error unless ``replace``."""
        if not name.isidentifier():
            raise RegistryError(f"{self.what} name `{name}` must be an identifier")
        new = Entry(name, params, builder, description)
        old = self._entries.get(name)
        if old is not None and not replace and old.origin != new.origin:
            raise RegistryError(f"{self.what} `{name}` is already registered by {old.origin}; "
                                f"{new.origin} would replace it (pass replace=True to do so)")
        self._entries[name] = new
        return new

    def unregister(self, name: str) -> None:
        """Remove an entry (plugins under test; built-ins should stay)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry[T]:
        self._load_builtins()
        if name not in self._entries:
            raise RegistryError(self.unknown(name))
        return self._entries[name]

    def unknown(self, name: Any) -> str:
        """The message for a name that is not registered (with did-you-mean)."""
        self._load_builtins()
        hint = did_you_mean(str(name), self._entries)
        return (f"unknown {self.what} `{name}`; " + (hint or
                f"known: {', '.join(sorted(self._entries))}"))

    def check(self, name: Any) -> str:
        """``name`` if it is registered, else a pydantic ``unknown_name`` error (the spec
        loader reports it as ``unknown-name`` with a did-you-mean hint)."""
        if not isinstance(name, str):
            raise ValueError(f"{self.what} must be a name, got {name!r}")
        self._load_builtins()
        if name not in self._entries:
            raise PydanticCustomError("unknown_name", "{message}", {
                "message": f"unknown {self.what} `{name}`",
                "hint": did_you_mean(name, self._entries) or "", "code": self.code})
        return name

    def names(self) -> list[str]:
        self._load_builtins()
        return list(self._entries)

    def list(self, pattern: str = "*") -> list[Entry[T]]:
        self._load_builtins()
        return [self._entries[n] for n in sorted(self._entries) if fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def _load_builtins(self) -> None:
        importlib.import_module(self._builtins)  # a no-op after the first call


# --- pydantic fields whose vocabulary is a registry ---------------------------------------------

class RegisteredName:
    """A ``str`` field that must name an entry of ``registry`` (did-you-mean on a typo); its
    JSON Schema lists the names registered when the schema is generated. ``registry`` may be
    given as ``"pkg.module:NAME"`` (looked up on first use: no import cycle with the schema)."""

    def __init__(self, registry: Registry | str, where: Callable[[str], bool] | None = None):
        self._registry = registry
        self.where = where  # names of entries allowed here (default: all)

    @property
    def registry(self) -> Registry:
        return load_object(self._registry)

    def check(self, name: Any) -> str:
        self.registry.check(name)
        if self.where is not None and not self.where(name):
            allowed = [n for n in self.registry.names() if self.where(n)]
            raise ValueError(f"{self.registry.what} `{name}` cannot be used here; "
                             f"use one of {', '.join(allowed)}")
        return name

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema
        return core_schema.no_info_after_validator_function(self.check,
                                                            core_schema.str_schema())

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        names = [n for n in self.registry.names() if self.where is None or self.where(n)]
        return {"enum": names, "type": "string"}


class RegisteredModel:
    """A mapping validated by the settings model of the entry its ``key`` names (``default``
    when absent): the open-vocabulary counterpart of a discriminated union. Its JSON Schema is
    ``anyOf`` the registered models (not ``oneOf``: a ``${...}`` placeholder for the key
    matches every one of them)."""

    def __init__(self, registry: Registry | str, key: str = "type", default: str | None = None,
                 listed: Callable[[type], bool] | None = None):
        self._registry, self.key, self.default = registry, key, default
        self.listed = listed  # the entries' models the JSON Schema offers (default: all)

    @property
    def registry(self) -> Registry:
        return load_object(self._registry)

    def validate(self, value: Any) -> Any:
        entry_model = self.model_for(value)
        return value if isinstance(value, entry_model) else entry_model.model_validate(value)

    def model_for(self, value: Any) -> type:
        """The settings model of the entry ``value`` (a mapping or a settings object) names;
        an unknown name is a pydantic error at the ``key`` (its position in the spec)."""
        if isinstance(value, dict):
            name = value.get(self.key, self.default)
        elif hasattr(value, self.key):
            name = getattr(value, self.key)
        else:
            raise ValueError(f"expected a mapping with `{self.key}:`, got {value!r}")
        try:
            return self.registry.get(self.registry.check(name)).params
        except PydanticCustomError as exc:
            if not (isinstance(value, dict) and self.key in value):
                raise
            from pydantic import ValidationError
            from pydantic_core import InitErrorDetails
            raise ValidationError.from_exception_data(self.registry.what, [InitErrorDetails(
                type=exc, loc=(self.key,), input=name)]) from None

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        models = [self.registry.get(n).params for n in self.registry.names()]
        return {"anyOf": [handler(m.__pydantic_core_schema__) for m in models
                          if self.listed is None or self.listed(m)]}
