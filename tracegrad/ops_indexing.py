"""Traceable indexing: gather/scatter binders, slices with traced bounds, along-axis indices, and
sort (which yields a permutation). Semantics of the primitives: docs/primitives.md. Like `ops`,
everything accepts Tracers and NumPy values and binds primitives (recording IR on tracers, running
NumPy otherwise).
"""
from __future__ import annotations

import numpy as np

from . import affine
from . import ops
from . import primitives as P
from .trace import Tracer, bind

INDEX_DTYPE = np.dtype(np.int64)


def as_index(idx):
    """`idx` as an int64 operand (constants stay NumPy arrays, tracers get a convert)."""
    if isinstance(idx, Tracer):
        if idx.dtype.kind not in "iu":
            raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {idx.dtype}")
        return ops.as_dtype(idx, INDEX_DTYPE)
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu" and arr.size:
        raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {arr.dtype}")
    return arr.astype(INDEX_DTYPE)


def gather(x, idx, axes):
    return bind(P.gather_p, x, as_index(idx), axes=tuple(int(a) for a in axes))


def scatter(operand, idx, updates, axes, mode):
    updates = ops.as_dtype(updates, ops.dtype_of(operand))
    return bind(P.scatter_p, operand, as_index(idx), updates, axes=tuple(int(a) for a in axes), mode=mode)


def slice_length(start, stop, step, size):
    """(length, start, stop) of the slice `start:stop:step` (bounds: traced integer scalars, ints or
    None; `step` a nonzero int) on an axis of `size` when its length is the same for every value
    of the traced bounds that keeps them within the axis, i.e. when they are a constant apart;
    None otherwise. The bounds returned stand for None by values NumPy reads the same way."""
    if step > 0:
        start, stop = (0 if start is None else start), (size if stop is None else stop)
    else:
        start, stop = (size - 1 if start is None else start), (-size - 1 if stop is None else stop)
    d = affine.difference(start, stop)
    if d is None:
        return None
    return len(range(0, d, step)), start, stop


def dynamic_slice_indices(size, axis, start, stop, step, length, src):
    """The gather indices, shape (length, 1), of `start:stop:step` (of static `length`, from
    `slice_length`) on an axis of `size`: `first + step * arange(length)`, where `first`, the
    slice's first index, is computed at run time, with its length checked (an IndexError naming
    `src` when NumPy would select another number of elements)."""
    first = bind(P.slice_start_p, as_index(start), as_index(stop), size=int(size), length=int(length),
                 step=int(step), axis=int(axis), src=src)
    return ops.add(ops.reshape(first, (1, 1)), np.arange(length, dtype=INDEX_DTYPE).reshape(length, 1) * step)


def front_to_axis(y, axis):
    """`y` with its axis 0 moved to `axis` (gather along one axis puts it first)."""
    return ops.transpose(y, tuple(range(1, axis + 1)) + (0,) + tuple(range(axis + 1, ops.ndim_of(y))))


def axis_to_front(y, axis):
    """`y` with its axis `axis` moved first (the inverse of `front_to_axis`)."""
    nd = ops.ndim_of(y)
    return ops.transpose(y, (axis,) + tuple(d for d in range(nd) if d != axis))


def iota(shape, axis):
    """Constant int64 array of `shape` whose value is the position along `axis` (kept small:
    shape 1 on every other axis, broadcast by the caller)."""
    s = [1] * len(shape)
    s[axis] = shape[axis]
    return np.arange(shape[axis], dtype=INDEX_DTYPE).reshape(s)


def stack_indices(parts, shape):
    """Broadcast each index operand to `shape` and stack them on a new last axis: shape + (k,)."""
    if not any(isinstance(p, Tracer) for p in parts):
        return np.stack([np.broadcast_to(np.asarray(p, INDEX_DTYPE), shape) for p in parts], axis=-1)
    cols = [ops.reshape(ops.broadcast_to(as_index(p), shape), tuple(shape) + (1,)) for p in parts]
    return ops.concatenate(cols, len(shape))


def along_axis_indices(x_shape, idx, axis):
    """Full gather indices (and the result shape) for `take_along_axis(x, idx, axis)`."""
    ishape = ops.shape_of(idx)
    if len(ishape) != len(x_shape):
        raise ValueError(f"`indices` and `arr` must have the same number of dimensions "
                         f"(got {len(ishape)} and {len(x_shape)})")
    out = []
    for d, (xs, is_) in enumerate(zip(x_shape, ishape)):
        if d == axis:
            out.append(is_)
        elif xs == is_ or is_ == 1:
            out.append(xs)
        elif xs == 1:
            out.append(is_)
        else:
            raise ValueError(f"shape mismatch: arr {tuple(x_shape)} and indices {tuple(ishape)} "
                             f"cannot be broadcast together along axis {d}")
    out = tuple(out)
    parts = []
    for d in range(len(x_shape)):
        if d == axis:
            parts.append(idx)
        elif x_shape[d] == 1:
            parts.append(np.zeros((1,) * len(x_shape), INDEX_DTYPE))
        else:
            parts.append(iota(out, d))
    return stack_indices(parts, out), out


def take_along_axis(x, idx, axis):
    full, _ = along_axis_indices(ops.shape_of(x), idx, axis)
    return gather(x, full, tuple(range(ops.ndim_of(x))))


def put_along_axis_add(base, idx, values, axis):
    """`base` plus `values` added at `take_along_axis` positions (the transpose of take_along_axis)."""
    full, _ = along_axis_indices(ops.shape_of(base), idx, axis)
    return scatter(base, full, values, tuple(range(ops.ndim_of(base))), "add")


def sort(x, axis):
    """(sorted values, int64 permutation) along `axis` (stable, NaNs last)."""
    return bind(P.sort_p, x, axis=int(axis))
