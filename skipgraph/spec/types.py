"""Moved to :mod:`skipgraph.fields.types` (below the stages); kept so that code importing it from
here still works. New code imports :mod:`skipgraph.fields.types`."""
from ..fields.types import *  # noqa: F401,F403
from ..fields.types import __all__  # noqa: F401
