"""Batch rules (vmap) for every primitive, one module per family; importing this registers them.
The pass that calls them is `tracegrad/batching.py`."""
from . import elementwise, reductions, structure  # noqa: F401
from . import indexing, linalg  # noqa: F401
from . import control, calls  # noqa: F401
