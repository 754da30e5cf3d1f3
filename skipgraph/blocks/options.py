"""Normalisations and activations by name: two registries, and how a setting is written
(torch-free). A user module loaded with ``--import`` adds one with :func:`register_norm` /
:func:`register_act`.

A setting is a name (``"batch"``) or a mapping ``{type: name, **options}`` (``{type: group,
groups: 8}``), as in MONAI's ``split_args``; the fields ``norm:`` and ``act:`` of blocks and
resampling ops are typed :data:`skipgraph.fields.types.NormSetting` / ``ActSetting``, which check
it here (an unknown name or option is an error at its file:line:col). An entry's settings model
(a :class:`LayerOptions` subclass) validates the options and may state what the layer cannot
do on a number of channels (:meth:`LayerOptions.problem`, reported by `check`); its builder,
named by ``"pkg.module:attr"`` and imported only when compiling, is called as
``builder(dims, channels, **options) -> nn.Module | None`` for a norm and
``builder(**options) -> nn.Module | None`` for an activation (None: no layer). The built-in
builders live in :mod:`.layers`.
"""
from __future__ import annotations

from typing import Any, Callable

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt,
                      ValidationError, field_validator)

from ..errors import did_you_mean
from ..registry import Entry, Registry

__all__ = ["LayerOptions", "NORMS", "ACTS", "register_norm", "register_act", "norm_choice",
           "act_choice", "resolve_norm", "layer_params", "channel_problem", "check_norm", "check_act"]

Number = StrictFloat | StrictInt


class LayerOptions(BaseModel):
    """Options of a normalisation or activation (``{type: NAME, **options}``). Options left
    out are not passed, so the builder's (torch's) defaults apply."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def kwargs(self) -> dict[str, Any]:
        """The builder's keyword arguments."""
        return self.model_dump(exclude_unset=True)

    def problem(self, channels: int) -> str | None:
        """What the layer cannot do on ``channels`` channels (so torch never raises it at
        build time), or None."""
        return None

    def params(self, channels: int) -> int:
        """Learnable parameters the layer holds on ``channels`` channels (for the torch-free
        estimate of :mod:`skipgraph.graph.estimate`); 0 unless a subclass says otherwise."""
        return 0


class NoOptions(LayerOptions):
    """No options."""


NORMS: Registry[LayerOptions] = Registry("normalisation", "skipgraph.blocks.options")
ACTS: Registry[LayerOptions] = Registry("activation", "skipgraph.blocks.options")


def register_norm(name: str, options: type[LayerOptions], builder: str | Callable[..., Any],
                  description: str = "", replace: bool = False) -> Entry[LayerOptions]:
    """Add a normalisation: ``builder(dims, channels, **options) -> nn.Module | None``."""
    return NORMS.register(name, options, builder, description, replace)


def register_act(name: str, options: type[LayerOptions], builder: str | Callable[..., Any],
                 description: str = "", replace: bool = False) -> Entry[LayerOptions]:
    """Add an activation: ``builder(**options) -> nn.Module | None``."""
    return ACTS.register(name, options, builder, description, replace)


def _choice(value: Any, registry: Registry, what: str) -> tuple[str, LayerOptions]:
    """``"relu"`` or ``{type: relu, ...}`` -> (name, its validated options); raises ValueError
    naming the problem (an unknown name with did-you-mean, an option the entry does not take,
    a value of the wrong kind)."""
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, dict) and isinstance(value.get("type"), str):
        name, options = value["type"], {k: v for k, v in value.items() if k != "type"}
    else:
        raise ValueError(f"{what} must be a name or {{type: name, ...}}, got {value!r}")
    if name not in registry:
        raise ValueError(f"unknown {what} `{name}`; " + (did_you_mean(name, registry.names())
                         or f"known: {', '.join(sorted(registry.names()))}"))
    model = registry.get(name).params
    try:
        return name, model.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            unknown = sorted(set(options) - set(model.model_fields))
            raise ValueError(f"{what} `{name}` takes no option(s) {unknown}; it accepts "
                             f"{list(model.model_fields) or 'none'}") from None
        field = model.model_fields.get(str(err["loc"][0])) if err["loc"] else None
        kind = _kind(field) if field is not None and err["type"] != "value_error" else None
        if kind:
            raise ValueError(f"{what} `{name}`: `{key}` must be {kind}, not "
                             f"{err['input']!r}") from None
        raise ValueError(f"{what} `{name}`: " + (f"`{key}`: " if key and not field else "")
                         + err["msg"].removeprefix("Value error, ")) from None


def _kind(field: Any) -> str | None:
    """What an option's value must be, in words (``an integer >= 1``), from its type."""
    text = str(field.annotation)
    bounds = {type(m).__name__: m for m in field.metadata}
    if "bool" in text:
        return "true or false"
    noun = "a number" if "float" in text else "an integer" if "int" in text else None
    if noun is None:
        return None
    if "Gt" in bounds and bounds["Gt"].gt == 0:
        return "a positive number" if noun == "a number" else "an integer >= 1"
    if "Ge" in bounds and "Le" in bounds:
        return f"{noun} in [{bounds['Ge'].ge}, {bounds['Le'].le}]"
    if "Ge" in bounds:
        return f"{noun} >= {bounds['Ge'].ge}"
    return noun


def norm_choice(value: Any) -> tuple[str, LayerOptions]:
    return _choice(value, NORMS, "normalisation")


def act_choice(value: Any) -> tuple[str, LayerOptions]:
    return _choice(value, ACTS, "activation")


