"""Rules for `gather`, `scatter` and `slice_start` (semantics: docs/primitives.md).

gather's VJP is scatter-add into zeros and its JVP is gather of the tangent. scatter's derivatives
depend on the mode: "add" is linear; "set" is linear too, and only the update that wins a position
(the last one in C order) receives its cotangent; "mul" uses, for each update, the product of the
other updates landing on the same position, computed without dividing by zero.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .. import ops_indexing
from .. import primitives as P
from ..errors import slice_length_message
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, fmt_shape, same_dtype

_MODES = ("add", "set", "mul")


def _check_axes(x, axes):
    if any(not 0 <= a < x.ndim for a in axes) or any(b <= a for a, b in zip(axes, axes[1:])):
        raise ValueError(f"gather/scatter axes {axes} must be increasing axes of shape "
                         f"{fmt_shape(x.shape)}")


def _check_idx(x, idx, axes):
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got {idx.dtype}")
    if idx.ndim < 1 or idx.shape[-1] != len(axes):
        raise ValueError(f"indices of shape {fmt_shape(idx.shape)} do not index the {len(axes)} "
                         f"axes {axes}")


def _rest(x_shape, axes):
    return tuple(d for i, d in enumerate(x_shape) if i not in axes)


def _gather_shape(x, idx, *, axes):
    _check_axes(x, axes)
    _check_idx(x, idx, axes)
    return Aval(tuple(idx.shape[:-1]) + _rest(x.shape, axes), x.dtype)


def _scatter_shape(operand, idx, updates, *, axes, mode):
    if mode not in _MODES:
        raise ValueError(f"scatter mode must be one of {_MODES}, got {mode!r}")
    _check_axes(operand, axes)
    _check_idx(operand, idx, axes)
    same_dtype(operand, updates)
    want = tuple(idx.shape[:-1]) + _rest(operand.shape, axes)
    if updates.shape != want:
        raise ValueError(f"scatter updates of shape {fmt_shape(updates.shape)} do not match the "
                         f"indexed shape {fmt_shape(want)}")
    return Aval(operand.shape, operand.dtype)


def checked_indices(idx, x_shape, axes):
    """Indices wrapped to 0 <= i < d; IndexError (NumPy's message) for any out of bounds."""
    idx = np.asarray(idx, dtype=np.int64)
    sizes = np.array([x_shape[a] for a in axes], dtype=np.int64)
    bad = (idx < -sizes) | (idx >= sizes)
    if bad.any():
        pos = tuple(np.argwhere(bad)[0])
        j = pos[-1]
        raise IndexError(f"index {int(idx[pos])} is out of bounds for axis {axes[j]} with size "
                         f"{int(sizes[j])}")
    return np.where(idx < 0, idx + sizes, idx)


def _view(x, axes):
    return np.moveaxis(x, axes, tuple(range(len(axes))))


def _gather_impl(x, idx, *, axes):
    idx = checked_indices(idx, x.shape, axes)
    return np.asarray(_view(np.asarray(x), axes)[tuple(idx[..., j] for j in range(len(axes)))])


def _scatter_impl(operand, idx, updates, *, axes, mode):
    out = np.array(operand, copy=True)
    idx = checked_indices(idx, out.shape, axes)
    view = _view(out, axes)
    k = len(axes)
    cols = tuple(idx[..., j] for j in range(k))
    updates = np.asarray(updates, dtype=out.dtype)
    if mode == "add":
        np.add.at(view, cols, updates)
    elif mode == "mul":
        np.multiply.at(view, cols, updates)
    else:   # set: keep only the last write to each position, so duplicates resolve deterministically
        batch = idx.shape[:-1]
        n = int(np.prod(batch, dtype=np.int64))
        flat = np.ravel_multi_index(tuple(c.reshape(n) for c in cols), view.shape[:k]) if k else \
            np.zeros(n, np.int64)
        _, first_from_end = np.unique(flat[::-1], return_index=True)
        last = n - 1 - first_from_end
        upd = updates.reshape((n,) + updates.shape[len(batch):])
        view[tuple(c.reshape(n)[last] for c in cols)] = upd[last]
    return out


defimpl(P.gather_p, _gather_impl)
defshape(P.gather_p, _gather_shape)
defimpl(P.scatter_p, _scatter_impl)
defshape(P.scatter_p, _scatter_shape)


# ---------------------------------------------------------------- slice_start

def slice_bounds(start, stop, step, size):
    """(first index, length) of NumPy's `start:stop:step` on an axis of `size`, elementwise over
    int64 arrays: CPython's slice adjustment (a negative bound counts from the end, then both are
    clipped to the axis)."""
    lo, hi = (-1, size - 1) if step < 0 else (0, size)

    def adjust(v):
        w = np.where(v < 0, v + size, v)
        return np.where(w < 0, lo, np.where(w >= size, hi, w))

    first, last = adjust(start), adjust(stop)
    if step > 0:
        n = np.where(last > first, (last - first - 1) // step + 1, 0)
    else:
        n = np.where(first > last, (first - last - 1) // -step + 1, 0)
    return first, n


def _slice_start_shape(start, stop, *, size, length, step, axis, src):
    for a in (start, stop):
        if a.dtype.kind not in "iu":
            raise TypeError(f"slice bounds must be integers, got {a.dtype}")
    if start.shape != stop.shape:
        raise ValueError(f"slice bounds of shapes {fmt_shape(start.shape)} and {fmt_shape(stop.shape)} "
                         f"differ")
    if not step or size < 0 or length < 0:
        raise ValueError(f"bad slice_start parameters size={size} length={length} step={step}")
    return Aval(start.shape, np.dtype(np.int64))


def _slice_start_impl(start, stop, *, size, length, step, axis, src):
    start, stop = np.asarray(start, np.int64), np.asarray(stop, np.int64)
    where = dict(size=size, length=length, step=step, axis=axis, src=src)
    if start.ndim == 0:          # (the usual case: Python's own slice arithmetic)
        s, e = int(start), int(stop)
        first, last, _ = slice(s, e, step).indices(size)
        n = len(range(first, last, step))
        if n != length:
            raise IndexError(slice_length_message(s, e, n, **where))
        return np.asarray(first, np.int64)
    first, n = slice_bounds(start, stop, step, size)
    bad = n != length
    if bad.any():
        pos = tuple(np.argwhere(bad)[0])
        raise IndexError(slice_length_message(int(start[pos]), int(stop[pos]), int(n[pos]), **where))
    return first.astype(np.int64)


defimpl(P.slice_start_p, _slice_start_impl)
defshape(P.slice_start_p, _slice_start_shape)


# ---------------------------------------------------------------- gather derivatives

def _gather_vjp(ct, x, idx, *, out, axes):
    return (ops_indexing.scatter(ops.zeros_like(x), idx, ct, axes, "add"), None)


def _gather_jvp(tangents, x, idx, *, out, axes):
    t = tangents[0]
    return None if t is None else ops_indexing.gather(t, idx, axes)


defvjp(P.gather_p, _gather_vjp)
defjvp(P.gather_p, _gather_jvp)


# ---------------------------------------------------------------- scatter derivatives

def _update_ids(idx, updates_shape):
    """int64 ids 0..K-1 of the update rows (C order over the index batch), broadcast to updates."""
    batch = tuple(ops.shape_of(idx)[:-1])
    ids = np.arange(int(np.prod(batch, dtype=np.int64)), dtype=np.int64).reshape(batch)
    ids = ids.reshape(batch + (1,) * (len(updates_shape) - len(batch)))
    return np.ascontiguousarray(np.broadcast_to(ids, updates_shape))


def _set_winners(operand, idx, updates, axes):
    """(hit: positions written, win: updates that are the last write to their position)."""
    ids = _update_ids(idx, ops.shape_of(updates))
    none = ops.full(ops.shape_of(operand), -1, np.int64)
    owner = ops_indexing.scatter(none, idx, ids, axes, "set")
    hit = ops.compare(P.ne_p, owner, -1)
    win = ops.compare(P.eq_p, ops_indexing.gather(owner, idx, axes), ids)
    return hit, win


def _others(operand, idx, updates, axes):
    """For each update, the product of the other updates at its position, without dividing by
    zero: from the product of the non-zero updates there and the number of zeros. Where the others
    hold exactly one zero, that zero enters as a factor (value 0, derivative 1), so the result's own
    derivative, i.e. scatter-mul's second derivative, is exact too."""
    dt = ops.dtype_of(updates)
    zero = ops.compare(P.eq_p, updates, 0)
    one, zero_t = np.ones((), dt)[()], np.zeros((), dt)[()]
    nz = ops.select(zero, one, updates)

    def at_position(values, mode, base):
        return ops_indexing.gather(ops_indexing.scatter(base(operand), idx, values, axes, mode), idx, axes)

    zk = at_position(ops.convert(zero, dt), "add", ops.zeros_like)        # zeros at the position
    pk = at_position(nz, "mul", ops.ones_like)                            # product of the non-zeros
    zsum = at_position(ops.select(zero, updates, zero_t), "add", ops.zeros_like)   # 0, d/du_zero = 1
    ratio = ops.div(pk, nz)                                               # non-zero others

    def count_is(c):
        return ops.compare(P.eq_p, zk, c)

    at_nonzero = ops.select(count_is(0), ratio,
                            ops.select(count_is(1), ops.mul(zsum, ratio), zero_t))
    at_zero = ops.select(count_is(1), pk,
                         ops.select(count_is(2), ops.mul(ops.sub(zsum, updates), pk), zero_t))
    return ops.select(zero, at_zero, at_nonzero)


def _scatter_vjp(ct, operand, idx, updates, *, out, axes, mode):
    if mode == "add":
        return (ct, None, ops_indexing.gather(ct, idx, axes))
    if mode == "set":
        hit, win = _set_winners(operand, idx, updates, axes)
        zero = np.zeros((), ops.dtype_of(ct))[()]
        return (ops.select(hit, zero, ct), None, ops.select(win, ops_indexing.gather(ct, idx, axes), zero))
    factor = ops_indexing.scatter(ops.ones_like(operand), idx, updates, axes, "mul")
    ct_op = ops.mul(ct, factor)
    ct_up = ops.mul(ops_indexing.gather(ops.mul(ct, operand), idx, axes), _others(operand, idx, updates, axes))
    return (ct_op, None, ct_up)


def _scatter_jvp(tangents, operand, idx, updates, *, out, axes, mode):
    t_op, _, t_up = tangents
    if t_op is None and t_up is None:
        return None
    if mode in ("add", "set"):   # both are linear in (operand, updates) jointly
        t_op = ops.zeros_like(operand) if t_op is None else t_op
        t_up = ops.zeros_like(updates) if t_up is None else t_up
        return ops_indexing.scatter(t_op, idx, t_up, axes, mode)
    total = None
    if t_op is not None:
        total = ops.mul(t_op, ops_indexing.scatter(ops.ones_like(operand), idx, updates, axes, "mul"))
    if t_up is not None:
        d_factor = ops_indexing.scatter(ops.zeros_like(operand), idx,
                             ops.mul(t_up, _others(operand, idx, updates, axes)), axes, "add")
        term = ops.mul(operand, d_factor)
        total = term if total is None else ops.add(total, term)
    return total


defvjp(P.scatter_p, _scatter_vjp)
defjvp(P.scatter_p, _scatter_jvp)
