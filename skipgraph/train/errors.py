"""The error of unusable data (its own module: the folders, the label check and the guards all
raise it, and none of them needs another to do so)."""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data folder or file that cannot be used, or data that does not fit the model, named in
    the message (the CLI prints it and exits 2)."""
