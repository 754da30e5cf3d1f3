"""``skipgraph nnunet plans``: a copy of an nnU-Net v2 plans file whose configurations train a
spec (torch-free: it only reads and writes JSON and checks the spec).

Per configuration, nnU-Net's planned architecture is mapped onto the params the spec declares:

=================  ============================================================
spec param         from the plans' ``architecture.arch_kwargs``
=================  ============================================================
``dims``           ``len(patch_size)``
``depth``          ``n_stages - 1`` (resolution levels below the input)
``stages``         ``n_stages``
``base``           ``features_per_stage[0]``
``max_width``      ``max(features_per_stage)``
``kernel``         ``kernel_sizes``, when one size on every stage and axis
``kernels``        ``kernel_sizes`` per stage, when they differ (anisotropic plans)
``strides``        ``strides[1:]`` per stage below the first, when not 2 everywhere
``convs``          ``n_conv_per_stage``, when the same on every stage
``decoder_convs``  ``n_conv_per_stage_decoder``, when the same on every stage
``blocks``         ``n_blocks_per_stage`` (ResidualEncoderUNet plans, ``nnunet_resenc``)
``ds``             ``true`` (nnU-Net trains with deep supervision)
=================  ============================================================

``--set`` values win over mapped ones. ``in_channels`` and ``classes`` come from nnU-Net when it
builds the network. A per-axis entry equal on every axis is written as one int (``[2, 2, 2]`` ->
``2``). The built spec's grid must then be the plans': stride 1 at stage 0, the plans' stride
(per axis) from each level to the next down to the spec's deepest level (a spec without a
``strides`` param resamples by 2), and a patch size its total stride divides on every axis.
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

from ... import load_ir
from ...graph.contract import per_axis, total_stride
from ...zoo import resolve_spec_path, zoo_specs
from . import NETWORK_CLASS

__all__ = ["PlansError", "map_configuration", "skipgraph_plans", "write_plans"]


class PlansError(ValueError):
    """A plans file or configuration the spec cannot be mapped onto (message says which)."""


# spec param -> the per-stage plans entry it takes when that holds one value throughout
_UNIFORM = {"kernel": "kernel_sizes", "convs": "n_conv_per_stage",
            "decoder_convs": "n_conv_per_stage_decoder"}


def _uniform(values: list) -> Any | None:
    """The one value of a per-stage list (kernels: one size on every axis too), or None."""
    flat = [v for x in values for v in (x if isinstance(x, list) else [x])]
    return flat[0] if flat and all(v == flat[0] for v in flat) else None


def map_configuration(config: dict[str, Any], declared: set[str]) -> dict[str, Any]:
    """The spec params one configuration gives (only those in ``declared``)."""
    arch = config.get("architecture", {}).get("arch_kwargs", {})
    feats = arch.get("features_per_stage")
    if not feats or "strides" not in arch or "patch_size" not in config:
        raise PlansError("no `patch_size` or architecture `features_per_stage` / `strides`")
    n = len(feats)
    params: dict[str, Any] = {"dims": len(config["patch_size"]), "depth": n - 1, "stages": n,
                              "base": feats[0], "max_width": max(feats), "ds": True}
    for param, entry in _UNIFORM.items():
        if param in declared and entry in arch:
            value = _uniform(arch[entry])
            if value is None and param == "kernel" and "kernels" in declared:
                params["kernels"] = [_compact(k) for k in arch[entry]]
                continue
            if value is None:
                raise PlansError(f"{entry} {arch[entry]} differ by stage or axis; the spec's "
                                 f"`{param}` is one value (a spec with a `kernels` param "
                                 "takes one per stage)")
            params[param] = value
    if "blocks" in declared and "n_blocks_per_stage" in arch:  # residual encoder plans
        params["blocks"] = list(arch["n_blocks_per_stage"])
    below = [_compact(s) for s in arch["strides"][1:]]
    if "strides" in declared and any(s != 2 for s in below):
        params["strides"] = below
    return {k: v for k, v in params.items() if k in declared or k == "dims"}


def _compact(value: Any) -> Any:
    """A per-axis entry equal on every axis as one int (``[2, 2, 2]`` -> ``2``)."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(set(value)) == 1 else list(value)
    return value


