"""Rule tables for every primitive (impl, shape, VJP, JVP); importing this package registers them."""
from . import effects, elementwise, reductions, structure  # noqa: F401
