"""Reductions with NumPy's `axis` / `keepdims` / dtype rules, on traced values."""
from __future__ import annotations

import builtins

import math

import numpy as np

from .. import ops
from .. import primitives as P
from ._dispatch import UFUNC_REDUCERS, numpy_function


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"{name}(..., out=...) cannot write into a traced value")


def _unsupported(name, **kwargs):
    """Keyword arguments tracegrad does not implement: an error, never silently ignored."""
    for k, v in kwargs.items():
        if v is not None:
            hint = "; use tnp.where to mask the input" if k == "where" else ""
            raise NotImplementedError(f"{name}(..., {k}=...) is not supported on traced values{hint}")


def _with_initial(y, initial, combine):
    """Fold NumPy's `initial` into a reduction's result, in the result's dtype (as NumPy casts it)."""
    if initial is None:
        return y
    return combine(y, ops.as_dtype(initial, ops.dtype_of(y)))


def _finish(y, x, axes, keepdims):
    return ops.expand_to_reduced(y, x.shape, axes) if keepdims else y


def accumulator_dtype(x, dtype):
    """The dtype NumPy sums (and accumulates) in: small ints and bools widen to 64 bits."""
    if dtype is not None:
        return np.dtype(dtype)
    dt = ops.dtype_of(x)
    if dt.kind == "b" or (dt.kind == "i" and dt.itemsize < 8):
        return np.dtype(np.int64)
    if dt.kind == "u" and dt.itemsize < 8:
        return np.dtype(np.uint64)
    return dt


def _asarray(a):
    return ops.as_operand(a) if isinstance(a, (list, tuple)) else a


@numpy_function(np.sum)
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _no_out("sum", out)
    _unsupported("sum", where=where)
    a = _asarray(a)
    axes = ops.normalize_axes(axis, a.ndim)
    x = ops.as_dtype(a, accumulator_dtype(a, dtype))
    y = _with_initial(ops.reduce(P.reduce_sum_p, x, axes), initial, ops.add)
    return _finish(y, x, axes, keepdims)


