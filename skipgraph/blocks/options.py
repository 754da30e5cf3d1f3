"""Names of normalisations and activations, and how a setting is written (torch-free).

A setting is a name (``"batch"``) or a mapping ``{type: name, **kwargs}`` (``{type: group,
groups: 8}``), as in MONAI's ``split_args``. The torch factories live in :mod:`.layers`.
"""
from __future__ import annotations

from typing import Any

__all__ = ["NORM_NAMES", "ACT_NAMES", "split_option"]

# name -> keyword arguments it accepts
NORM_NAMES: dict[str, tuple[str, ...]] = {
    "none": (), "batch": ("momentum", "eps", "affine"), "instance": ("eps", "affine"),
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
    return name, kwargs
