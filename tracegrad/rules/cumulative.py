"""Rules for `linear_recurrence` (cumsum, cumprod) and `sort` (semantics: docs/primitives.md).

linear_recurrence out[k] = a[k] * out[k-1] + b[k] is linear in b and its adjoint is the same
recurrence run the other way with a shifted by one, so both derivatives are recurrences again:
exact (no division, so cumprod's gradient is right at zeros) and differentiable to any order.
sort's derivatives move tangents/cotangents through the permutation it returns.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .. import ops_cumulative
from .. import ops_indexing
from .. import primitives as P
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, fmt_shape, same_dtype


# ---------------------------------------------------------------- linear_recurrence

def _linrec_shape(a, b, *, axis, reverse):
    same_dtype(a, b)
    if b.ndim < 1 or not 0 <= axis < b.ndim:
        raise ValueError(f"axis {axis} is out of bounds for shape {fmt_shape(b.shape)}")
    if a.shape not in ((), b.shape):
        raise ValueError(f"coefficients of shape {fmt_shape(a.shape)} must be a scalar or match "
                         f"{fmt_shape(b.shape)}")
    return Aval(b.shape, b.dtype)


def _linrec_impl(a, b, *, axis, reverse):
    a, b = np.asarray(a), np.asarray(b)
    if reverse:
        a = a if a.ndim == 0 else np.flip(a, axis)
        b = np.flip(b, axis)
    n = b.shape[axis]
    if n == 0:
        out = b.copy()
    elif a.ndim == 0 and a == 1:
        out = np.cumsum(b, axis=axis, dtype=b.dtype)          # sequential, as the recurrence
    else:
        am = a if a.ndim == 0 else np.moveaxis(a, axis, 0)
        bm = np.moveaxis(b, axis, 0)
        if am.ndim and not np.any(bm[1:]):                        # cumprod's form: b = [b0, 0, ...]
            out = np.cumprod(np.concatenate([bm[:1], am[1:]]), axis=0, dtype=b.dtype)
        else:
            out = np.empty_like(bm)
            out[0] = bm[0]
            for k in range(1, n):
                out[k] = (am if am.ndim == 0 else am[k]) * out[k - 1] + bm[k]
        out = np.moveaxis(out, 0, axis)
    return np.ascontiguousarray(np.flip(out, axis) if reverse else out)


def _linrec_vjp(ct, a, b, *, out, axis, reverse):
    # g[k] = ct[k] + a[k+1] g[k+1]: the recurrence in the other direction on a shifted by one.
    a_next = a if ops.ndim_of(a) == 0 else ops_cumulative.shift(a, axis, reverse=not reverse)
    g = ops_cumulative.linear_recurrence(a_next, ct, axis, reverse=not reverse)
    ct_a = ops.mul(g, ops_cumulative.shift(out, axis, reverse=reverse))
    return (ct_a, g)


def _linrec_jvp(tangents, a, b, *, out, axis, reverse):
    ta, tb = tangents
    drive = tb
    if ta is not None:
        term = ops.mul(ta, ops_cumulative.shift(out, axis, reverse=reverse))
        drive = term if drive is None else ops.add(drive, term)
    if drive is None:
        return None
    return ops_cumulative.linear_recurrence(a, drive, axis, reverse)


defimpl(P.linear_recurrence_p, _linrec_impl)
defshape(P.linear_recurrence_p, _linrec_shape)
defvjp(P.linear_recurrence_p, _linrec_vjp)
defjvp(P.linear_recurrence_p, _linrec_jvp)


# ---------------------------------------------------------------- sort

def _sort_shape(x, *, axis):
    if x.ndim < 1 or not 0 <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of bounds for shape {fmt_shape(x.shape)}")
    return (Aval(x.shape, x.dtype), Aval(x.shape, np.int64))


def _sort_impl(x, *, axis):
    x = np.asarray(x)
    perm = np.argsort(x, axis=axis, kind="stable").astype(np.int64, copy=False)
    return (np.take_along_axis(x, perm, axis), perm)


def _sort_vjp(cts, x, *, out, axis):
    ct = cts[0]
    if ct is None:
        return (None,)
    return (ops_indexing.put_along_axis_add(ops.zeros_like(x), out[1], ct, axis),)


def _sort_jvp(tangents, x, *, out, axis):
    t = tangents[0]
    return (None if t is None else ops_indexing.take_along_axis(t, out[1], axis), None)


defimpl(P.sort_p, _sort_impl)
defshape(P.sort_p, _sort_shape)
defvjp(P.sort_p, _sort_vjp)
defjvp(P.sort_p, _sort_jvp)