@numpy_function(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _no_out("prod", out)
    _unsupported("prod", where=where)
    a = _asarray(a)
    axes = ops.normalize_axes(axis, a.ndim)
    x = ops.as_dtype(a, accumulator_dtype(a, dtype))
    y = _with_initial(ops.reduce(P.reduce_prod_p, x, axes), initial, ops.mul)
    return _finish(y, x, axes, keepdims)


def _extreme(prim, name):
    def impl(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_out(name, out)
        _unsupported(name, where=where)
        a = _asarray(a)
        axes = ops.normalize_axes(axis, a.ndim)
        combine = ops.maximum if prim is P.reduce_max_p else ops.minimum
        if initial is not None and builtins.any(a.shape[i] == 0 for i in axes):
            # an empty reduction with an initial value is that value
            kept = tuple(d for i, d in enumerate(a.shape) if i not in axes)
            y = ops.full(kept, initial, ops.dtype_of(a))
        else:
            y = _with_initial(ops.reduce(prim, a, axes), initial, combine)
        return _finish(y, a, axes, keepdims)
    impl.__name__ = name
    return impl


max = amax = numpy_function(np.max, np.amax)(_extreme(P.reduce_max_p, "max"))
min = amin = numpy_function(np.min, np.amin)(_extreme(P.reduce_min_p, "min"))


@numpy_function(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    _no_out("mean", out)
    _unsupported("mean", where=where)
    a = _asarray(a)
    axes = ops.normalize_axes(axis, a.ndim)
    dt = np.dtype(dtype) if dtype is not None else (
        ops.dtype_of(a) if ops.dtype_of(a).kind == "f" else np.dtype(np.float64))
    x = ops.as_dtype(a, dt)
    n = math.prod([a.shape[i] for i in axes])
    s = ops.reduce(P.reduce_sum_p, x, axes)
    y = ops.div(s, np.asarray(n, dt)[()]) if n else ops.mul(s, np.asarray(np.nan, dt)[()])
    return _finish(y, x, axes, keepdims)


@numpy_function(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None,
        correction=None):
    _no_out("var", out)
    _unsupported("var", where=where, mean=mean)
    if correction is not None:
        ddof = correction
    a = _asarray(a)
    axes = ops.normalize_axes(axis, a.ndim)
    dt = np.dtype(dtype) if dtype is not None else (
        ops.dtype_of(a) if ops.dtype_of(a).kind == "f" else np.dtype(np.float64))
    x = ops.as_dtype(a, dt)
    n = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    m = ops.div(ops.reduce(P.reduce_sum_p, x, axes), np.asarray(builtins.max(n, 1), dt)[()])
    d = ops.sub(x, ops.expand_to_reduced(m, x.shape, axes))
    ss = ops.reduce(P.reduce_sum_p, ops.integer_pow(d, 2), axes)
    # NumPy divides by max(n - ddof, 0): inf (or nan for 0/0) when there are too few elements
    y = ops.div(ss, np.asarray(builtins.max(n - ddof, 0), dt)[()])
    return _finish(y, x, axes, keepdims)


@numpy_function(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None,
        correction=None):
    _unsupported("std", where=where, mean=mean)
    v = var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, correction=correction)
    a = _asarray(a)
    if int(np.prod([a.shape[i] for i in ops.normalize_axes(axis, a.ndim)], dtype=np.int64)) == 1:
        # one element per group: the variance is identically 0 (or NaN), so is the derivative
        # (through sqrt it would be sqrt'(0) * 0 = NaN); with more, equal values are a kink
        v = ops.stop_gradient(v)
    return ops.sqrt(v)


@numpy_function(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    return ops.sub(max(a, axis=axis, keepdims=keepdims), min(a, axis=axis, keepdims=keepdims))


def _arg(prim, name):
    def impl(a, axis=None, out=None, keepdims=False):
        _no_out(name, out)
        a = _asarray(a)
        if axis is None:
            flat = ops.reshape(a, (a.size,))
            y = ops.bind(prim, flat, axis=0)
            return ops.reshape(y, (1,) * a.ndim) if keepdims else y
        (ax,) = ops.normalize_axes(axis, a.ndim)
        y = ops.bind(prim, a, axis=ax)
        return _finish(y, a, (ax,), keepdims)
    impl.__name__ = name
    return impl


argmax = numpy_function(np.argmax)(_arg(P.argmax_p, "argmax"))
argmin = numpy_function(np.argmin)(_arg(P.argmin_p, "argmin"))


def _logical(prim, name):
    def impl(a, axis=None, out=None, keepdims=False, where=None):
        _no_out(name, out)
        _unsupported(name, where=where)
        a = _asarray(a)
        axes = ops.normalize_axes(axis, a.ndim)
        x = ops.as_dtype(a, np.bool_)
        return _finish(ops.reduce(prim, x, axes), x, axes, keepdims)
    impl.__name__ = name
    return impl


all = numpy_function(np.all)(_logical(P.reduce_and_p, "all"))
any = numpy_function(np.any)(_logical(P.reduce_or_p, "any"))


@numpy_function(np.average)
def average(a, axis=None, weights=None, returned=False, keepdims=False):
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        scl = ops.full(ops.shape_of(avg), a.size / builtins.max(avg.size if hasattr(avg, "size") else 1, 1),
                       ops.dtype_of(avg))
    else:
        a, w = ops.promote(a, weights)
        if ops.shape_of(w) != ops.shape_of(a):
            if axis is None or ops.ndim_of(w) != 1:
                raise ValueError("average: weights must have the shape of a, or be 1-D along axis")
            (ax,) = ops.normalize_axes(axis, ops.ndim_of(a))
            shape = [1] * ops.ndim_of(a)
            shape[ax] = ops.shape_of(w)[0]
            w = ops.broadcast_to(ops.reshape(w, shape), ops.shape_of(a))
        if ops.dtype_of(a).kind != "f":
            a, w = ops.as_dtype(a, np.float64), ops.as_dtype(w, np.float64)
        scl = sum(w, axis=axis, keepdims=keepdims)
        avg = ops.div(sum(ops.mul(a, w), axis=axis, keepdims=keepdims), scl)
    return (avg, scl) if returned else avg


UFUNC_REDUCERS.update({np.add: sum, np.multiply: prod, np.maximum: max, np.minimum: min,
                       np.logical_and: all, np.logical_or: any})


# ---------------------------------------------------------------- stable log-sum-exp

def max_shift(x, axes):
    """The max over `axes` (keepdims), as a constant for differentiation; 0 where not finite."""
    m = ops.expand_to_reduced(ops.reduce(P.reduce_max_p, x, axes), ops.shape_of(x), axes)
    m = ops.stop_gradient(m)
    return ops.select(ops.unary(P.isfinite_p, m), m, ops.zeros_like(m))


def sum_keepdims(x, axes):
    return ops.expand_to_reduced(ops.reduce_sum(x, axes), ops.shape_of(x), axes)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over `axis`, without overflow (scipy.special.logsumexp's signature).

    `b` (optional) scales each exp(a) and must broadcast to `a`'s shape. With `return_sign`, returns
    (log|s|, sign(s)) so a negative sum is representable; otherwise a negative sum gives NaN.
    The gradient is softmax(a) (times b); an all `-inf` slice gives `-inf`.
    """
    a = ops.float_operand(ops.as_operand(a))
    axes = ops.normalize_axes(axis, ops.ndim_of(a))
    if builtins.any(ops.shape_of(a)[i] == 0 for i in axes):
        # a sum of nothing: -inf, and SciPy's sign of it, -1 (max has no identity to shift by)
        shape = tuple(1 if i in axes else d for i, d in enumerate(ops.shape_of(a)))
        if not keepdims:
            shape = tuple(d for i, d in enumerate(ops.shape_of(a)) if i not in axes)
        out = ops.full(shape, -np.inf, ops.dtype_of(a))
        return (out, ops.full(shape, -1, ops.dtype_of(a))) if return_sign else out
    if b is None:
        m = max_shift(a, axes)
        e = ops.exp(ops.sub(a, m))
    else:
        b = ops.as_operand(b)
        if tuple(np.broadcast_shapes(ops.shape_of(a), ops.shape_of(b))) != tuple(ops.shape_of(a)):
            raise ValueError(f"logsumexp: b of shape {ops.shape_of(b)} does not broadcast to a's "
                             f"shape {ops.shape_of(a)}")
        b = ops.broadcast_to(b, ops.shape_of(a))
        # shifted by the max over the terms that count (b != 0, as SciPy): a zero-weight term far
        # above the others would otherwise take the shift, underflow every other term and give -inf
        # (where its own exp would overflow, the exponent is capped: inf * 0 is NaN; the derivative
        # in that b, larger than any float, is then a finite underestimate)
        zero = ops.compare(P.eq_p, b, 0)
        dt = ops.dtype_of(a)
        m = max_shift(ops.select(zero, ops.full(ops.shape_of(a), -np.inf, dt), a), axes)
        d = ops.sub(a, m)
        cap = np.asarray(np.log(np.finfo(dt).max) - 1, dt)[()]
        d = ops.select(ops.bind(P.and_p, zero, ops.compare(P.gt_p, d, cap)), ops.full(ops.shape_of(a), cap, dt), d)
        e = ops.mul(ops.exp(d), b)
    s = sum_keepdims(e, axes)
    sign = None
    if return_sign:
        sign = ops.sign(s)
        s = ops.unary(P.abs_p, s)
    out = ops.add(ops.log(s), m)
    if not keepdims:
        shape = tuple(d for i, d in enumerate(ops.shape_of(out)) if i not in axes)
        out = ops.reshape(out, shape)
        sign = None if sign is None else ops.reshape(sign, shape)
    return (out, sign) if return_sign else out
