"""Traceable building blocks for the extended primitives (semantics: docs/primitives.md).

Thin binders for gather/scatter/linear_recurrence/sort and the linear-algebra kernels, plus the
compositions their rules and `tracegrad.numpy` share: along-axis indexing, shifts, matrix
transpose/product over batch dims, triangle masks, diagonals. Like `ops`, everything here accepts
Tracers and NumPy values and binds primitives (recording IR on tracers, running NumPy otherwise).
"""
from __future__ import annotations

import numpy as np

from . import ops
from . import primitives as P
from .trace import Tracer, bind

INDEX_DTYPE = np.dtype(np.int64)


# ---------------------------------------------------------------- indexing

def as_index(idx):
    """`idx` as an int64 operand (constants stay NumPy arrays, tracers get a convert)."""
    if isinstance(idx, Tracer):
        if idx.dtype.kind not in "iu":
            raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {idx.dtype}")
        return ops.as_dtype(idx, INDEX_DTYPE)
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu" and arr.size:
        raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {arr.dtype}")
    return arr.astype(INDEX_DTYPE)


def gather(x, idx, axes):
    return bind(P.gather_p, x, as_index(idx), axes=tuple(int(a) for a in axes))


def scatter(operand, idx, updates, axes, mode):
    updates = ops.as_dtype(updates, ops.dtype_of(operand))
    return bind(P.scatter_p, operand, as_index(idx), updates, axes=tuple(int(a) for a in axes), mode=mode)


def iota(shape, axis):
    """Constant int64 array of `shape` whose value is the position along `axis` (kept small:
    shape 1 on every other axis, broadcast by the caller)."""
    s = [1] * len(shape)
    s[axis] = shape[axis]
    return np.arange(shape[axis], dtype=INDEX_DTYPE).reshape(s)


def stack_indices(parts, shape):
    """Broadcast each index operand to `shape` and stack them on a new last axis: shape + (k,)."""
    if not any(isinstance(p, Tracer) for p in parts):
        return np.stack([np.broadcast_to(np.asarray(p, INDEX_DTYPE), shape) for p in parts], axis=-1)
    cols = [ops.reshape(ops.broadcast_to(as_index(p), shape), tuple(shape) + (1,)) for p in parts]
    return ops.concatenate(cols, len(shape))


def along_axis_indices(x_shape, idx, axis):
    """Full gather indices (and the result shape) for `take_along_axis(x, idx, axis)`."""
    ishape = ops.shape_of(idx)
    if len(ishape) != len(x_shape):
        raise ValueError(f"`indices` and `arr` must have the same number of dimensions "
                         f"(got {len(ishape)} and {len(x_shape)})")
    out = []
    for d, (xs, is_) in enumerate(zip(x_shape, ishape)):
        if d == axis:
            out.append(is_)
        elif xs == is_ or is_ == 1:
            out.append(xs)
        elif xs == 1:
            out.append(is_)
        else:
            raise ValueError(f"shape mismatch: arr {tuple(x_shape)} and indices {tuple(ishape)} "
                             f"cannot be broadcast together along axis {d}")
    out = tuple(out)
    parts = []
    for d in range(len(x_shape)):
        if d == axis:
            parts.append(idx)
        elif x_shape[d] == 1:
            parts.append(np.zeros((1,) * len(x_shape), INDEX_DTYPE))
        else:
            parts.append(iota(out, d))
    return stack_indices(parts, out), out


def take_along_axis(x, idx, axis):
    full, _ = along_axis_indices(ops.shape_of(x), idx, axis)
    return gather(x, full, tuple(range(ops.ndim_of(x))))


def put_along_axis_add(base, idx, values, axis):
    """`base` plus `values` added at `take_along_axis` positions (the transpose of take_along_axis)."""
    full, _ = along_axis_indices(ops.shape_of(base), idx, axis)
    return scatter(base, full, values, tuple(range(ops.ndim_of(base))), "add")


# ---------------------------------------------------------------- scans and sorting

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