def layer_params(norm: Any, act: Any, channels: int) -> int:
    """Learnable parameters of the norm and activation a ``norm`` / ``act`` setting builds on
    ``channels`` channels (an affine norm's scale and shift, a PReLU's slopes)."""
    return norm_choice(norm)[1].params(channels) + act_choice(act)[1].params(channels)


def check_norm(value: Any) -> Any:
    """The validator of a ``norm:`` setting (the value is kept as written)."""
    norm_choice(value)
    return value


def check_act(value: Any) -> Any:
    """The validator of an ``act:`` setting (the value is kept as written)."""
    act_choice(value)
    return value


def resolve_norm(value: Any) -> tuple[str, dict[str, Any]]:
    """A normalisation setting -> (name, the builder's keyword arguments). Raises ValueError
    for an unknown name or option (see :class:`BatchOptions` for Keras' convention)."""
    name, options = norm_choice(value)
    return name, options.kwargs()


def channel_problem(norm: Any, act: Any, channels: int) -> str | None:
    """What the layers a ``norm`` and ``act`` setting build cannot do on ``channels``
    channels (checked by `check`, so torch never raises it at build time), or None."""
    for choice in (norm_choice(norm), act_choice(act)):
        problem = choice[1].problem(channels)
        if problem:
            return problem
    return None


# --- the built-in entries ---------------------------------------------------------------------

# Keras' BatchNormalization defaults; its `momentum` is the weight of the *old* running
# statistics (moving = m * moving + (1 - m) * batch), PyTorch's the weight of the *new* batch
_KERAS_BN = {"momentum": 0.99, "eps": 1e-3}


class _Eps(LayerOptions):
    eps: Number | None = Field(None, gt=0)
    """Added to the variance (a positive number); default: torch's."""


class _Affine(_Eps):
    affine: StrictBool | None = None
    """Learnable scale and shift (true or false); default: torch's."""


class BatchOptions(_Affine):
    """Batch norm. ``convention: keras`` reads a value copied from Keras code: ``{type: batch,
    momentum: 0.99, convention: keras}`` becomes PyTorch's ``momentum=0.01, eps=1e-3``
    (Keras' default epsilon unless ``eps`` is given)."""

    momentum: Number | None = Field(None, ge=0, le=1)
    """Running-statistics momentum in [0, 1], in the `convention`'s meaning."""
    convention: str = "torch"
    """Whose momentum `momentum` is: `torch` (weight of the new batch) or `keras` (of the old
    statistics)."""

    @field_validator("convention")
    @classmethod
    def _convention(cls, value: str) -> str:
        if value not in ("torch", "keras"):
            raise ValueError(f"convention must be `torch` or `keras`, not {value!r}")
        return value

    def kwargs(self) -> dict[str, Any]:
        kwargs = super().kwargs()
        if kwargs.pop("convention", "torch") == "keras":
            momentum = kwargs.get("momentum", _KERAS_BN["momentum"])
            kwargs = {"eps": _KERAS_BN["eps"], **kwargs, "momentum": 1 - momentum}
        return kwargs

    def params(self, channels: int) -> int:
        return 0 if self.affine is False else 2 * channels  # torch: affine=True


class GroupOptions(_Affine):
    """Group norm (Wu & He 2018)."""

    groups: StrictInt = Field(8, ge=1)
    """Channel groups (at most the channels; they must divide the channels)."""

    def problem(self, channels: int) -> str | None:
        groups = min(self.groups, channels)
        if channels % groups:
            return (f"group norm with {groups} groups cannot split {channels} channels "
                    f"(the groups must divide the channels)")
        return None

    def params(self, channels: int) -> int:
        return 0 if self.affine is False else 2 * channels


class InstanceOptions(_Affine):
    """Instance norm."""

    def params(self, channels: int) -> int:
        return 2 * channels if self.affine else 0  # torch: affine=False


class LayerNormOptions(_Eps):
    """Layer norm over the channels and positions (a group norm of 1 group)."""

    def params(self, channels: int) -> int:
        return 2 * channels


class EluOptions(LayerOptions):
    alpha: Number | None = None
    """The ELU's alpha."""


class LeakyReluOptions(LayerOptions):
    negative_slope: Number | None = None
    """The slope below 0."""


class PReluOptions(LayerOptions):
    num_parameters: StrictInt | None = Field(None, ge=1)
    """Learned slopes: 1, or one per channel."""

    def problem(self, channels: int) -> str | None:
        if self.num_parameters not in (None, 1, channels):
            return (f"a PReLU with num_parameters {self.num_parameters} on {channels} "
                    f"channels (it takes 1 or the channel count)")
        return None

    def params(self, channels: int) -> int:
        return self.num_parameters or 1


_L = "skipgraph.blocks.layers:"
for _name, _options, _doc in [
        ("none", NoOptions, "no normalisation"), ("batch", BatchOptions, "batch norm"),
        ("instance", InstanceOptions, "instance norm"), ("group", GroupOptions, "group norm"),
        ("layer", LayerNormOptions, "layer norm (group norm with 1 group)")]:
    register_norm(_name, _options, f"{_L}{_name}_norm", _doc)
for _name, _options in [("none", NoOptions), ("relu", NoOptions), ("elu", EluOptions),
                        ("leaky_relu", LeakyReluOptions), ("prelu", PReluOptions),
                        ("gelu", NoOptions), ("silu", NoOptions), ("tanh", NoOptions),
                        ("sigmoid", NoOptions)]:
    register_act(_name, _options, f"{_L}{_name}_act", f"{_name} activation")
