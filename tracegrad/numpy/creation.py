"""Array creation inside traced functions: constants, and `asarray`/`array` of traced values."""
from __future__ import annotations

import operator

import numpy as np

from .. import ops
from ..trace import Tracer
from ._dispatch import has_tracer, numpy_function


def _like_dtype(a, dtype):
    return np.dtype(dtype) if dtype is not None else ops.dtype_of(a)


def _shape_of(shape):
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


@numpy_function(np.zeros_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None):
    return ops.full(_shape_of(shape) if shape is not None else a.shape, 0, _like_dtype(a, dtype))


@numpy_function(np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None):
    return ops.full(_shape_of(shape) if shape is not None else a.shape, 1, _like_dtype(a, dtype))


@numpy_function(np.empty_like)
def empty_like(a, dtype=None, order="K", subok=True, shape=None):
    return zeros_like(a, dtype=dtype, shape=shape)


@numpy_function(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    dt = _like_dtype(a, dtype)
    shape = _shape_of(shape) if shape is not None else a.shape
    if isinstance(fill_value, Tracer):
        return ops.broadcast_to(ops.as_dtype(fill_value, dt), shape)
    return ops.full(shape, fill_value, dt)


@numpy_function(np.full)
def full(shape, fill_value, dtype=None, order="C"):
    """Called with a traced fill value (constant fills go straight to NumPy)."""
    dt = np.dtype(dtype) if dtype is not None else ops.dtype_of(fill_value)
    return ops.broadcast_to(ops.as_dtype(fill_value, dt), _shape_of(shape))


@numpy_function(np.asarray)
def asarray(a, dtype=None, order=None, *, copy=None, like=None):
    """Of traced values (or nested lists holding them): stacks them into one traced array."""
    if isinstance(a, (list, tuple)):
        if has_tracer(a):
            # as NumPy's list coercion: every element counts with its own dtype (a Python float
            # is float64 here, not a weak scalar as in arithmetic)
            a = ops.stack_nested(a)
        else:
            a = np.asarray(a)
    return a if dtype is None else ops.as_dtype(a, dtype)


@numpy_function(np.array)
def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0, like=None):
    out = asarray(object, dtype=dtype)
    if ndmin and ops.ndim_of(out) < ndmin:
        out = ops.reshape(out, (1,) * (ndmin - ops.ndim_of(out)) + tuple(ops.shape_of(out)))
    return out


@numpy_function(np.copy)
def copy(a, order="K", subok=False):
    return a


# Constructors with no array operand never see a tracer: they are NumPy's own, producing constants.
zeros, ones, empty, eye, identity, arange = np.zeros, np.ones, np.empty, np.eye, np.identity, np.arange


@numpy_function(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """Evenly spaced values between traced (or constant) ends; differentiable in start and stop."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = (num - 1) if endpoint else num
    # Python scalars stay weak in the dtype promotion (NEP 50: linspace(float32, 1) is float32)
    start, stop = [v if type(v) in (int, float) else ops.as_operand(v) for v in (start, stop)]
    dt = ops.result_dtype(start, stop, 1.0)
    start, stop = ops.as_dtype(start, dt), ops.as_dtype(stop, dt)
    delta = ops.sub(stop, start)
    dshape = tuple(np.broadcast_shapes(tuple(ops.shape_of(start)), tuple(ops.shape_of(stop))))
    start, stop = ops.broadcast_to(start, dshape), ops.broadcast_to(stop, dshape)
    steps = np.arange(num, dtype=dt).reshape((-1,) + (1,) * len(dshape))
    if div > 0:
        step = ops.div(delta, np.asarray(div, dt)[()])
        y = ops.mul(steps, step)
    else:
        step = np.nan                   # NumPy: an undefined step is the Python float nan
        y = ops.mul(steps, delta)
    y = ops.add(y, start)
    y = ops.broadcast_to(y, (num,) + dshape)
    if endpoint and num > 1:
        last = ops.reshape(ops.broadcast_to(stop, dshape), (1,) + dshape)
        y = ops.concatenate([ops.slice_along(y, 0, 0, num - 1), last], 0)
    if axis != 0:
        nd = 1 + len(dshape)
        y = ops.transpose(y, _from_end_at(nd, ops.normalize_axis(axis, nd)))
    if dtype is not None:
        if np.issubdtype(dtype, np.integer):
            y = ops.unary(ops.P.floor_p, y)
        y = ops.as_dtype(y, dtype)
    return (y, step) if retstep else y


def _from_end_at(nd, axis):
    """Permutation moving axis 0 to position `axis`."""
    order = list(range(1, nd))
    order.insert(axis, 0)
    return tuple(order)

