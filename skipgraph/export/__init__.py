"""Export stage: ONNX, torch.export and standalone Python (imports torch)."""
from .eject import eject_source
from .exporters import (AllHeads, ExportError, check_onnx, export_onnx, export_program,
                        onnx_files)

__all__ = ["eject_source", "AllHeads", "ExportError", "check_onnx", "export_onnx", "onnx_files",
           "export_program"]
