"""Compile stage: IR -> torch.fx-backed ``nn.Module`` (imports torch)."""
from .module import InputShapeError, SkipGraphModule, compile_ir, recompute_names

__all__ = ["SkipGraphModule", "compile_ir", "InputShapeError", "recompute_names"]
