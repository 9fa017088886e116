"""Batch rules of the linear-algebra kernels: the batch axis becomes a leading matrix-batch axis.

triangular_solve with one shared matrix and batched right-hand sides solves them all at once: the
members become extra columns of the right-hand side (one solve instead of a broadcast matrix).
"""
from __future__ import annotations

from ... import ops
from ... import primitives as P
from ...batching import batch_size, defbatch, move_dim, to_front
from ...trace import bind


def _leading(prim):
    def rule(args, dims, **params):
        out = bind(prim, move_dim(args[0], dims[0], 0), **params)
        return out, ((0,) * len(out) if prim.multiple_results else 0)
    return rule


def _triangular_solve(args, dims, **params):
    (a, b), (da, db) = args, dims
    size = batch_size(args, dims)
    if da is None:
        nd = ops.ndim_of(b)
        b = move_dim(b, db, nd - 1)                      # (..., n, m, B)
        shape = tuple(ops.shape_of(b))
        x = bind(P.triangular_solve_p, a, ops.reshape(b, shape[:-2] + (shape[-2] * size,)), **params)
        return ops.reshape(x, shape), nd - 1
    return bind(P.triangular_solve_p, move_dim(a, da, 0), to_front(b, db, size), **params), 0


for _p in (P.lu_p, P.cholesky_p, P.eigh_p, P.svd_p):
    defbatch(_p, _leading(_p))
defbatch(P.triangular_solve_p, _triangular_solve)
