"""Names of normalisations and activations, and how a setting is written (torch-free).

A setting is a name (``"batch"``) or a mapping ``{type: name, **kwargs}`` (``{type: group,
groups: 8}``), as in MONAI's ``split_args``. The torch factories live in :mod:`.layers`.
"""
from __future__ import annotations

from typing import Any

__all__ = ["NORM_NAMES", "ACT_NAMES", "split_option", "resolve_norm", "channel_problem"]

# name -> keyword arguments it accepts
NORM_NAMES: dict[str, tuple[str, ...]] = {
    "none": (), "batch": ("momentum", "eps", "affine", "convention"), "instance": ("eps", "affine"),
    "group": ("groups", "eps", "affine"), "layer": ("eps",),
}
ACT_NAMES: dict[str, tuple[str, ...]] = {
    "none": (), "relu": (), "elu": ("alpha",), "leaky_relu": ("negative_slope",),
    "prelu": ("num_parameters",), "gelu": (), "silu": (), "tanh": (), "sigmoid": (),
}


def split_option(value: Any, table: dict[str, tuple[str, ...]], what: str
                 ) -> tuple[str, dict[str, Any]]:
    """``"relu"`` or ``{type: relu}`` -> ``("relu", {})``; raises ValueError naming the options."""
    from ..errors import did_you_mean
    if isinstance(value, str):
        name, kwargs = value, {}
    elif isinstance(value, dict) and isinstance(value.get("type"), str):
        name, kwargs = value["type"], {k: v for k, v in value.items() if k != "type"}
    else:
        raise ValueError(f"{what} must be a name or {{type: name, ...}}, got {value!r}")
    if name not in table:
        raise ValueError(f"unknown {what} `{name}`; " + (did_you_mean(name, table) or ""))
    unknown = set(kwargs) - set(table[name])
    if unknown:
        raise ValueError(f"{what} `{name}` takes no option(s) {sorted(unknown)}; "
                         f"it accepts {list(table[name]) or 'none'}")
    for key, value in kwargs.items():
        kind, ok = _OPTION_TYPES.get(key, ("", lambda v: True))
        if not ok(value):
            raise ValueError(f"{what} `{name}`: `{key}` must be {kind}, not {value!r}")
    return name, kwargs


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# what each option's value must be (torch raises deep inside a layer otherwise)
_OPTION_TYPES: dict[str, tuple[str, Any]] = {
    "momentum": ("a number", _number), "eps": ("a positive number", lambda v: _number(v) and v > 0),
    "alpha": ("a number", _number), "negative_slope": ("a number", _number),
    "affine": ("true or false", lambda v: isinstance(v, bool)),
    "groups": ("an integer >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool)
               and v >= 1),
    "num_parameters": ("an integer >= 1", lambda v: isinstance(v, int)
                       and not isinstance(v, bool) and v >= 1),
    "convention": ("`torch` or `keras`", lambda v: v in ("torch", "keras")),
}


def channel_problem(norm: Any, act: Any, channels: int) -> str | None:
    """What the layers a ``norm`` and ``act`` setting build cannot do on ``channels``
    channels (checked by `check`, so torch never raises it at build time), or None: group
    norm needs its groups (at most the channels) to divide them; a PReLU has 1 or
    ``channels`` parameters."""
    name, kwargs = split_option(norm, NORM_NAMES, "normalisation")
    if name == "group":
        groups = min(kwargs.get("groups", 8), channels)
        if channels % groups:
            return (f"group norm with {groups} groups cannot split {channels} channels "
                    f"(the groups must divide the channels)")
    name, kwargs = split_option(act, ACT_NAMES, "activation")
    if name == "prelu" and kwargs.get("num_parameters", 1) not in (1, channels):
        return (f"a PReLU with num_parameters {kwargs['num_parameters']} on {channels} "
                f"channels (it takes 1 or the channel count)")
    return None


# Keras' BatchNormalization defaults; its `momentum` is the weight of the *old* running
# statistics (moving = m * moving + (1 - m) * batch), PyTorch's the weight of the *new* batch
_KERAS_BN = {"momentum": 0.99, "eps": 1e-3}


def resolve_norm(value: Any) -> tuple[str, dict[str, Any]]:
    """A normalisation setting as PyTorch's keyword arguments: ``{type: batch, momentum: 0.01,
    convention: keras}`` (a value copied from Keras code) becomes ``momentum=0.99,
    eps=1e-3`` (Keras' default epsilon unless ``eps`` is given). Raises ValueError for an
    unknown name, option or convention, or a momentum outside [0, 1]."""
    name, kwargs = split_option(value, NORM_NAMES, "normalisation")
    convention = kwargs.pop("convention", "torch")
    if convention not in ("torch", "keras"):
        raise ValueError(f"normalisation `{name}`: convention must be `torch` or `keras`, not "
                         f"{convention!r}")
    momentum = kwargs.get("momentum", _KERAS_BN["momentum"] if convention == "keras" else 0.1)
    if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
        raise ValueError(f"normalisation `{name}`: momentum must be a number in [0, 1], not "
                         f"{momentum!r}")
    if convention == "keras":
        kwargs = {"eps": _KERAS_BN["eps"], **kwargs, "momentum": 1 - momentum}
    return name, kwargs
