"""What autograd users reach for, built on the transforms: `elementwise_grad`, `hvp` (a
Hessian-vector product, forward over reverse), `jacobian` (jacrev's other name) and `ravel_pytree`
(JAX's flatten_util: a pytree as one flat vector, and the function that undoes it)."""
from __future__ import annotations

import collections
import functools

import numpy as np

from . import numpy as tnp
from . import ops
from .pytree import tree_flatten, tree_unflatten
from .staging import Staged
from .trace import Tracer, current_builder
from .transforms import _jvp_core, _split_args, _Traced, _value_and_grad_core, jacrev

jacobian = jacrev


def _name(fun) -> str:
    return getattr(fun, "__name__", "f")


def elementwise_grad(fun, argnums=0):
    """The gradient of `sum(fun(*args))` w.r.t. argument(s) `argnums`, in one reverse pass.

    For a function applied elementwise (`np.tanh`, a loss per sample) this is the derivative of
    each output element w.r.t. its own input element: autograd's `elementwise_grad`, JAX's
    `vmap(grad(f))` for elementwise `f`. `fun` returns one floating-point array of any shape.
    """
    def core(*args):
        single, _, leaves, tree, call = _split_args(fun, args, argnums, "elementwise_grad")
        tr = _Traced(call, leaves, tree, False, _name(fun), reverse=True)
        if tr.n_out != 1 or ops.dtype_of(tr.outs[0]).kind != "f":
            raise TypeError(f"elementwise_grad needs {_name(fun)} to return one floating-point array")
        cts = tr.backward([ops.ones_like(tr.outs[0])])
        g = tree_unflatten(tree, [ops.zeros_like(x) if c is None else c for x, c in zip(leaves, cts)])
        return g[0] if single else g
    return Staged(core, name=f"elementwise_grad({_name(fun)})", names_from=fun)


def _hvp_core(fun, primals, tangents):
    n = len(primals)
    grads = lambda *p: _value_and_grad_core(fun, tuple(range(n)), False, p, "hvp")[1]  # noqa: E731
    _, t = _jvp_core(grads, primals, tangents)
    return t[0] if n == 1 else t


_HVP_CACHE: collections.OrderedDict = collections.OrderedDict()   # fun -> Staged, most recent last


def hvp(fun, primals, tangents):
    """The Hessian of scalar-valued `fun` at `primals`, applied to `tangents`, without forming it.

    `primals` and `tangents` are tuples (or lists) of arguments of the same structure; the result
    has the structure of `primals` (the array itself when there is one): sum_j H[i, j] @ t[j] over
    all arguments. Forward mode over reverse mode (`jvp(grad(fun))`), about the cost of two
    gradients; compiled per signature like `grad` (and just traced inside another transform).
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("hvp takes primals and tangents as tuples (or lists) of arguments, "
                        "e.g. tg.hvp(f, (x,), (v,))")
    if current_builder() is not None:
        return _hvp_core(fun, tuple(primals), tuple(tangents))
    staged = _cached(fun)
    return staged(tuple(primals), tuple(tangents))


def _cached(fun):
    try:
        staged = _HVP_CACHE.pop(fun)
    except (KeyError, TypeError):   # (TypeError: an unhashable callable is simply not cached)
        staged = Staged(functools.partial(_hvp_staged, fun), name=f"hvp({_name(fun)})")
    try:
        _HVP_CACHE[fun] = staged
        while len(_HVP_CACHE) > 64:
            _HVP_CACHE.popitem(last=False)
    except TypeError:
        pass
    return staged


def _hvp_staged(fun, primals, tangents):
    return _hvp_core(fun, primals, tangents)


# ---------------------------------------------------------------- ravel_pytree

def ravel_pytree(tree):
    """`(flat, unravel)`: the pytree's leaves raveled and concatenated into one 1-D array, and
    `unravel(flat)` giving back a pytree of the same structure, shapes and dtypes.

    JAX's `flatten_util.ravel_pytree`: the flat dtype is the leaves' common type (NumPy promotion of
    their dtypes; a Python float counts as float64). When all leaves share one dtype, `unravel` keeps
    the dtype of the vector it is given; otherwise it casts each piece back to its leaf's dtype and
    requires a vector of the flat dtype. Works on NumPy arrays and on traced values (differentiable:
    both directions are linear), e.g. to hand a parameter dict to `scipy.optimize.minimize`.
    """
    leaves, treedef = tree_flatten(tree)
    shapes = [tuple(ops.shape_of(x)) for x in leaves]
    dtypes = [ops.dtype_of(x) if isinstance(x, Tracer) else np.asarray(x).dtype for x in leaves]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    total = sum(sizes)
    to_dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    mixed = any(dt != to_dtype for dt in dtypes)
    if leaves:
        flat = tnp.concatenate([tnp.ravel(tnp.asarray(x, dtype=to_dtype)) for x in leaves])
    else:
        flat = np.zeros(0, to_dtype)

    def unravel(arr):
        if tuple(ops.shape_of(arr)) != (total,):
            raise ValueError(f"unravel: expected a vector of shape ({total},) (the raveled pytree "
                             f"{treedef}), got shape {tuple(ops.shape_of(arr))}")
        if mixed and ops.dtype_of(arr) != to_dtype:
            raise TypeError(f"unravel: given a vector of dtype {ops.dtype_of(arr)}, but the raveled "
                            f"pytree has dtype {to_dtype} (its leaves have dtypes "
                            f"{sorted({d.name for d in dtypes})})")
        out, start = [], 0
        for shape, size, dt in zip(shapes, sizes, dtypes):
            piece = tnp.reshape(arr[start:start + size], shape)
            # (a copy for NumPy input: a leaf must not alias the vector, or the other leaves)
            out.append(tnp.array(piece, dtype=dt if mixed else None))
            start += size
        return tree_unflatten(treedef, out)
    return flat, unravel
