"""Running sums and products, and differences: cumsum, cumprod, diff, ediff1d."""
from __future__ import annotations

import builtins

import numpy as np

from .. import ops
from .. import ops_cumulative
from ._dispatch import numpy_function
from .reductions import accumulator_dtype
from .shapes import concatenate


def _scan(fn, name):
    def impl(a, axis=None, dtype=None, out=None):
        if out is not None:
            raise TypeError(f"{name}(..., out=...) cannot write into a traced value")
        a = ops.as_operand(a)
        x = ops.as_dtype(a, accumulator_dtype(a, dtype))
        if axis is None:
            x, axis = ops.ravel(x), 0
        elif ops.ndim_of(x) == 0:
            x = ops.reshape(x, (1,))
        return fn(x, ops.normalize_axis(axis, ops.ndim_of(x)))
    impl.__name__ = name
    return impl


cumsum = numpy_function(np.cumsum)(_scan(ops_cumulative.cumsum, "cumsum"))
cumprod = numpy_function(np.cumprod)(_scan(ops_cumulative.cumprod, "cumprod"))


@numpy_function(np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    x = ops.as_operand(a)
    if n == 0:
        return x
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    nd = ops.ndim_of(x)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = ops.normalize_axis(axis, nd)
    parts = []
    for val, where in ((prepend, "pre"), (append, "post")):
        if val is np._NoValue:
            continue
        v = ops.as_operand(val)
        if ops.ndim_of(v) == 0:
            shape = list(ops.shape_of(x))
            shape[axis] = 1
            v = ops.broadcast_to(v, tuple(shape))
        parts.append((where, v))
    if parts:
        seq = [v for w, v in parts if w == "pre"] + [x] + [v for w, v in parts if w == "post"]
        x = concatenate(seq, axis=axis)
    is_bool = ops.dtype_of(x).kind == "b"
    for _ in range(n):
        length = ops.shape_of(x)[axis]
        hi = ops.slice_along(x, axis, builtins.min(1, length), length)   # (empty along axis: empty)
        lo = ops.slice_along(x, axis, 0, builtins.max(length - 1, 0))
        x = ops.binary(ops.P.ne_p, hi, lo) if is_bool else ops.sub(hi, lo)
    return x


@numpy_function(np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    x = ops.ravel(ops.as_operand(ary))
    dt = ops.dtype_of(x)
    n = ops.shape_of(x)[0]
    d = ops.sub(ops.slice_along(x, 0, builtins.min(1, n), n), ops.slice_along(x, 0, 0, builtins.max(n - 1, 0)))
    d = ops.as_dtype(d, dt)
    parts = []
    if to_begin is not None:
        parts.append(ops.as_dtype(ops.ravel(ops.as_operand(to_begin)), dt))
    parts.append(d)
    if to_end is not None:
        parts.append(ops.as_dtype(ops.ravel(ops.as_operand(to_end)), dt))
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, 0)
