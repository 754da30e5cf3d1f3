"""Bring a peer's trained weights into skipgraph (``skipgraph import``), and back out
(``skipgraph export --peer``).

A peer is a package whose network a zoo spec reproduces exactly (every entry of
:data:`skipgraph.integrations.peers.PEERS`); ``--peer`` names it by family (``nnunet`` =
dynamic_network_architectures, ``monai``, ``smp`` = segmentation_models_pytorch), by package,
or by the zoo spec itself. Import reads the file without executing anything in it
(``torch.load(weights_only=True)``, or safetensors), chooses the spec and its params, builds
the peer's class with them, checks every tensor against it (the first missing, unexpected or
wrongly shaped tensor is named with both shapes), maps the keys with the peer's documented
renaming and writes a skipgraph checkpoint whose outputs equal the peer's.

The spec's params come, lowest priority first, from the spec's defaults, the tensor shapes
(the peer's ``infer``: widths, channels, depth, kernels where they show), an nnU-Net plans
configuration, and ``--set``. An nnU-Net trainer checkpoint (``checkpoint_final.pth``) carries
its plans, configuration and dataset.json in ``init_args``; ``--plans`` / ``--configuration``
override them, and the plans' ``network_class_name`` chooses ``nnunet_plain``
(PlainConvUNet) or ``nnunet_resenc`` (ResidualEncoderUNet).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoint import read_checkpoint, save_checkpoint, strip_wrapper_prefixes
from .peers import PEERS, Peer

__all__ = ["PeerImportError", "FAMILIES", "peer_specs", "read_peer_file", "find_state_dict",
           "import_checkpoint", "import_peer", "export_peer_state_dict", "export_peer"]

# --peer families -> the package their PEERS entries name
FAMILIES = {"nnunet": "dynamic_network_architectures", "monai": "monai",
            "smp": "segmentation_models_pytorch"}
# where trainers and libraries put the weights inside a saved dict
_STATE_KEYS = ("network_weights", "state_dict", "model_state_dict", "model", "net", "network")
# nnU-Net's plans classes -> its zoo spec
_NNUNET_CLASSES = {"PlainConvUNet": "nnunet_plain", "ResidualEncoderUNet": "nnunet_resenc"}
# what nnunet_plain / nnunet_resenc reproduce of the plans' arch_kwargs besides the shapes
_NNUNET_FIXED = {"conv_bias": True, "norm_op": "InstanceNorm", "nonlin": "LeakyReLU",
                 "dropout_op": None}


class PeerImportError(ValueError):
    """A peer file that cannot become (or come from) a skipgraph checkpoint; the message says
    which file and, for weights, the first tensor that does not map."""


def peer_specs(peer: str) -> list[str]:
    """The zoo specs of a ``--peer`` name (family, package or spec), in PEERS order."""
    if peer in PEERS:
        return [peer]
    package = FAMILIES.get(peer, peer)
    specs = [name for name, p in PEERS.items() if p.package == package]
    if not specs:
        names = sorted(set(FAMILIES) | {p.package for p in PEERS.values()} | set(PEERS))
        raise PeerImportError(f"--peer `{peer}` is not a known peer (one of: {', '.join(names)})")
    return specs


def _numpy_scalars() -> list:
    """The numpy globals a pickled numpy scalar needs (nnU-Net logs losses and Dice as numpy
    floats): rebuilding a scalar from its dtype and bytes runs no code of the file's."""
    try:
        import numpy as np
    except ImportError:
        return []
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32",
                                          "int16", "int8", "uint8", "bool")]
    return [scalar, np.dtype, *dtypes]


