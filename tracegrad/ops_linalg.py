"""Traceable linear algebra over the last two axes: transposes, batched products, triangles,
diagonals, and the factorisation kernels' binders (lu, triangular_solve, cholesky, eigh, svd;
semantics in docs/primitives.md).
"""
from __future__ import annotations

import numpy as np

from . import ops
from . import primitives as P
from .trace import bind


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


# ---------------------------------------------------------------- factorisation kernels

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
