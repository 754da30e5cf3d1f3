"""Imported by nnU-Net's trainer search (``nnUNet_extTrainer`` = this folder): skipgraph's
trainers, including the budget variants made on first lookup."""
from skipgraph.integrations.nnunet.trainer import TRAINER, budget_trainer, nnUNetTrainerSkipGraph

__all__ = [TRAINER]


def __getattr__(name: str) -> type:
    return budget_trainer(name)
