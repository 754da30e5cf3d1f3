"""What every backbone provider's stages share (torch only): a stage that can be frozen, and
the local weight files: a safetensors file or a ``torch.save``'d state_dict, read without
executing code (``torch.load(weights_only=True)``); nothing is downloaded."""
from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torch.nn as nn

from ..safe_load import UnreadableFileError, load_torch_file

__all__ = ["BackboneWeightsError", "FrozenStage", "read_weights", "listing", "weight_problems"]


class BackboneWeightsError(ValueError):
    """A weights file that does not fit the backbone (missing, unexpected or mis-shaped keys)."""


class FrozenStage(nn.Sequential):
    """A provider's modules between two feature outputs, run in order. ``frozen``: no
    gradients, and its normalisation layers stay in eval mode (their running statistics are
    kept) while the network trains."""

    def __init__(self, modules: "OrderedDict[str, nn.Module]", frozen: bool = False):
        super().__init__(modules)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenStage":
        super().train(mode and not self.frozen)
        self.training = mode
        return self


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file or a torch.save'd dict (no code executed)."""
    if not os.path.isfile(path):
        raise BackboneWeightsError(f"backbone weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            try:
                state = load_file(path, device="cpu")
            except Exception:  # noqa: BLE001 - safetensors raises its own error type
                raise UnreadableFileError("it is not a safetensors file, or it is damaged"
                                          ) from None
        else:
            state = load_torch_file(path)
    except UnreadableFileError as exc:
        raise BackboneWeightsError(f"cannot read backbone weights {path}: {exc}") from None
    for key in ("state_dict", "model"):  # the usual wrappers of training checkpoints
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise BackboneWeightsError(f"{path} holds no state_dict (a mapping of names to tensors)")
    return state


def listing(keys: list[str], limit: int = 8) -> str:
    """The first ``limit`` keys, comma-separated, and how many more."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def weight_problems(state: dict[str, torch.Tensor], model: nn.Module,
                    used: list[nn.Module]) -> list[str]:
    """Why ``state`` does not load into the part of ``model`` that the ``used`` modules (the
    stages) hold: its missing keys, unexpected keys and wrongly shaped tensors, one line each
    (empty: it loads)."""
    own = model.state_dict(keep_vars=True)
    ids = {id(t) for m in used for t in (*m.parameters(), *m.buffers())}
    needed = [k for k, t in own.items() if id(t) in ids]
    missing = [k for k in needed if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
              for k in needed if k in state and state[k].shape != own[k].shape]
    return [f"{label}: {listing(keys)}" for label, keys in
            (("missing keys", missing), ("unexpected keys", unexpected),
             ("wrong shapes", shapes)) if keys]
