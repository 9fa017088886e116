"""Batch rules of the reductions: the reduced axes shift past the batch axis, which stays."""
from __future__ import annotations

from ... import primitives as P
from ...batching import defbatch, map_axis
from ...trace import bind


def _reduce(prim):
    def rule(args, dims, *, axes):
        (x,), (d,) = args, dims
        new = tuple(sorted(map_axis(a, d) for a in axes))
        return bind(prim, x, axes=new), d - sum(a < d for a in axes)
    return rule


def _arg(prim):
    def rule(args, dims, *, axis):
        (x,), (d,) = args, dims
        return bind(prim, x, axis=map_axis(axis, d)), d - (axis < d)
    return rule


for _p in (P.reduce_sum_p, P.reduce_max_p, P.reduce_min_p, P.reduce_prod_p, P.reduce_and_p,
           P.reduce_or_p):
    defbatch(_p, _reduce(_p))
for _p in (P.argmax_p, P.argmin_p):
    defbatch(_p, _arg(_p))