def sort(x, axis):
    """(sorted values, int64 permutation) along `axis` (stable, NaNs last)."""
    return bind(P.sort_p, x, axis=int(axis))


# ---------------------------------------------------------------- matrices (last two axes)

def mT(x):
    nd = ops.ndim_of(x)
    return ops.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def bmm(a, b):
    """a @ b for (..., m, k) x (..., k, n) with identical batch dims."""
    nd = ops.ndim_of(a)
    batch = tuple(range(nd - 2))
    return ops.dot_general(a, b, contract=((nd - 1,), (nd - 2,)), batch=(batch, batch))


def tri_mask(n, m, k=0, lower=True):
    """Constant bool (n, m): True on and below (lower) / on and above (upper) diagonal k."""
    return np.tri(n, m, k, dtype=bool) if lower else ~np.tri(n, m, k - 1, dtype=bool)


def tril(x, k=0):
    n, m = ops.shape_of(x)[-2:]
    return ops.select(tri_mask(n, m, k, True), x, np.zeros((), ops.dtype_of(x))[()])


def triu(x, k=0):
    n, m = ops.shape_of(x)[-2:]
    return ops.select(tri_mask(n, m, k, False), x, np.zeros((), ops.dtype_of(x))[()])


def _diag_geometry(n, m, k):
    """(flat start, count) of diagonal k of an n-by-m matrix in row-major order."""
    if k >= 0:
        return k, max(0, min(n, m - k))
    return -k * m, max(0, min(n + k, m))


def diag_part(x, k=0):
    """Diagonal k of the last two axes: (..., n, m) -> (..., count), by a strided slice."""
    shape = ops.shape_of(x)
    lead, (n, m) = tuple(shape[:-2]), shape[-2:]
    start, count = _diag_geometry(n, m, k)
    flat = ops.reshape(x, lead + (n * m,))
    nl = len(lead)
    if count == 0:
        return ops.slice_(flat, [0] * (nl + 1), list(lead) + [0])
    limit = start + (count - 1) * (m + 1) + 1
    return ops.slice_(flat, [0] * nl + [start], list(lead) + [limit], [1] * nl + [m + 1])


def diag_embed(v, n, m, k=0):
    """(..., count) -> (..., n, m) with v on diagonal k and zeros elsewhere (a strided pad)."""
    shape = ops.shape_of(v)
    lead = tuple(shape[:-1])
    start, count = _diag_geometry(n, m, k)
    if count != shape[-1]:
        raise ValueError(f"diagonal {k} of a {n}x{m} matrix has {count} entries, got {shape[-1]}")
    if count == 0:
        return ops.full(lead + (n, m), 0, ops.dtype_of(v))
    used = start + (count - 1) * (m + 1) + 1
    config = [(0, 0, 0)] * len(lead) + [(start, n * m - used, m)]
    return ops.reshape(ops.pad(v, 0, config), lead + (n, m))


def eye(n, dtype):
    return np.eye(n, dtype=dtype)


def symmetrize(x):
    return ops.mul(ops.add(x, mT(x)), np.asarray(0.5, ops.dtype_of(x))[()])


def from_lower(a):
    """The symmetric matrix whose lower triangle is a's (what LAPACK reads for UPLO='L')."""
    return ops.add(tril(a), mT(tril(a, -1)))


def from_upper(a):
    return ops.add(triu(a), mT(triu(a, 1)))


# ---------------------------------------------------------------- linear-algebra kernels

def lu(a):
    return bind(P.lu_p, a)


def triangular_solve(a, b, lower, transpose_a=False, unit_diagonal=False):
    a, b = ops.promote(a, b)
    return bind(P.triangular_solve_p, a, b, lower=bool(lower), transpose_a=bool(transpose_a),
                unit_diagonal=bool(unit_diagonal))


def cholesky(a):
    return bind(P.cholesky_p, a)


def eigh(a):
    return bind(P.eigh_p, a)


def svd(a, full_matrices=False):
    return bind(P.svd_p, a, full_matrices=bool(full_matrices))
