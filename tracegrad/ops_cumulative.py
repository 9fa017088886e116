"""Traceable running sums and products along an axis, as `linear_recurrence` (docs/primitives.md)."""
from __future__ import annotations

import numpy as np

from . import ops
from . import primitives as P
from .trace import bind


def _keep_along(x, axis, start, stop, zeros_before, zeros_after):
    """x[start:stop] along `axis`, with zeros padded before and after it along that axis."""
    shape = ops.shape_of(x)
    lo, hi = [0] * len(shape), list(shape)
    lo[axis], hi[axis] = start, stop
    config = [(0, 0, 0)] * len(shape)
    config[axis] = (zeros_before, zeros_after, 0)
    return ops.pad(ops.slice_(x, lo, hi), 0, config)


def shift(x, axis, reverse=False):
    """x moved one step along `axis` with a zero entering: y[k] = x[k-1] (x[k+1] if reverse)."""
    n = ops.shape_of(x)[axis]
    if n == 0:
        return x
    return _keep_along(x, axis, 1, n, 0, 1) if reverse else _keep_along(x, axis, 0, n - 1, 1, 0)


def linear_recurrence(a, b, axis, reverse=False):
    a, b = ops.promote(a, b)
    if ops.shape_of(a) not in ((), ops.shape_of(b)):
        a = ops.broadcast_to(a, ops.shape_of(b))
    return bind(P.linear_recurrence_p, a, b, axis=int(axis), reverse=bool(reverse))


def cumsum(x, axis, reverse=False):
    return linear_recurrence(np.ones((), ops.dtype_of(x))[()], x, axis, reverse)


def cumprod(x, axis, reverse=False):
    n = ops.shape_of(x)[axis]
    if n == 0:
        return x
    # b keeps only the first visited element: out[0] = x[0], out[k] = x[k] * out[k-1]
    b = _keep_along(x, axis, n - 1, n, n - 1, 0) if reverse else _keep_along(x, axis, 0, 1, 0, n - 1)
    return linear_recurrence(x, b, axis, reverse)
