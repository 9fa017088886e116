"""Helpers that generated kernels call: compiled once per machine (Numba's disk cache), not per kernel.

Numba charges compile time per call site of an array API (`np.dot` alone costs ~0.5 s to type and
lower in every kernel that uses it); a call to an already-compiled jitted function costs a few
milliseconds. So anything heavy and generic lives here, typed on flat buffers plus offsets and
static sizes, and kernels only emit calls. Each branch below fixes its array layouts, so Numba
never unifies C and F views into slow 'A' arrays.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_OPTS = dict(cache=True, error_model="numpy", nogil=False)


@njit(**_OPTS)
def gemm(a, ao, ta, b, bo, tb, c, co, B, M, K, N):
    """c[co:] (B, M, N) = a[ao:] (B, M, K) @ b[bo:] (B, K, N), all C-ordered flat blocks.

    `ta`: the a block is stored as (B, K, M) (so each matrix is used transposed); `tb` likewise
    (B, N, K) for b. BLAS handles transposes through its flags: no copies.
    """
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
def gemm_loops(a, ao, ta, b, bo, tb, c, co, B, M, K, N):
    """`gemm` for integer and bool dtypes (no BLAS): explicit loops, int64 accumulation
    (bool: or of ands, as NumPy's matmul)."""
    for i in range(B):
        for m in range(M):
            for n in range(N):
                acc = 0
                for k in range(K):
                    xa = ao + i * M * K + (k * M + m if ta else m * K + k)
                    yb = bo + i * K * N + (n * K + k if tb else k * N + n)
                    acc += a[xa] * b[yb]
                c[co + i * M * N + m * N + n] = acc