def read_peer_file(path: str | os.PathLike) -> Any:
    """The contents of a peer's weight file: ``.safetensors`` through safetensors, anything
    else through ``torch.load(weights_only=True)`` (numpy scalars allowed, nothing executed).

    Raises:
        PeerImportError: a missing file, or one that holds anything but plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise PeerImportError(f"no such peer checkpoint: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as exc:  # a corrupt header
            raise PeerImportError(f"{path}: not a safetensors file ({exc})") from None
    allowed = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        if allowed is None:
            return torch.load(path, map_location="cpu", weights_only=True)
        with allowed(_numpy_scalars()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or a pickle of objects weights_only refuses
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PeerImportError(f"{path}: not a plain-data torch checkpoint ({first}); skipgraph "
                              "only reads tensors and plain containers") from None


def find_state_dict(data: Any, path: str | os.PathLike = "checkpoint") -> dict[str, torch.Tensor]:
    """The state_dict in a loaded file: the file itself, or its ``network_weights`` (nnU-Net),
    ``state_dict`` / ``model_state_dict`` / ``model`` / ``net`` / ``network`` entry; wrapper
    prefixes (``module.``, ``_orig_mod.``) removed."""
    if isinstance(data, Mapping):
        for key in _STATE_KEYS:
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data or \
            not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise PeerImportError(f"{path}: no state_dict (a dict of tensors, or one under "
                              f"{', '.join(repr(k) for k in _STATE_KEYS)})")
    return strip_wrapper_prefixes(dict(data))


def _spec_params(spec: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved params of a zoo spec with ``overrides`` (SpecError for a bad one)."""
    from .. import load_ir
    from ..zoo import resolve_spec_path
    return dict(load_ir(resolve_spec_path(spec), **overrides).params)


def _declared(spec: str) -> set[str]:
    from .. import load_spec
    from ..zoo import resolve_spec_path
    return set(load_spec(resolve_spec_path(spec)).params)


def _inferred(peer: Peer, state: Mapping[str, torch.Tensor], spec: str) -> dict[str, Any]:
    """What the tensor shapes say, restricted to the params the spec declares."""
    if peer.infer is None:
        return {}
    declared = _declared(spec)
    return {k: v for k, v in peer.infer(state).items() if k in declared}


def _detect(specs: list[str], state: Mapping[str, torch.Tensor],
            overrides: Mapping[str, Any]) -> str:
    """The one spec among ``specs`` whose peer has exactly the file's keys."""
    tried = []
    for spec in specs:
        peer = PEERS[spec]
        try:
            params = _spec_params(spec, {**_inferred(peer, state, spec), **overrides})
            keys = set(peer.make(params).state_dict())
        except ImportError:
            raise
        except Exception:  # tensors of another peer (KeyError), params it cannot take
            tried.append(spec)
            continue
        if keys == set(state):
            return spec
        tried.append(spec)
    nnunet = all(PEERS[s].package == FAMILIES["nnunet"] for s in specs)
    raise PeerImportError(f"the tensors match none of the peers {', '.join(tried)} with the "
                          "inferred params: name the network with --spec (and --set what "
                          "differs)" + ("; a bare nnU-Net state_dict needs --plans PLANS.json "
                                        "and --configuration" if nnunet else ""))


def _check_tensors(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                   label: str, params: Mapping[str, Any], path: Any) -> None:
    """The first tensor that differs between the peer built with ``params`` and the file."""
    for key, value in expected.items():
        if key not in state:
            raise PeerImportError(f"{path}: missing tensor `{key}` (expected shape "
                                  f"{tuple(value.shape)} for {label} with {_show(params)})")
        if tuple(state[key].shape) != tuple(value.shape):
            raise PeerImportError(f"{path}: tensor `{key}` has shape {tuple(state[key].shape)}, "
                                  f"expected {tuple(value.shape)} for {label} with "
                                  f"{_show(params)} (give the right value with --set)")
    extra = [k for k in state if k not in expected]
    if extra:
        raise PeerImportError(f"{path}: unexpected tensor `{extra[0]}` "
                              f"{tuple(state[extra[0]].shape)} ({len(extra)} in all) is not "
                              f"part of {label} with {_show(params)}")


