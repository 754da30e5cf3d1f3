"""``skipgraph nnunet train`` / ``predict``: nnU-Net's own command-line entry points
(``nnUNetv2_train``, ``nnUNetv2_predict``, same arguments) with skipgraph's trainers known by
name.

nnU-Net looks a trainer name up by importing every module of its trainer package first and only
then the ``nnUNet_extTrainer`` folders; where one of its optional trainers cannot be imported
(e.g. a torchvision built for another torch, pulled in through timm), that search fails before
it reaches ours. These wrappers answer skipgraph's trainer names directly and leave every other
name to nnU-Net.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

__all__ = ["train", "predict"]


def _lookup(original: Callable[[str], type]) -> Callable[[str], type]:
    from .trainer import TRAINER, budget_trainer, nnUNetTrainerSkipGraph

    def find(name: str) -> type:
        if name == TRAINER:
            return nnUNetTrainerSkipGraph
        try:
            return budget_trainer(name)
        except AttributeError:
            return original(name)
    return find


def _run(module, entry: str, prog: str, argv: Sequence[str]) -> int:
    module.recursive_find_trainer_class_by_name = _lookup(
        module.recursive_find_trainer_class_by_name)
    old, sys.argv = sys.argv, [prog, *argv]
    try:
        getattr(module, entry)()
    finally:
        sys.argv = old
    return 0


def train(argv: Sequence[str]) -> int:
    """``nnUNetv2_train`` with ``argv`` (``DATASET CONFIG FOLD -p PLANS -tr TRAINER ...``)."""
    from nnunetv2.run import run_training
    return _run(run_training, "run_training_entry", "nnUNetv2_train", argv)


def predict(argv: Sequence[str]) -> int:
    """``nnUNetv2_predict`` with ``argv`` (``-i IN -o OUT -d DATASET -c CONFIG ...``)."""
    from nnunetv2.inference import predict_from_raw_data
    return _run(predict_from_raw_data, "predict_entry_point", "nnUNetv2_predict", argv)
