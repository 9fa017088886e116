"""Batch rules of the structural primitives: reshape, broadcast_to, transpose, slice, pad,
concatenate, rev and dot_general.

dot_general never needs a copy: two batched operands gain a batch dimension (output axis 0); a
batch axis on one operand only is a free dimension of that operand, so a per-example matrix-vector
product becomes one matrix-matrix product.
"""
from __future__ import annotations

import numpy as np

from ... import ops
from ... import primitives as P
from ...batching import batch_size, defbatch, map_axis, move_dim, to_front
from ...trace import bind, impl_of


def _reshape(args, dims, *, shape):
    (x,), (d,) = args, dims
    x = move_dim(x, d, 0)
    return bind(P.reshape_p, x, shape=tuple(ops.shape_of(x)[:1]) + tuple(shape)), 0


def _broadcast_to(args, dims, *, shape):
    (x,), (d,) = args, dims
    x = move_dim(x, d, 0)
    xs = tuple(ops.shape_of(x))
    x = ops.reshape(x, xs[:1] + (1,) * (len(shape) - len(xs) + 1) + xs[1:])
    return bind(P.broadcast_to_p, x, shape=xs[:1] + tuple(shape)), 0


def _transpose(args, dims, *, perm):
    (x,), (d,) = args, dims
    return bind(P.transpose_p, x, perm=(d,) + tuple(map_axis(p, d) for p in perm)), 0


def _slice(args, dims, *, start, limit, strides):
    (x,), (d,) = args, dims
    n = ops.shape_of(x)[d]
    ins = lambda t, v: tuple(t[:d]) + (v,) + tuple(t[d:])   # noqa: E731
    return bind(P.slice_p, x, start=ins(start, 0), limit=ins(limit, n), strides=ins(strides, 1)), d


def _rev(args, dims, *, axes):
    (x,), (d,) = args, dims
    return bind(P.rev_p, x, axes=tuple(sorted(map_axis(a, d) for a in axes))), d


def _pad(args, dims, *, config):
    (x, fill), (dx, df) = args, dims
    if df is None:
        return bind(P.pad_p, x, fill, config=tuple(config[:dx]) + ((0, 0, 0),) + tuple(config[dx:])), dx
    # a fill value per member: pad with zeros, then select the member's fill outside the data
    size = batch_size(args, dims)
    x = to_front(x, dx, size)
    xs = tuple(ops.shape_of(x))[1:]
    dt = ops.dtype_of(x)
    padded = bind(P.pad_p, x, np.zeros((), dt)[()], config=((0, 0, 0),) + tuple(config))
    inside = impl_of(P.pad_p)(np.ones(xs, bool), np.zeros((), bool), config=tuple(config))
    fill = ops.reshape(to_front(fill, df), (size,) + (1,) * len(xs))
    return ops.select(inside, padded, fill), 0


def _concatenate(args, dims, *, axis):
    if len(set(dims)) == 1:
        (d,) = set(dims)
        return bind(P.concatenate_p, *args, axis=map_axis(axis, d)), d
    size = batch_size(args, dims)
    return bind(P.concatenate_p, *[to_front(a, d, size) for a, d in zip(args, dims)], axis=axis + 1), 0


def _free_axes(ndim, contract, batch):
    return [a for a in range(ndim) if a not in contract and a not in batch]


def _dot_general(args, dims, *, contract, batch):
    (x, y), (dx, dy) = args, dims
    (xc, yc), (xb, yb) = contract, batch
    xc2, xb2 = tuple(map_axis(a, dx) for a in xc), tuple(map_axis(a, dx) for a in xb)
    yc2, yb2 = tuple(map_axis(a, dy) for a in yc), tuple(map_axis(a, dy) for a in yb)
    if dx is not None and dy is not None:
        out = bind(P.dot_general_p, x, y, contract=(xc2, yc2), batch=((dx,) + xb2, (dy,) + yb2))
        return out, 0
    out = bind(P.dot_general_p, x, y, contract=(xc2, yc2), batch=(xb2, yb2))
    x_free = _free_axes(ops.ndim_of(x), xc2, xb2)
    if dx is not None:
        return out, len(xb) + x_free.index(dx)
    y_free = _free_axes(ops.ndim_of(y), yc2, yb2)
    return out, len(xb) + len(x_free) + y_free.index(dy)


defbatch(P.reshape_p, _reshape)
defbatch(P.broadcast_to_p, _broadcast_to)
defbatch(P.transpose_p, _transpose)
defbatch(P.slice_p, _slice)
defbatch(P.rev_p, _rev)
defbatch(P.pad_p, _pad)
defbatch(P.concatenate_p, _concatenate)
defbatch(P.dot_general_p, _dot_general)
