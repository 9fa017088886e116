"""Structural primitives: reshape, broadcast_to, transpose, slice, pad, concatenate, rev, dot_general."""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import ops
from .. import primitives as P
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, fmt_shape, same_dtype


def _inverse_perm(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


# ---------------------------------------------------------------- reshape

def _reshape_shape(x, *, shape):
    if int(np.prod(shape, dtype=np.int64)) != x.size or any(d < 0 for d in shape):
        raise ValueError(f"cannot reshape array of shape {fmt_shape(x.shape)} into shape {fmt_shape(shape)}")
    return Aval(shape, x.dtype)


defimpl(P.reshape_p, lambda x, *, shape: np.reshape(x, shape))
defshape(P.reshape_p, _reshape_shape)
defvjp(P.reshape_p, lambda ct, x, *, out, shape: (ops.reshape(ct, x.shape),))
defjvp(P.reshape_p, lambda tangents, x, *, out, shape: ops.reshape(tangents[0], shape))


# ---------------------------------------------------------------- broadcast_to

def _broadcast_shape(x, *, shape):
    lead = len(shape) - x.ndim
    if lead < 0 or any(d not in (1, s) for d, s in zip(x.shape, shape[lead:])):
        raise ValueError(f"cannot broadcast shape {fmt_shape(x.shape)} to {fmt_shape(shape)}")
    return Aval(shape, x.dtype)


def _broadcast_impl(x, *, shape):
    # A scalar spread over a small shape: a filled array (np.broadcast_to costs microseconds);
    # otherwise the read-only broadcast view.
    if np.ndim(x) == 0 and math.prod(shape) <= 1024:
        return np.full(shape, x, dtype=np.asarray(x).dtype)
    return np.broadcast_to(x, shape)


defimpl(P.broadcast_to_p, _broadcast_impl)
defshape(P.broadcast_to_p, _broadcast_shape)
defvjp(P.broadcast_to_p, lambda ct, x, *, out, shape: (ops.sum_to_shape(ct, x.shape),))
defjvp(P.broadcast_to_p, lambda tangents, x, *, out, shape: ops.broadcast_to(tangents[0], shape))


# ---------------------------------------------------------------- transpose

def _transpose_shape(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"axes {perm} don't match array of shape {fmt_shape(x.shape)}")
    return Aval(tuple(x.shape[p] for p in perm), x.dtype)


defimpl(P.transpose_p, lambda x, *, perm: np.transpose(x, perm))
defshape(P.transpose_p, _transpose_shape)
defvjp(P.transpose_p, lambda ct, x, *, out, perm: (ops.transpose(ct, _inverse_perm(perm)),))
defjvp(P.transpose_p, lambda tangents, x, *, out, perm: ops.transpose(tangents[0], perm))


# ---------------------------------------------------------------- slice

def _slice_len(start, limit, stride):
    return max(0, -(-(limit - start) // stride))


def _slice_shape(x, *, start, limit, strides):
    if not len(start) == len(limit) == len(strides) == x.ndim:
        raise ValueError(f"slice of rank {len(start)} for array of shape {fmt_shape(x.shape)}")
    for s, l, st, d in zip(start, limit, strides, x.shape):
        if not (0 <= s <= d and s <= l <= d and st > 0):
            raise ValueError(f"slice {start}:{limit}:{strides} is out of range for shape {fmt_shape(x.shape)}")
    return Aval(tuple(_slice_len(s, l, st) for s, l, st in zip(start, limit, strides)), x.dtype)


def _slice_impl(x, *, start, limit, strides):
    return x[tuple(slice(s, l, st) for s, l, st in zip(start, limit, strides))]


def _slice_vjp(ct, x, *, out, start, limit, strides):
    config = []
    for s, st, d, n in zip(start, strides, x.shape, out.shape):
        placed = (n - 1) * st + 1 if n else 0
        config.append((s, d - s - placed, st - 1 if n else 0))
    return (ops.pad(ct, 0, config),)


defimpl(P.slice_p, _slice_impl)
defshape(P.slice_p, _slice_shape)
defvjp(P.slice_p, _slice_vjp)
defjvp(P.slice_p, lambda tangents, x, *, out, start, limit, strides:
       ops.slice_(tangents[0], start, limit, strides))


# ---------------------------------------------------------------- pad

def _pad_shape(x, fill, *, config):
    if fill.shape != ():
        raise ValueError(f"pad fill value must be a scalar, got shape {fmt_shape(fill.shape)}")
    same_dtype(x, fill)
    if len(config) != x.ndim or any(lo < 0 or hi < 0 or it < 0 for lo, hi, it in config):
        raise ValueError(f"bad pad config {config} for shape {fmt_shape(x.shape)}")
    return Aval(tuple(lo + hi + d + max(d - 1, 0) * it for (lo, hi, it), d in zip(config, x.shape)),
                x.dtype)


def _pad_index(config, shape):
    return tuple(slice(lo, lo + (d - 1) * (it + 1) + 1 if d else lo, it + 1)
                 for (lo, hi, it), d in zip(config, shape))


def _pad_impl(x, fill, *, config):
    shape = _pad_shape(Aval(x.shape, x.dtype), Aval((), x.dtype), config=config).shape
    out = np.full(shape, fill, dtype=x.dtype)
    out[_pad_index(config, x.shape)] = x
    return out


def _pad_vjp(ct, x, fill, *, out, config):
    idx = _pad_index(config, x.shape)
    ct_x = ops.slice_(ct, [s.start for s in idx], [s.stop for s in idx], [s.step for s in idx])
    all_axes = tuple(range(ct.ndim))
    ct_fill = ops.sub(ops.reduce_sum(ct, all_axes), ops.reduce_sum(ct_x, all_axes))
    return (ct_x, ct_fill)


def _pad_jvp(tangents, x, fill, *, out, config):
    tx, tf = tangents
    if tx is None and tf is None:
        return None
    tx = ops.zeros_like(x) if tx is None else tx
    return ops.pad(tx, 0 if tf is None else tf, config)


defimpl(P.pad_p, _pad_impl)
defshape(P.pad_p, _pad_shape)
defvjp(P.pad_p, _pad_vjp)
defjvp(P.pad_p, _pad_jvp)


# ---------------------------------------------------------------- concatenate

def _concat_shape(*xs, axis):
    same_dtype(*xs)
    first = xs[0]
    if not 0 <= axis < first.ndim:
        raise ValueError(f"axis {axis} is out of bounds for array of dimension {first.ndim}")
    for x in xs[1:]:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                                       if i != axis):
            shapes = ", ".join(fmt_shape(x.shape) for x in xs)
            raise ValueError(f"all input array dimensions except for the concatenation axis {axis} "
                             f"must match exactly, got shapes {shapes}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return Aval(shape, first.dtype)


def _concat_vjp(ct, *xs, out, axis):
    cts, offset = [], 0
    for x in xs:
        start = [0] * ct.ndim
        limit = list(ct.shape)
        start[axis], limit[axis] = offset, offset + x.shape[axis]
        cts.append(ops.slice_(ct, start, limit))
        offset += x.shape[axis]
    return tuple(cts)


def _concat_jvp(tangents, *xs, out, axis):
    if all(t is None for t in tangents):
        return None
    return ops.concatenate([ops.zeros_like(x) if t is None else t for t, x in zip(tangents, xs)], axis)


defimpl(P.concatenate_p, lambda *xs, axis: np.concatenate(xs, axis=axis))
defshape(P.concatenate_p, _concat_shape)
defvjp(P.concatenate_p, _concat_vjp)
defjvp(P.concatenate_p, _concat_jvp)


# ---------------------------------------------------------------- rev

def _rev_shape(x, *, axes):
    if any(not 0 <= a < x.ndim for a in axes):
        raise ValueError(f"rev axes {axes} out of range for shape {fmt_shape(x.shape)}")
    return Aval(x.shape, x.dtype)


defimpl(P.rev_p, lambda x, *, axes: np.flip(x, axes) if axes else x)
defshape(P.rev_p, _rev_shape)
defvjp(P.rev_p, lambda ct, x, *, out, axes: (ops.rev(ct, axes),))
defjvp(P.rev_p, lambda tangents, x, *, out, axes: ops.rev(tangents[0], axes))


# ---------------------------------------------------------------- dot_general

@functools.lru_cache(maxsize=1024)
def dot_dims(x_ndim, y_ndim, contract, batch):
    """(x_free, y_free) axes of a dot_general, in order."""
    (xc, yc), (xb, yb) = contract, batch
    x_free = tuple(a for a in range(x_ndim) if a not in xc and a not in xb)
    y_free = tuple(a for a in range(y_ndim) if a not in yc and a not in yb)
    return x_free, y_free


def _dot_shape(x, y, *, contract, batch):
    same_dtype(x, y)
    (xc, yc), (xb, yb) = contract, batch
    bad = (len(xc) != len(yc) or len(xb) != len(yb)
           or any(x.shape[a] != y.shape[b] for a, b in zip(xc, yc))
           or any(x.shape[a] != y.shape[b] for a, b in zip(xb, yb))
           or len(set(xc + xb)) != len(xc + xb) or len(set(yc + yb)) != len(yc + yb)
           or any(not 0 <= a < x.ndim for a in xc + xb) or any(not 0 <= a < y.ndim for a in yc + yb))
    if bad:
        raise ValueError(f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} are not aligned "
                         f"(contracting axes {xc} with {yc}, batch axes {xb} with {yb})")
    x_free, y_free = dot_dims(x.ndim, y.ndim, contract, batch)
    shape = tuple(x.shape[a] for a in xb) + tuple(x.shape[a] for a in x_free) + \
        tuple(y.shape[a] for a in y_free)
    return Aval(shape, x.dtype)


def dot_general_impl(x, y, *, contract, batch):
    """Batched matrix product: move to (batch, free, contract) x (batch, contract, free); BLAS."""
    (xc, yc), (xb, yb) = contract, batch
    if not xb and x.ndim == 2 and y.ndim == 2 and len(xc) == 1:     # a plain matrix product
        return (x if xc[0] == 1 else x.T) @ (y if yc[0] == 0 else y.T)
    x_free, y_free = dot_dims(x.ndim, y.ndim, contract, batch)
    B = math.prod([x.shape[a] for a in xb])       # (math.prod: np.prod costs microseconds here)
    M = math.prod([x.shape[a] for a in x_free])
    K = math.prod([x.shape[a] for a in xc])
    N = math.prod([y.shape[a] for a in y_free])
    x3 = np.transpose(x, xb + x_free + xc).reshape(B, M, K)
    y3 = np.transpose(y, yb + yc + y_free).reshape(B, K, N)
    out = np.matmul(x3, y3)
    shape = tuple(x.shape[a] for a in xb) + tuple(x.shape[a] for a in x_free) + \
        tuple(y.shape[a] for a in y_free)
    return out.reshape(shape)


def _dot_transpose_lhs(ct, x_ndim, y, contract, batch, swap=False):
    """Cotangent of the lhs of dot_general(x, y) (of the rhs when `swap`)."""
    (xc, yc), (xb, yb) = contract, batch
    if swap:
        xc, yc, xb, yb = yc, xc, yb, xb
    x_free, y_free = dot_dims(x_ndim, y.ndim, (xc, yc), (xb, yb))
    nb = len(xb)
    if swap:   # ct dims: batch, y_free(=the "other" free, first), x_free(ours, second)
        theirs = tuple(range(nb, nb + len(y_free)))
    else:
        theirs = tuple(range(nb + len(x_free), nb + len(x_free) + len(y_free)))
    res = ops.dot_general(ct, y, contract=(theirs, y_free), batch=(tuple(range(nb)), yb))
    # res dims: batch, ours (x_free), y's leftover = its contract axes in increasing order
    order = sorted(range(len(yc)), key=yc.__getitem__)     # (np.argsort: microseconds)
    x_axes = list(xb) + list(x_free) + [xc[i] for i in order]
    return ops.transpose(res, _inverse_perm(x_axes))


def _dot_vjp(ct, x, y, *, out, contract, batch, active=None):
    # (`active`: autodiff says which operands need a cotangent; the others are not computed)
    ct_x = _dot_transpose_lhs(ct, x.ndim, y, contract, batch) if active is None or active[0] else None
    ct_y = _dot_transpose_lhs(ct, y.ndim, x, contract, batch, swap=True) \
        if active is None or active[1] else None
    return (ct_x, ct_y)


_dot_vjp.accepts_active = True


def _dot_jvp(tangents, x, y, *, out, contract, batch):
    tx, ty = tangents
    total = None
    if tx is not None:
        total = ops.dot_general(tx, y, contract, batch)
    if ty is not None:
        term = ops.dot_general(x, ty, contract, batch)
        total = term if total is None else ops.add(total, term)
    return total


defimpl(P.dot_general_p, dot_general_impl)
defshape(P.dot_general_p, _dot_shape)
defvjp(P.dot_general_p, _dot_vjp)
defjvp(P.dot_general_p, _dot_jvp)
