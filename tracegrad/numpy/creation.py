"""Array creation inside traced functions: constants, and `asarray`/`array` of traced values."""
from __future__ import annotations

import functools

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


def _stack_nested(obj):
    if isinstance(obj, (list, tuple)):
        parts = [_stack_nested(o) for o in obj]
        from .shapes import stack
        return stack(parts)
    return obj


@numpy_function(np.asarray)
def asarray(a, dtype=None, order=None, *, copy=None, like=None):
    """Of traced values (or nested lists holding them): stacks them into one traced array."""
    if isinstance(a, (list, tuple)):
        if has_tracer(a):
            # as NumPy's list coercion: every element counts with its own dtype (a Python float
            # is float64 here, not a weak scalar as in arithmetic)
            dt = functools.reduce(np.promote_types, [ops.dtype_of(x) for x in _leaves(a)])
            a = _stack_nested(_cast_leaves(a, dt))
        else:
            a = np.asarray(a)
    return a if dtype is None else ops.as_dtype(a, dtype)


@numpy_function(np.array)
def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0, like=None):
    out = asarray(object, dtype=dtype)
    if ndmin and ops.ndim_of(out) < ndmin:
        out = ops.reshape(out, (1,) * (ndmin - ops.ndim_of(out)) + tuple(ops.shape_of(out)))
    return out


def as_operand(a):
    """A function argument as an array operand: tracers as they are, (nested) lists stacked."""
    if isinstance(a, Tracer):
        return a
    if isinstance(a, (list, tuple)):
        return asarray(a)
    return np.asarray(a)


def _leaves(obj):
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    else:
        yield obj


def _cast_leaves(obj, dt):
    if isinstance(obj, (list, tuple)):
        return [_cast_leaves(o, dt) for o in obj]
    return ops.as_dtype(obj, dt)


@numpy_function(np.copy)
def copy(a, order="K", subok=False):
    return a


# Constructors with no array operand never see a tracer: they are NumPy's own, producing constants.
zeros, ones, empty, eye, identity, arange, linspace = (np.zeros, np.ones, np.empty, np.eye, np.identity,
                                                       np.arange, np.linspace)
