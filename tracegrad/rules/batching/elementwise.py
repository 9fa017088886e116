"""Batch rules of the elementwise families (unary, predicate, binary, compare, select).

A unary primitive maps over the batch axis wherever it is. Operands of a broadcasting primitive
are aligned so that NumPy broadcasting lines up the batch axes: when every batched operand has the
full rank and the same batch axis, and no unbatched operand reaches that axis, nothing moves;
otherwise batched operands get their batch axis first (padded with 1s to the full rank), and
unbatched ones broadcast from the right as before.
"""
from __future__ import annotations

from ... import ops
from ...batching import defbatch, move_dim
from ...primitives import all_primitives
from ...trace import bind


def _unary(prim):
    def rule(args, dims, **params):
        return bind(prim, args[0], **params), dims[0]
    return rule


def _broadcasting(prim):
    def rule(args, dims, **params):
        ranks = [ops.ndim_of(a) - (d is not None) for a, d in zip(args, dims)]
        full = max(ranks)
        batched = {d for d in dims if d is not None}
        if len(batched) == 1:
            (d,) = batched
            if all(r == full if bd is not None else r <= full - d for r, bd in zip(ranks, dims)):
                return bind(prim, *args, **params), d
        new = []
        for a, d, r in zip(args, dims, ranks):
            if d is not None:
                a = move_dim(a, d, 0)
                if r < full:
                    shape = tuple(ops.shape_of(a))
                    a = ops.reshape(a, shape[:1] + (1,) * (full - r) + shape[1:])
            new.append(a)
        return bind(prim, *new, **params), 0
    return rule


for _p in all_primitives.values():
    if _p.family in ("unary", "predicate"):
        defbatch(_p, _unary(_p))
    elif _p.family in ("binary", "compare", "select"):
        defbatch(_p, _broadcasting(_p))
