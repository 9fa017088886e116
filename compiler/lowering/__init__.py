"""The Numba lowering of every primitive, one module per family; importing this package registers
them all in `compiler.rules.LOWERINGS`."""
from . import control, cumulative, effects, elementwise, indexing, linalg  # noqa: F401
from . import reductions, special, structure  # noqa: F401
