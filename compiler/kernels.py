"""Helpers that generated kernels call: compiled once per machine (Numba's disk cache), not per kernel.

Numba charges compile time per call site of an array API (`np.dot` alone costs ~0.5 s to type and
lower in every kernel that uses it); a call to an already-compiled jitted function costs a few
milliseconds. So anything heavy and generic lives here, typed on flat buffers, and kernels only
emit calls. A call's integer parameters (offsets, sizes, flags) are read from the kernel's
parameter table `p` at row `k` rather than passed one by one: each argument of a call costs Numba
typing time in every kernel (~20 ms for a twelve-argument call against ~8 ms for five). Each branch below fixes its array layouts, so Numba
never unifies C and F views into slow 'A' arrays.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numpy.linalg import LinAlgError

from .blas import blas_set_threads
from .cache import guard_numba_cache
from .rules import KERNEL_HELPERS

_OPTS = dict(cache=True, error_model="numpy", nogil=False)
GEMM_THREADED_MIN = 1 << 18     # multiply-adds below which BLAS gets one thread


@njit(**_OPTS)
def gemm(a, b, c, p, k):
    """c[co:] (B, M, N) = a[ao:] (B, M, K) @ b[bo:] (B, K, N), all C-ordered flat blocks, with
    (ao, ta, bo, tb, co, B, M, K, N) = p[k:k+9].

    `ta`: the a block is stored as (B, K, M) (so each matrix is used transposed); `tb` likewise
    (B, N, K) for b. BLAS handles transposes through its flags: no copies.
    """
    ao, ta, bo, tb, co = p[k], p[k + 1] != 0, p[k + 2], p[k + 3] != 0, p[k + 4]
    B, M, K, N = p[k + 5], p[k + 6], p[k + 7], p[k + 8]
    # p[0]: the cores free right now (the runner's `cores.free()`); small products run on one
    # thread, where waking BLAS's threads costs more than it saves
    blas_set_threads(p[0] if M * K * N >= GEMM_THREADED_MIN else 1)
    for i in range(B):
        x0 = ao + i * M * K
        y0 = bo + i * K * N
        z = c[co + i * M * N:co + (i + 1) * M * N].reshape(M, N)
        if ta:
            x = a[x0:x0 + M * K].reshape(K, M)
            if tb:
                np.dot(x.T, b[y0:y0 + K * N].reshape(N, K).T, z)
            else:
                np.dot(x.T, b[y0:y0 + K * N].reshape(K, N), z)
        else:
            x = a[x0:x0 + M * K].reshape(M, K)
            if tb:
                np.dot(x, b[y0:y0 + K * N].reshape(N, K).T, z)
            else:
                np.dot(x, b[y0:y0 + K * N].reshape(K, N), z)


@njit(**_OPTS)
def gemm_loops(a, b, c, p, k):
    """`gemm` for integer and bool dtypes (no BLAS): explicit loops, int64 accumulation
    (bool: or of ands, as NumPy's matmul)."""
    ao, ta, bo, tb, co = p[k], p[k + 1] != 0, p[k + 2], p[k + 3] != 0, p[k + 4]
    B, M, K, N = p[k + 5], p[k + 6], p[k + 7], p[k + 8]
    for i in range(B):
        for m in range(M):
            for n in range(N):
                acc = 0
                for k in range(K):
                    xa = ao + i * M * K + (k * M + m if ta else m * K + k)
                    yb = bo + i * K * N + (n * K + k if tb else k * N + n)
                    acc += a[xa] * b[yb]
                c[co + i * M * N + m * N + n] = acc


@njit(**_OPTS)
def sort_rows(x, vals, perm, p, k):
    """Stable ascending sort (NaNs last) of each C-ordered row of x[xo:] (rows x n), with
    (xo, rows, n, vo, po) = p[k:k+5]."""
    xo, rows, n, vo, po = p[k], p[k + 1], p[k + 2], p[k + 3], p[k + 4]
    for r in range(rows):
        row = x[xo + r * n:xo + (r + 1) * n]
        p = np.argsort(row, kind="mergesort")
        for j in range(n):
            vals[vo + r * n + j] = row[p[j]]
            perm[po + r * n + j] = p[j]


@njit(**_OPTS)
def lu_factor(a, lu, piv, perm, p, k):
    """Partial-pivoting LU (Doolittle, LAPACK getf2 order) of nb C-ordered n x n matrices, with
    (ao, nb, n, lo, po, qo) = p[k:k+6]."""
    ao, nb, n, lo, po, qo = p[k], p[k + 1], p[k + 2], p[k + 3], p[k + 4], p[k + 5]
    for b in range(nb):
        base = lo + b * n * n
        for i in range(n * n):
            lu[base + i] = a[ao + b * n * n + i]
        for i in range(n):
            perm[qo + b * n + i] = i
        for k in range(n):
            p = k
            best = abs(lu[base + k * n + k])
            for i in range(k + 1, n):
                v = abs(lu[base + i * n + k])
                if v > best:
                    best, p = v, i
            piv[po + b * n + k] = p
            if p != k:
                for j in range(n):
                    t = lu[base + k * n + j]
                    lu[base + k * n + j] = lu[base + p * n + j]
                    lu[base + p * n + j] = t
                t2 = perm[qo + b * n + k]
                perm[qo + b * n + k] = perm[qo + b * n + p]
                perm[qo + b * n + p] = t2
            pivot = lu[base + k * n + k]
            if pivot != 0:
                for i in range(k + 1, n):
                    lu[base + i * n + k] /= pivot
            for i in range(k + 1, n):
                f = lu[base + i * n + k]
                for j in range(k + 1, n):
                    lu[base + i * n + j] -= f * lu[base + k * n + j]


@njit(**_OPTS)
def tri_solve(a, b, x, p, k):
    """Solve op(T) x = b for nb C-ordered blocks (a: n x n, b and x: n x m); T is the lower (or
    upper) triangle of a, op(T) = T or T.T, with a unit diagonal if `unit`; with
    (ao, bo, xo, nb, n, m, lower, trans, unit) = p[k:k+9]."""
    ao, bo, xo, nb, n, m = p[k], p[k + 1], p[k + 2], p[k + 3], p[k + 4], p[k + 5]
    lower, trans, unit = p[k + 6] != 0, p[k + 7] != 0, p[k + 8] != 0
    for g in range(nb):
        A = ao + g * n * n
        if not unit:
            for i in range(n):
                if a[A + i * n + i] == 0:
                    raise LinAlgError("Singular matrix")
        B = bo + g * n * m
        X = xo + g * n * m
        for i in range(n * m):
            x[X + i] = 0
        low = lower != trans          # op(T) is lower triangular
        for step in range(n):
            i = step if low else n - 1 - step
            for c in range(m):
                s = b[B + i * m + c]
                for j in range(n):
                    if j == i:
                        continue
                    inside = (j <= i) == lower if not trans else (i <= j) == lower
                    if inside:
                        t = a[A + j * n + i] if trans else a[A + i * n + j]
                        s -= t * x[X + j * m + c]
                x[X + i * m + c] = s if unit else s / a[A + i * n + i]


@njit(**_OPTS)
def cholesky(a, l, p, k):
    """Lower Cholesky factors of nb C-ordered n x n matrices (only their lower triangles read),
    with (ao, lo, nb, n) = p[k:k+4]."""
    ao, lo, nb, n = p[k], p[k + 1], p[k + 2], p[k + 3]
    for g in range(nb):
        A = ao + g * n * n
        L = lo + g * n * n
        for i in range(n * n):
            l[L + i] = 0
        for j in range(n):
            s = a[A + j * n + j]
            for k in range(j):
                s -= l[L + j * n + k] * l[L + j * n + k]
            if not s > 0:
                raise LinAlgError("Matrix is not positive definite")
            d = np.sqrt(s)
            l[L + j * n + j] = d
            for i in range(j + 1, n):
                s = a[A + i * n + j]
                for k in range(j):
                    s -= l[L + i * n + k] * l[L + j * n + k]
                l[L + i * n + j] = s / d


@njit(**_OPTS)
def ipow(a, b):
    """Integer power with NumPy's error for negative exponents."""
    if b < 0:
        raise ValueError("Integers to negative integer powers are not allowed.")
    return a ** b


@njit(**_OPTS)
def floordiv_f(a, b):
    """NumPy's float floor_divide (npy_divmod): fmod-based, then snapped to the nearest integer,
    so floor_divide(3, 0.01) is 299 as in NumPy, not floor(3 / 0.01) = 300."""
    zero = a - a if a == a else b - b
    if b == 0:
        return a / b
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != 0:
        if (b < 0) != (mod < 0):
            div -= 1
    if div != 0:
        fl = np.floor(div)
        if div - fl > 0.5:
            fl += 1
        return fl
    return np.copysign(zero, a / b)


@njit(**_OPTS)
def grow_buffer(buf, need):
    """`buf` if it holds `need` elements, else a copy at least twice as large: a buffer whose
    length is known only at run time (a while_loop's saved residuals) grows in amortised O(1)."""
    if need <= buf.size:
        return buf
    new = np.empty(max(need, 2 * buf.size), buf.dtype)
    new[:buf.size] = buf
    return new


def _guard_caches():
    # a damaged cache entry of a helper is rebuilt, like a kernel's (see cache.guard_numba_cache)
    for name in KERNEL_HELPERS:
        guard_numba_cache(globals()[name], "kernels")


_guard_caches()
