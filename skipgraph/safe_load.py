"""Reading files written by ``torch.save`` without executing anything they hold.

Every reader of a checkpoint or a weights file goes through :func:`load_torch_file`: it loads
with ``weights_only=True`` (tensors and plain containers only; a pickled object is refused) and
turns torch's failure into one sentence saying what the file is not. torch's own message for a
refused pickle advises loading with ``weights_only=False``; that would execute code from the
file, so it is never repeated.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import torch

__all__ = ["UnreadableFileError", "load_torch_file"]


class UnreadableFileError(ValueError):
    """The file exists but holds no safely readable ``torch.save`` data; the message says why."""


def load_torch_file(path: str | os.PathLike) -> Any:
    """The contents of a ``torch.save`` file, on the CPU, with no code executed.

    Raises:
        FileNotFoundError: there is no such file.
        UnreadableFileError: the file is not ``torch.save`` data (damaged, truncated, another
            format), or it holds pickled Python objects beyond tensors and plain containers.
    """
    try:
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        # torch names the refused object "Unsupported global: GLOBAL module.name"
        if "Unsupported global" in str(exc):
            raise UnreadableFileError(
                "it holds pickled Python objects besides tensors and plain containers, which "
                "are not loaded because loading them could run code from the file") from None
        raise UnreadableFileError("it is not a file written by torch.save, or it is damaged"
                                  ) from None
    except Exception:  # noqa: BLE001 - zip, EOF and decode errors of a damaged or foreign file
        raise UnreadableFileError("it is not a file written by torch.save, or it is damaged"
                                  ) from None
