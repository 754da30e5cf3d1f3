"""Graph stage: expansion into the IR, channel inference and validation (torch-free)."""
from __future__ import annotations

from ..spec.loader import ResolvedSpec
from .contract import InputContract, InputShapeError, total_stride
from .expand import expand
from .infer import infer
from .ir import INPUT_ID, IREdge, IRGraph, IRHead, IRNode, Resample, SpecMeta, module_name
from .validate import check_input_shape, validate

__all__ = ["INPUT_ID", "IREdge", "IRGraph", "IRHead", "IRNode", "Resample", "SpecMeta",
           "module_name", "expand", "infer", "validate", "check_input_shape", "build_ir",
           "InputContract", "InputShapeError", "total_stride"]


def build_ir(rs: ResolvedSpec) -> IRGraph:
    """expand -> validate -> infer: the typed IR every backend reads."""
    return infer(validate(expand(rs)))
