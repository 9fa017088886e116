"""Batch rules of gather/scatter, slice_start, linear_recurrence and sort (semantics:
docs/primitives.md).

gather and scatter with a batched operand but shared indices keep the batch axis as one of the
operand's untouched axes. With batched indices, the batch becomes one more indexed axis of the
operand (moved first): each member's indices get its member number as an extra leading component,
so a member only ever reads and writes its own slice (and scatter's duplicates resolve per member
exactly as before).
"""
from __future__ import annotations

import numpy as np

from ... import ops
from ... import primitives as P
from ...batching import batch_size, defbatch, map_axis, move_dim, to_dim, to_front
from ...ops_indexing import INDEX_DTYPE
from ...trace import bind


def _with_member_numbers(idx, di, size):
    """Batched indices (batch axis first) with the member number prepended to each index."""
    idx = to_front(idx, di, size)
    shape = tuple(ops.shape_of(idx))
    ids = np.arange(size, dtype=INDEX_DTYPE).reshape((size,) + (1,) * (len(shape) - 1))
    ids = ops.broadcast_to(ids, shape[:-1] + (1,))
    return ops.concatenate([ids, idx], len(shape) - 1)


def _gather(args, dims, *, axes):
    (x, idx), (dx, di) = args, dims
    n_ib = ops.ndim_of(idx) - 1 - (di is not None)       # index batch dims of one member
    if di is None:
        # the batch axis is one of x's remaining axes: it lands after the index batch dims
        out = bind(P.gather_p, x, idx, axes=tuple(map_axis(a, dx) for a in axes))
        return out, n_ib + dx - sum(a < dx for a in axes)
    if dx is None:
        if di == ops.ndim_of(idx) - 1:
            idx, di = move_dim(idx, di, 0), 0
        return bind(P.gather_p, x, idx, axes=axes), di
    size = batch_size(args, dims)
    x = move_dim(x, dx, 0)
    return bind(P.gather_p, x, _with_member_numbers(idx, di, size),
                axes=(0,) + tuple(a + 1 for a in axes)), 0


def _scatter(args, dims, *, axes, mode):
    (operand, idx, updates), (do, di, du) = args, dims
    size = batch_size(args, dims)
    if di is None:
        d = 0 if do is None else do
        operand = to_dim(operand, do, d, size)
        n_ib = ops.ndim_of(idx) - 1
        at = n_ib + d - sum(a < d for a in axes)           # the batch axis among the updates' axes
        updates = to_dim(updates, du, at, size)
        return bind(P.scatter_p, operand, idx, updates, axes=tuple(map_axis(a, d) for a in axes),
                    mode=mode), d
    operand = to_front(operand, do, size)
    updates = to_front(updates, du, size)
    return bind(P.scatter_p, operand, _with_member_numbers(idx, di, size), updates,
                axes=(0,) + tuple(a + 1 for a in axes), mode=mode), 0


def _slice_start(args, dims, **params):
    """Elementwise over its two bounds: both batched along axis 0."""
    size = batch_size(args, dims)
    start, stop = (to_front(a, d, size) for a, d in zip(args, dims))
    return bind(P.slice_start_p, start, stop, **params), 0


def _linear_recurrence(args, dims, *, axis, reverse):
    (a, b), (da, db) = args, dims
    if da is None and ops.ndim_of(a) == 0:
        return bind(P.linear_recurrence_p, a, b, axis=map_axis(axis, db), reverse=reverse), db
    size = batch_size(args, dims)
    b = to_front(b, db, size)
    shape = tuple(ops.shape_of(b))
    if da is not None and ops.ndim_of(a) == 1:           # one coefficient per member
        a = ops.reshape(a, (size,) + (1,) * (len(shape) - 1))
    a = ops.broadcast_to(to_front(a, da, size), shape)
    return bind(P.linear_recurrence_p, a, b, axis=axis + 1, reverse=reverse), 0


def _sort(args, dims, *, axis):
    (x,), (d,) = args, dims
    return bind(P.sort_p, x, axis=map_axis(axis, d)), (d, d)


defbatch(P.gather_p, _gather)
defbatch(P.scatter_p, _scatter)
defbatch(P.slice_start_p, _slice_start)
defbatch(P.linear_recurrence_p, _linear_recurrence)
defbatch(P.sort_p, _sort)
