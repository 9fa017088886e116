"""Rule tables for every primitive (impl, shape, VJP, JVP); importing this package registers them."""
from . import control, effects, elementwise, loop_vjp, reductions, structure  # noqa: F401
from . import cumulative, indexing, linalg  # noqa: F401
from . import special  # noqa: F401
from . import batching  # noqa: F401  (vmap rules, tracegrad/rules/batching/)