def _show(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


# --- nnU-Net ------------------------------------------------------------------------------

def _nnunet_configuration(plans: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A configuration with its ``inherits_from`` chain merged (nnU-Net's rule)."""
    configs = plans.get("configurations")
    if not isinstance(configs, Mapping) or name not in configs:
        raise PeerImportError(f"the plans have no configuration `{name}` (they have "
                              f"{sorted(configs) if isinstance(configs, Mapping) else 'none'})")
    config, seen = dict(configs[name]), {name}
    while "inherits_from" in config:
        parent = config.pop("inherits_from")
        if parent in seen or parent not in configs:
            raise PeerImportError(f"configuration `{name}` inherits from `{parent}`, which "
                                  "the plans do not resolve")
        seen.add(parent)
        config = {**configs[parent], **config}
    return config


def _nnunet_spec(config: Mapping[str, Any], cname: str) -> str:
    arch = config.get("architecture", {})
    cls = str(arch.get("network_class_name", "")).rsplit(".", 1)[-1]
    if cls not in _NNUNET_CLASSES:
        raise PeerImportError(f"configuration `{cname}` builds `{cls or '?'}`; skipgraph "
                              f"imports {' and '.join(_NNUNET_CLASSES)}")
    kwargs = arch.get("arch_kwargs", {})
    for key, want in _NNUNET_FIXED.items():
        got = kwargs.get(key, want)
        same = got == want if not isinstance(want, str) else want in str(got)
        if not same:
            raise PeerImportError(f"configuration `{cname}`: arch_kwargs `{key}` is {got!r}; "
                                  f"{_NNUNET_CLASSES[cls]} reproduces {want!r}")
    norm = kwargs.get("norm_op_kwargs") or {}
    if norm.get("affine", True) is not True or norm.get("eps", 1e-5) != 1e-5:
        raise PeerImportError(f"configuration `{cname}`: norm_op_kwargs {norm} (the spec "
                              "reproduces eps 1e-5, affine)")
    slope = (kwargs.get("nonlin_kwargs") or {}).get("negative_slope", 0.01)
    if slope != 0.01:
        raise PeerImportError(f"configuration `{cname}`: LeakyReLU negative_slope {slope} "
                              "(the spec reproduces 0.01)")
    return _NNUNET_CLASSES[cls]


def _read_json(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PeerImportError(f"no such file: {path}") from None
    except json.JSONDecodeError as exc:
        raise PeerImportError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PeerImportError(f"{path}: not a JSON object")
    return data


def _nnunet_source(data: Any, plans_path: str | os.PathLike | None,
                   configuration: str | None, path: Any
                   ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(spec, params from the plans, provenance) of an nnU-Net checkpoint or state_dict."""
    from .nnunet.plans import PlansError, map_configuration
    init = data.get("init_args") if isinstance(data, Mapping) else None
    init = init if isinstance(init, Mapping) else {}
    plans = _read_json(plans_path) if plans_path else init.get("plans")
    cname = configuration or init.get("configuration")
    if not isinstance(plans, Mapping):
        raise PeerImportError(f"{path}: no plans in the checkpoint's init_args; give --plans "
                              "PLANS.json (and --configuration)")
    if not cname:
        raise PeerImportError(f"{path}: which configuration? give --configuration (one of "
                              f"{sorted(plans.get('configurations', {}))})")
    config = _nnunet_configuration(plans, cname)
    spec = _nnunet_spec(config, cname)
    try:
        params = map_configuration(config, _declared(spec))
    except PlansError as exc:
        raise PeerImportError(f"configuration `{cname}`: {exc}") from None
    provenance = {"peer": "nnunet", "configuration": cname, "plans": dict(plans),
                  "trainer_name": data.get("trainer_name", "nnUNetTrainer")
                  if isinstance(data, Mapping) else "nnUNetTrainer"}
    if isinstance(init.get("dataset_json"), Mapping):
        provenance["dataset_json"] = dict(init["dataset_json"])
    elif plans_path and (Path(plans_path).parent / "dataset.json").is_file():
        # a trained-model folder: plans.json and dataset.json side by side
        provenance["dataset_json"] = _read_json(Path(plans_path).parent / "dataset.json")
    if isinstance(init.get("fold"), (int, str)):
        provenance["fold"] = init["fold"]
    axes = data.get("inference_allowed_mirroring_axes") if isinstance(data, Mapping) else None
    if isinstance(axes, (list, tuple)):
        provenance["inference_allowed_mirroring_axes"] = [int(a) for a in axes]
    return spec, params, provenance


# --- import -------------------------------------------------------------------------------

def import_checkpoint(path: str | os.PathLike, peer: str, spec: str | None = None,
                      overrides: Mapping[str, Any] | None = None,
                      plans: str | os.PathLike | None = None,
                      configuration: str | None = None):
    """A compiled skipgraph model holding a peer's trained weights, and what it came from.

    Args:
        path: the peer's file: an nnU-Net ``checkpoint_final.pth``, a ``state_dict``
            (``.pt``/``.pth``, or a dict holding one under ``state_dict``, ``model``, ...),
            or a ``.safetensors`` file.
        peer: ``nnunet``, ``monai``, ``smp`` (or a package or zoo spec in PEERS).
        spec: the zoo spec when the peer family has several (default: the one whose peer
            has exactly the file's tensors, with the inferred params).
        overrides: spec params (``--set``), winning over inferred and planned ones.
        plans, configuration: nnU-Net's plans.json and configuration (default: those in
            the trainer checkpoint's ``init_args``).

    Returns:
        ``(model, info)``: the :class:`~skipgraph.compile.SkipGraphModule` (training mode,
        CPU) whose outputs equal the peer's on the same input, and plain data about the
        source (``peer``, ``spec``, ``params``, ``source``; nnU-Net's plans, configuration,
        dataset.json and trainer name), which :func:`import_peer` stores in the checkpoint.

    Raises:
        PeerImportError: an unreadable or unsafe file, a peer or configuration skipgraph
            does not reproduce, or the first tensor that does not fit (key, shapes).
        SpecError: a ``--set`` value the spec rejects.
        ImportError: the peer's package is not installed.
    """
    data = read_peer_file(path)
    state = find_state_dict(data, path)
    overrides = dict(overrides or {})
    specs = peer_specs(peer)
    info: dict[str, Any] = {"peer": peer}
    planned: dict[str, Any] = {}
    nnunet = all(PEERS[s].package == FAMILIES["nnunet"] for s in specs)
    if nnunet and (plans or (isinstance(data, Mapping) and "init_args" in data)):
        planned_spec, planned, info = _nnunet_source(data, plans, configuration, path)
        if spec not in (None, planned_spec):
            raise PeerImportError(f"the plans build {planned_spec}, not --spec {spec}")
        spec = planned_spec
    if spec is None:
        spec = specs[0] if len(specs) == 1 else _detect(specs, state, overrides)
    elif spec not in specs:
        raise PeerImportError(f"--spec {spec} is not a {peer} peer (those are: "
                              f"{', '.join(specs)})")
    entry = PEERS[spec]
    try:
        inferred = _inferred(entry, state, spec)
    except KeyError as exc:
        raise PeerImportError(f"{path}: no tensor {exc} - these are not {entry.label} "
                              f"weights") from None
    params = _spec_params(spec, {**inferred, **planned, **overrides})
    model = _build(spec, params)
    peer_module = entry.make(params)
    _check_tensors(peer_module.state_dict(), state, entry.label, params, path)
    peer_module.load_state_dict(state, strict=True)
    from .peers import load_peer_weights
    try:
        load_peer_weights(model, peer_module, spec)
    except ValueError as exc:
        raise PeerImportError(f"{path}: {exc}") from None
    info.update(spec=spec, params=params, source=str(path), label=entry.label)
    return model, info


def _build(spec: str, params: Mapping[str, Any]):
    from .. import build
    from ..zoo import resolve_spec_path
    return build(resolve_spec_path(spec), **params)


def import_peer(path: str | os.PathLike, peer: str, output: str | os.PathLike,
                spec: str | None = None, overrides: Mapping[str, Any] | None = None,
                plans: str | os.PathLike | None = None, configuration: str | None = None):
    """:func:`import_checkpoint`, then write the model as a skipgraph checkpoint at
    ``output`` (its ``extra["imported_from"]`` keeps the source's plain data). Returns
    ``(model, info)``; raises as :func:`import_checkpoint`, and OSError when ``output``
    cannot be written."""
    model, info = import_checkpoint(path, peer, spec, overrides, plans, configuration)
    save_checkpoint(model, output, extra={"imported_from": info})
    return model, info


# --- export -------------------------------------------------------------------------------

def export_peer_state_dict(model, peer: str | None = None, spec: str | None = None):
    """The peer's ``state_dict`` holding ``model``'s weights (loads with ``strict=True`` into
    the peer's class built with ``model.ir.params``), and the peer module.

    Tensors the spec has no counterpart for (a peer's deep-supervision heads when the spec
    was built without them) keep the peer's initialisation; the peer's forward does not use
    them then. Raises PeerImportError for a spec that is no peer's network, a pruned model,
    or a tensor that does not fit."""
    from .peers import peer_key_map
    spec = _model_spec(model, spec)
    if peer is not None and spec not in peer_specs(peer):
        raise PeerImportError(f"{spec} is not a {peer} network (its peer is "
                              f"{PEERS[spec].label})")
    if getattr(model, "pruned", False):
        raise PeerImportError(f"the model is pruned to {list(model.output_heads)}: export the "
                              "full network to its peer")
    params = dict(model.ir.params)
    peer_module = PEERS[spec].make(params)
    ours = model.state_dict()
    target = peer_module.state_dict()
    mapped = {}
    for key, name in peer_key_map(spec, peer_module).items():
        if name is None or (name not in ours and name.startswith("head_")):
            continue  # an alias, or a head the spec does not build
        if name not in ours or ours[name].shape != target[key].shape:
            raise PeerImportError(f"`{name}` does not fit the peer's `{key}` "
                                  f"{tuple(target[key].shape)}")
        mapped[key] = ours[name]
    missing = peer_module.load_state_dict(mapped, strict=False).missing_keys
    aliases = {k for k, v in peer_key_map(spec, peer_module).items() if v is None}
    if any(k not in aliases and not PEERS[spec].rename(k, peer_module).startswith("head_")
           for k in missing):
        raise PeerImportError(f"no skipgraph weight for the peer's {missing[:3]}")
    return {k: v.detach().clone() for k, v in peer_module.state_dict().items()}, peer_module


def _model_spec(model, spec: str | None = None) -> str:
    """The PEERS spec a model was compiled from: ``spec`` (what an import recorded), else
    the one named as the model's spec."""
    if spec in PEERS:
        return spec
    name = model.ir.name
    for spec in PEERS:
        if spec.replace("_", "-") == name or spec == name:
            return spec
    raise PeerImportError(f"{name} is not the network of a peer (those are: "
                          f"{', '.join(PEERS)})")


def export_peer(checkpoint: str | os.PathLike, peer: str | None, output: str | os.PathLike
                ) -> list[Path]:
    """Write a skipgraph checkpoint's weights for its peer; returns the files written.

    ``output`` ending in ``.pt``/``.pth``: the peer's state_dict (``torch.save``);
    ``.safetensors``: the same as safetensors. Any other ``output`` is a folder, for nnU-Net
    only: an nnU-Net trained-model folder (``plans.json``, ``dataset.json``,
    ``fold_F/checkpoint_final.pth`` with the trainer's keys) that ``nnUNetv2_predict`` and
    ``nnUNetPredictor.initialize_from_trained_model_folder`` load; it needs the plans and
    dataset.json an nnU-Net import stored in the checkpoint."""
    from ..checkpoint import model_from_checkpoint
    data = read_checkpoint(checkpoint)
    model = model_from_checkpoint(data, checkpoint)
    source = (data.get("extra") or {}).get("imported_from") or {}
    state, _ = export_peer_state_dict(model, peer, source.get("spec"))
    output = Path(output)
    if output.suffix in (".pt", ".pth"):
        torch.save(state, output)
        return [output]
    if output.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(output))
        return [output]
    if PEERS[_model_spec(model, source.get("spec"))].package != FAMILIES["nnunet"] or "plans" not in source \
            or "dataset_json" not in source:
        raise PeerImportError(f"-o {output}: give a .pt/.pth/.safetensors file (a folder is "
                              "an nnU-Net model folder, which needs a checkpoint imported from "
                              "an nnU-Net trainer checkpoint: it carries the plans and "
                              "dataset.json)")
    return _write_nnunet_folder(output, state, source)


def _write_nnunet_folder(folder: Path, state: dict, source: Mapping[str, Any]) -> list[Path]:
    fold = source.get("fold", 0)
    (folder / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
    plans, dataset = folder / "plans.json", folder / "dataset.json"
    plans.write_text(json.dumps(source["plans"], indent=4))
    dataset.write_text(json.dumps(source["dataset_json"], indent=4))
    ckpt = folder / f"fold_{fold}" / "checkpoint_final.pth"
    # the keys nnU-Net's trainer writes (save_checkpoint) and its predictor reads
    torch.save({"network_weights": state, "optimizer_state": None, "grad_scaler_state": None,
                "logging": {}, "_best_ema": None, "current_epoch": 0,
                "init_args": {"plans": source["plans"], "configuration": source["configuration"],
                              "fold": fold, "dataset_json": source["dataset_json"],
                              "device": torch.device("cpu")},
                "trainer_name": source.get("trainer_name", "nnUNetTrainer"),
                "inference_allowed_mirroring_axes": source.get(
                    "inference_allowed_mirroring_axes")}, ckpt)
    return [plans, dataset, ckpt]
