"""ONNX (torch's dynamo-based exporter) and ``torch.export``, with dynamic batch and spatial
sizes, and errors that name the node an export fails at."""
from __future__ import annotations

import io
import logging
import os
import warnings
from contextlib import redirect_stderr, redirect_stdout

import torch
import torch.nn as nn

from ..compile.module import SkipGraphModule
from ..errors import Diagnostic, SpecError
from ..extras import require
from ..graph.contract import per_axis
from .shapes import dynamic_shapes, example_input, stride

__all__ = ["AllHeads", "export_onnx", "export_program", "ExportError", "check_onnx",
           "onnx_files", "ONNX_SINGLE_FILE_LIMIT"]

# protobuf's limit on one serialised message: an ONNX file holding its weights must stay below
ONNX_SINGLE_FILE_LIMIT = 2 * 1024 ** 3


class ExportError(SpecError):
    """An export that cannot work; the message names the node where it fails."""


class AllHeads(nn.Module):
    """Every head (eval-mode layers), as a tuple in ``model.heads`` order."""

    def __init__(self, model: SkipGraphModule):
        super().__init__()
        self.model = model
        self.heads = list(model.heads)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.run_graph(x, training=True)
        return tuple(out[h] for h in self.heads) if isinstance(out, dict) else (out,)


def _target(model: SkipGraphModule, all_heads: bool) -> nn.Module:
    model.eval()
    return AllHeads(model) if all_heads else model


def export_program(model: SkipGraphModule, path: str | os.PathLike | None = None,
                   all_heads: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` with dynamic batch/spatial sizes; saved as ``.pt2`` when ``path``."""
    target = _target(model, all_heads)
    example = example_input(model.ir)
    try:
        program = torch.export.export(target, (example,),
                                      dynamic_shapes=dynamic_shapes(model.ir))
    except Exception as exc:
        raise _localize(model, "torch.export", exc) from None
    _check_general(model, program, example)
    if path is not None:
        torch.export.save(program, os.fspath(path))
    return program


def _check_general(model: SkipGraphModule, program: torch.export.ExportedProgram,
                   example: torch.Tensor) -> None:
    """Run the program one total stride per axis larger than the example it was traced at.
    torch.export can specialise a size silently (a size derived from the input that is 1 in
    the example: 0/1 specialisation) and then guard it at run time; such a program is
    refused, saying which size it is specialised to, instead of saved as a dynamic one.

    Raises:
        ExportError: the program fails at the other size."""
    steps = per_axis(stride(model.ir), model.ir.dims)
    other = torch.randn(1, *example.shape[1:2],
                        *[n + s for n, s in zip(example.shape[2:], steps)])
    try:
        with torch.no_grad():
            program.module()(other)
    except Exception as exc:
        traced = "x".join(map(str, example.shape[2:]))
        tried = "x".join(map(str, other.shape[2:]))
        raise ExportError([Diagnostic(
            "export-failed", f"torch.export specialised the program to the example's spatial "
            f"size {traced}: it fails at {tried} ({_first_line(exc)[:200]})",
            hint="a block derives a size that is 1 at the example (e.g. one attention window "
                 "per axis); its settings model's `export_side()` can ask for larger example "
                 "maps (skipgraph.export.shapes.example_blocks)")]) from None


def export_onnx(model: SkipGraphModule, path: str | os.PathLike, all_heads: bool = False,
                external_data: bool | None = None) -> list[str]:
    """Write an ONNX model; returns its output names (head ids when ``all_heads``).

    The weights go into the one ``.onnx`` file unless they are too large for it (2 GiB,
    protobuf's limit) or ``external_data=True``: then they go into ``<path>.data`` beside it
    (:func:`onnx_files` lists what was written).

    The graph takes ``x`` of shape ``(N, C_in, *spatial)`` with dynamic batch and spatial sizes
    (multiples of the total stride) and gives the eval output (``output``; for an
    ``output: {mode: list}`` spec one output per listed head, named after it), or every head
    with ``all_heads``.

    Raises:
        MissingExtraError: ``onnx`` or ``onnxscript`` is not installed (the ``export`` extra).
        ExportError: the export fails; the message names the node or edge where.
    """
    for module in ("onnx", "onnxscript"):  # torch's dynamo exporter needs both
        require(module)
    target = _target(model, all_heads)
    names = [_onnx_name(h) for h in model.heads] if all_heads else \
        [_onnx_name(h) for h in model.output_heads] if model.ir.output_mode == "list" else \
        ["output"]
    if external_data is None:  # a margin for the graph itself beside the weights
        size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        external_data = size > 0.9 * ONNX_SINGLE_FILE_LIMIT
    external = external_data
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)  # the exporter's progress lines and torchvision notes
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), \
                redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(target, (example_input(model.ir),), os.fspath(path), dynamo=True,
                              dynamic_shapes=dynamic_shapes(model.ir), input_names=["x"],
                              output_names=names, external_data=external)
    except Exception as exc:
        raise _localize(model, "ONNX export", exc) from None
    finally:
        quiet.setLevel(level)
    return names


def onnx_files(path: str | os.PathLike) -> list[str]:
    """The files an ONNX model consists of: ``path``, then every external-data file its
    tensors name (in the same folder), in order of first use."""
    onnx = require("onnx")
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    folder = os.path.dirname(os.fspath(path))
    files = [os.fspath(path)]
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next(e.value for e in tensor.external_data if e.key == "location")
            if os.path.join(folder, location) not in files:
                files.append(os.path.join(folder, location))
    return files


def check_onnx(path: str | os.PathLike) -> None:
    onnx = require("onnx")
    onnx.checker.check_model(onnx.load(os.fspath(path)))


def _onnx_name(head_id: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in head_id).strip("_")


def _localize(model: SkipGraphModule, what: str, exc: Exception) -> ExportError:
    """Export each submodule alone (on the input it sees) to find the node that fails."""
    inputs: dict[str, tuple] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs.setdefault(
        name, tuple(a.detach() for a in args if isinstance(a, torch.Tensor))))
        for name, m in model.named_children()]
    try:
        with torch.no_grad():
            model.graph_module(training=True)(example_input(model.ir))
    except Exception:  # the model does not even run: report the original error
        pass
    finally:
        for h in hooks:
            h.remove()
    owners = _owners(model)
    for name, args in inputs.items():
        try:
            torch.export.export(model.get_submodule(name), args)
        except Exception as sub_exc:
            kind = type(model.get_submodule(name)).__name__
            return ExportError([Diagnostic(
                "export-failed", f"{what} fails at {owners.get(name, name)} (submodule "
                f"`{name}`, {kind}): {_first_line(sub_exc)}",
                hint="a block must be traceable by torch.export (no data-dependent Python "
                     "control flow, no .item()/.numpy())")])
    return ExportError([Diagnostic("export-failed", f"{what} failed: {_first_line(exc)}")])


def _owners(model: SkipGraphModule) -> dict[str, str]:
    ir = model.ir
    out = {ir.node(n).module_name: f"node {n}" for n in ir.graph.nodes}
    out.update({e.module_name: f"edge {e.src} -> {e.dst} ({e.family})" for e in ir.edges()})
    out.update({h.name: f"head {h.id}" for h in ir.heads.values()})
    return out


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
