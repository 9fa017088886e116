"""`tg.pure_callback`: arbitrary Python on concrete arrays, from traced and compiled code (one
`callback` equation; compiled code calls it through Numba's object mode)."""
from __future__ import annotations


import numpy as np

from .ir import Aval
from .pytree import tree_flatten, tree_unflatten
from .primitives import callback_p
from .staging import check_leaf
from .trace import (bind, no_trace)
from .custom import fun_name


# ---------------------------------------------------------------- pure_callback

class ShapeDtypeStruct:
    """The shape and dtype of a `pure_callback` result (like `jax.ShapeDtypeStruct`); any object with
    `.shape` and `.dtype` (e.g. a NumPy array) works too."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


class Callback:
    """The Python side of one `callback` equation (its `callback` param); compared by identity.

    `callback(*arrays) -> tuple of arrays`: takes the equation's inputs as NumPy arrays (in order),
    returns one C-contiguous ndarray per output with exactly the declared shape and dtype (0-d arrays
    for scalars). This is what compiled code calls through Numba's object mode. `vmap_method`:
    how vmap batches it (see `pure_callback`).
    """

    def __init__(self, fun, arg_tree, out_tree, avals, vmap_method="sequential"):
        self.fun, self.arg_tree, self.out_tree = fun, arg_tree, out_tree
        self.avals = tuple(avals)
        self.name = fun_name(fun)
        self.vmap_method = vmap_method

    def __repr__(self):
        return self.name

    def with_avals(self, avals):
        """The same callback declaring other results (vmap: the batched results)."""
        return Callback(self.fun, self.arg_tree, self.out_tree, avals, self.vmap_method)

    def __call__(self, *arrays):
        args, kwargs = tree_unflatten(self.arg_tree, [np.asarray(a) for a in arrays])
        with no_trace():
            result = self.fun(*args, **kwargs)
        leaves, _ = tree_flatten(result)
        if len(leaves) != len(self.avals):
            raise TypeError(f"pure_callback: {self.name} returned {len(leaves)} array(s), but "
                            f"result_shape_dtypes declares {len(self.avals)}")
        out = []
        for k, (r, aval) in enumerate(zip(leaves, self.avals)):
            r = np.asarray(r)
            if r.shape != aval.shape:
                raise ValueError(f"pure_callback: {self.name} returned shape {r.shape} for result {k}, "
                                 f"but result_shape_dtypes declares {aval.shape}")
            if r.dtype != aval.dtype:
                if not np.can_cast(r.dtype, aval.dtype, "same_kind"):
                    raise TypeError(f"pure_callback: {self.name} returned dtype {r.dtype} for result "
                                    f"{k}, which does not convert to the declared {aval.dtype}")
                r = r.astype(aval.dtype)
            if not r.flags.c_contiguous:
                r = np.array(r, order="C")
            out.append(r)
        return tuple(out)


_VMAP_METHODS = ("sequential", "expand_dims", "broadcast_all")


def pure_callback(callback, result_shape_dtypes, *args, vmap_method="sequential", **kwargs):
    """Call `callback(*args, **kwargs)` on concrete NumPy arrays, from traced or compiled code.

    `result_shape_dtypes` is a pytree of objects with `.shape` and `.dtype` (`tg.ShapeDtypeStruct`,
    or arrays) describing the result. The callback must be pure: it may be called fewer times than
    written (dead results) or at trace time on constant scalars. It has no derivative: to
    differentiate through it, wrap it in a `tg.custom_vjp` function.

    Under `tg.vmap`, `vmap_method` says how it is batched (JAX's names): "sequential" (default)
    calls `callback` once per member and stacks the results; "expand_dims" calls it once with the
    batched arguments (batch axis first, unbatched arguments with a leading axis of size 1) and
    "broadcast_all" once with every argument broadcast to the batch; both must then return results
    with a leading batch axis.
    """
    if not callable(callback):
        raise TypeError(f"pure_callback expects a function, got {type(callback).__name__}")
    if vmap_method not in _VMAP_METHODS:
        raise ValueError(f"pure_callback: vmap_method must be one of {', '.join(_VMAP_METHODS)}, "
                         f"got {vmap_method!r}")
    spec_leaves, spec_tree = tree_flatten(result_shape_dtypes)
    avals = []
    for s in spec_leaves:
        if not (hasattr(s, "shape") and hasattr(s, "dtype")):
            raise TypeError(f"pure_callback: result_shape_dtypes must be a pytree of objects with "
                            f".shape and .dtype (tg.ShapeDtypeStruct or arrays), got "
                            f"{type(s).__name__}")
        avals.append(Aval(s.shape, s.dtype))
    arg_leaves, arg_tree = tree_flatten((tuple(args), dict(kwargs)))
    for i, leaf in enumerate(arg_leaves):
        check_leaf(leaf, f"argument {i} of pure_callback({fun_name(callback)})")
    holder = Callback(callback, arg_tree, spec_tree, avals, vmap_method)
    outs = bind(callback_p, *arg_leaves, callback=holder, result_avals=tuple(avals))
    return tree_unflatten(spec_tree, list(outs))
