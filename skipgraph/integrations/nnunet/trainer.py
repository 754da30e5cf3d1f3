"""``nnUNetTrainerSkipGraph``: nnU-Net's own trainer, told the deep-supervision scales and loss
weights of a spec's heads (see :mod:`.network`), and budget variants named like nnU-Net's.

nnU-Net finds trainers by class name in its package or in the folders of ``nnUNet_extTrainer``;
:func:`skipgraph.integrations.nnunet.trainer_dir` is such a folder (nothing is copied into
nnU-Net), and ``skipgraph nnunet train`` / ``predict`` resolve the names directly. Names:

- ``nnUNetTrainerSkipGraph``: nnU-Net's schedule (1000 epochs of 250 iterations).
- ``nnUNetTrainerSkipGraph_{E}epochs``, ``..._{E}epochs_{I}iters`` and either with
  ``_nomirror``: E epochs of I training iterations (default 250) and max(1, I // 5) validation
  iterations; ``_nomirror`` turns off mirroring in augmentation and in inference (as nnU-Net's
  ``nnUNetTrainerNoMirroring``). Made on first use, for any E and I (as nnU-Net's
  ``nnUNetTrainer_5epochs``).

With a network that is not a :class:`SkipGraphNetwork` (nnU-Net's own U-Net), the trainer is
exactly nnU-Net's, so both run under the same trainer and budget.
"""
from __future__ import annotations

import re

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from . import TRAINER
from .network import SkipGraphNetwork, deep_supervision_weights

__all__ = ["nnUNetTrainerSkipGraph", "budget_trainer", "TRAINER"]

_BUDGET = re.compile(rf"{TRAINER}_(\d{{1,5}})epochs(?:_(\d{{1,6}})iters)?(_nomirror)?")


def _network(trainer: nnUNetTrainer) -> SkipGraphNetwork | None:
    net = trainer.network
    net = getattr(net, "module", net)          # DDP
    net = getattr(net, "_orig_mod", net)       # torch.compile
    return net if isinstance(net, SkipGraphNetwork) else None


class nnUNetTrainerSkipGraph(nnUNetTrainer):
    """nnU-Net's trainer; for a skipgraph network, the deep-supervision targets follow the
    spec's heads (scales from :meth:`SkipGraphNetwork.deep_supervision_scales`) and the loss
    weights from :func:`deep_supervision_weights`."""

    def _get_deep_supervision_scales(self):
        net = _network(self)
        if net is None or not self.enable_deep_supervision:
            return super()._get_deep_supervision_scales()
        return net.deep_supervision_scales(self.configuration_manager.pool_op_kernel_sizes)

    def _build_loss(self):
        loss = super()._build_loss()
        net = _network(self)
        if net is not None and self.enable_deep_supervision:
            weights = deep_supervision_weights(net.ir)
            if self.is_ddp and not self._do_i_compile():
                # nnU-Net's work-around: DDP rejects parameters without gradient
                weights = [max(w, 1e-6) for w in weights]
            loss.weight_factors = tuple(weights)
        return loss


_MADE: dict[str, type] = {}


def budget_trainer(name: str) -> type:
    """The trainer class called ``name`` (``nnUNetTrainerSkipGraph_5epochs_50iters``); raises
    AttributeError for any other name."""
    m = _BUDGET.fullmatch(name)
    if m is None:
        raise AttributeError(name)
    if name not in _MADE:
        epochs, iters, no_mirror = int(m[1]), int(m[2] or 250), bool(m[3])

        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):
            nnUNetTrainerSkipGraph.__init__(self, plans, configuration, fold, dataset_json,
                                            device)
            self.num_epochs = epochs
            self.num_iterations_per_epoch = iters
            self.num_val_iterations_per_epoch = max(1, iters // 5)

        def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
            out = nnUNetTrainerSkipGraph.configure_rotation_dummyDA_mirroring_and_inital_patch_size(
                self)
            if no_mirror:  # (rotation, dummy 2D, initial patch size, mirror axes)
                self.inference_allowed_mirroring_axes = None
                out = (*out[:3], None)
            return out

        _MADE[name] = type(name, (nnUNetTrainerSkipGraph,), {
            "__init__": __init__, "__module__": __name__,
            "configure_rotation_dummyDA_mirroring_and_inital_patch_size":
                configure_rotation_dummyDA_mirroring_and_inital_patch_size})
    return _MADE[name]


def __getattr__(name: str) -> type:
    return budget_trainer(name)
