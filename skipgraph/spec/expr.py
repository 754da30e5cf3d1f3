"""Moved to :mod:`skipgraph.fields.expr` (below the stages); kept so that code importing it from
here still works. New code imports :mod:`skipgraph.fields.expr`."""
from ..fields.expr import *  # noqa: F401,F403
from ..fields.expr import __all__  # noqa: F401
