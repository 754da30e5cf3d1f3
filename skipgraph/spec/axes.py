"""Moved to :mod:`skipgraph.fields.axes` (below the stages); kept so that code importing it from
here still works. New code imports :mod:`skipgraph.fields.axes`."""
from ..fields.axes import *  # noqa: F401,F403
from ..fields.axes import __all__  # noqa: F401
