"""Compile stage: IR -> torch.fx-backed ``nn.Module`` (imports torch)."""
from .module import SkipGraphModule, compile_ir

__all__ = ["SkipGraphModule", "compile_ir"]
