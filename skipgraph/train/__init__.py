"""Training, evaluation and comparison on a folder of images and masks (imports torch)."""
from .data import SegmentationFolder
from .errors import DataError
from .evaluate import evaluate_model, predict, pruning_levels
from .loop import TrainConfig, train

__all__ = ["DataError", "SegmentationFolder", "evaluate_model", "predict", "pruning_levels",
           "TrainConfig", "train"]
