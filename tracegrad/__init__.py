"""tracegrad: trace NumPy code into an IR, differentiate it, and compile it with Numba.

    import tracegrad as tg
    import tracegrad.numpy as tnp
"""
from . import rules as _rules  # noqa: F401  (registers every primitive's rules)
from . import numpy  # noqa: F401  (installs the NumPy protocol on tracers)
from . import random_intercept  # noqa: F401  (numpy.random calls become run-time draws while tracing)
from . import debug
from . import nn, optim
from .config import detect_anomaly, eager
from .control_flow import checkpoint, cond, fori_loop, scan, while_loop
from .callback import ShapeDtypeStruct, pure_callback
from .custom_jvp import custom_jvp
from .custom_vjp import Function, custom_vjp
from .errors import AnomalyError, EagerFallbackWarning, TracerError
from .ir import IR, verify
from .pytree import register_pytree_node, tree_flatten, tree_leaves, tree_map, tree_unflatten
from .testing import check_grads
from .conveniences import elementwise_grad, hvp, jacobian, ravel_pytree
from .transforms import (grad, hessian, jacfwd, jacrev, jit, jvp, make_ir, stop_gradient,
                         value_and_grad, vjp)
from .vmap import vmap

__version__ = "0.1.0"

__all__ = [
    "EagerFallbackWarning", "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "jit", "vmap", "make_ir",
    "stop_gradient", "eager", "detect_anomaly", "debug", "check_grads", "TracerError",
    "AnomalyError", "tree_map", "tree_flatten", "tree_unflatten", "tree_leaves",
    "register_pytree_node", "IR", "verify",
    "cond", "fori_loop", "scan", "while_loop", "checkpoint",
    "nn", "optim", "custom_vjp", "custom_jvp", "Function", "pure_callback", "ShapeDtypeStruct",
    "elementwise_grad", "hvp", "jacobian", "ravel_pytree",
]