def _check_geometry(config: dict[str, Any], ir: Any) -> None:
    """The built spec's levels resample as the plans' stages (per axis), and its total stride
    divides the patch size."""
    strides = config["architecture"]["arch_kwargs"]["strides"]
    patch = config["patch_size"]
    dims = len(patch)
    for level, s in enumerate(strides[:ir.max_level + 1]):
        plans = [s] * dims if isinstance(s, int) else list(s)
        want = [1] * dims if level == 0 else list(ir.level_stride(level))
        if plans != want:
            hint = "" if level == 0 else " (give the spec a `strides` param, as nnunet_plain)"
            raise PlansError(f"stage {level} has strides {plans}; the spec resamples by "
                             f"{want} there{hint}")
    total = per_axis(total_stride(ir), dims)
    if any(p % t for p, t in zip(patch, total)):
        raise PlansError(f"patch size {patch} is not divisible by the spec's total stride "
                         f"{list(total)}")


def spec_reference(spec: str) -> str:
    """A zoo name stays a name; a file becomes its absolute path (the plans must find it)."""
    if spec in zoo_specs() and not os.path.exists(spec):
        return spec
    return str(Path(resolve_spec_path(spec)).resolve())


def skipgraph_plans(plans: dict[str, Any], spec: str, overrides: dict[str, Any], name: str,
                    configurations: list[str] | None = None
                    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The new plans (``plans_name`` = ``name``) and, per rewritten configuration, the spec
    params it got. Raises PlansError (which configuration, what) or SpecError."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name == plans.get("plans_name"):
        raise PlansError(f"--name `{name}` must be a new plans identifier (letters, digits, "
                         f"_ . -), not the source plans' `{plans.get('plans_name')}`")
    configs = plans.get("configurations")
    if not isinstance(configs, dict):
        raise PlansError("not an nnU-Net v2 plans file (no `configurations`)")
    with_arch = [c for c, v in configs.items() if "architecture" in v]
    chosen = configurations or with_arch
    unknown = [c for c in chosen if c not in with_arch]
    if unknown:
        raise PlansError(f"configurations {unknown} have no architecture of their own; "
                         f"choose from {with_arch}")
    ref = spec_reference(spec)
    declared = set(load_ir(resolve_spec_path(ref)).params)
    out = copy.deepcopy(plans)
    out["plans_name"] = name
    used: dict[str, dict[str, Any]] = {}
    for cname in chosen:
        config = out["configurations"][cname]
        try:
            params = {**map_configuration(config, declared), **overrides}
            ir = load_ir(resolve_spec_path(ref), **params)
            _check_geometry(config, ir)
        except PlansError as exc:
            raise PlansError(f"configuration `{cname}`: {exc}") from None
        strides = config["architecture"]["arch_kwargs"]["strides"]
        config["architecture"] = {
            "network_class_name": NETWORK_CLASS,
            "arch_kwargs": {"spec": ref, "params": params, "strides": strides},
            "_kw_requires_import": []}
        used[cname] = params
    return out, used


def write_plans(plans_path: str | Path, spec: str, overrides: dict[str, Any], name: str,
                configurations: list[str] | None = None
                ) -> tuple[Path, dict[str, Any], dict[str, dict[str, Any]]]:
    """Read ``plans_path``, write ``<its folder>/<name>.json``; returns the path, the new
    plans and the params per configuration."""
    plans_path = Path(plans_path)
    try:
        plans = json.loads(plans_path.read_text())
    except json.JSONDecodeError as exc:
        raise PlansError(f"{plans_path}: not JSON ({exc})") from None
    if not isinstance(plans, dict):
        raise PlansError(f"{plans_path}: not an nnU-Net v2 plans file")
    new, used = skipgraph_plans(plans, spec, overrides, name, configurations)
    out = plans_path.parent / f"{name}.json"
    out.write_text(json.dumps(new, indent=4))
    return out, new, used
