"""nnU-Net v2 integration: any spec as the network of a plans file (``SkipGraphNetwork``), the
trainer that gives nnU-Net the spec's deep-supervision scales (``trainer.nnUNetTrainerSkipGraph``)
and the plans rewrite behind ``skipgraph nnunet plans``. Training needs
``pip install skipgraph[nnunet]``; see docs/nnunet.md. Importing this package does not import
torch (the CLI's plans command stays torch-free)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SkipGraphNetwork", "NETWORK_CLASS", "TRAINER", "trainer_dir"]

# what plans files name in `network_class_name` (nnU-Net resolves it with pydoc.locate)
NETWORK_CLASS = "skipgraph.integrations.nnunet.SkipGraphNetwork"
# the trainer for them (trainer.py; the budget variants add `_{E}epochs[_{I}iters][_nomirror]`)
TRAINER = "nnUNetTrainerSkipGraph"


def trainer_dir() -> Path:
    """The folder to put in ``nnUNet_extTrainer`` so nnU-Net finds skipgraph's trainers."""
    return Path(__file__).resolve().parent / "ext_trainers"


def __getattr__(name: str) -> Any:
    if name == "SkipGraphNetwork":
        from .network import SkipGraphNetwork
        return SkipGraphNetwork
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
