"""Splitting, tiling and rearranging traced arrays: split, array_split, h/v/dsplit, tile, repeat,
roll, rot90, rollaxis, append and pad (constant mode), all as slices, pads, reshapes and concatenations."""
from __future__ import annotations

import builtins

import numpy as np

from .. import ops
from ..trace import Tracer
from ._dispatch import numpy_function
from .indexing import take
from .shapes import concatenate


# ---------------------------------------------------------------- splitting

def _split_at(x, bounds, axis):
    n = ops.shape_of(x)[axis]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo, hi = builtins.min(builtins.max(lo, 0), n), builtins.min(builtins.max(hi, 0), n)
        out.append(ops.slice_along(x, axis, lo, builtins.max(lo, hi)))
    return out


def _split_points(n, indices_or_sections, equal):
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError("number sections must be larger than 0.")
        if equal and n % k:
            raise ValueError("array split does not result in an equal division")
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        return list(np.concatenate([[0], np.cumsum(sizes)]).astype(int))
    pts = []
    for i in indices_or_sections:
        i = int(i)
        pts.append(i + n if i < 0 else i)
    return [0] + pts + [n]


@numpy_function(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    x = ops.as_operand(ary)
    axis = ops.normalize_axis(axis, ops.ndim_of(x))
    return _split_at(x, _split_points(ops.shape_of(x)[axis], indices_or_sections, False), axis)


@numpy_function(np.split)
def split(ary, indices_or_sections, axis=0):
    x = ops.as_operand(ary)
    axis = ops.normalize_axis(axis, ops.ndim_of(x))
    return _split_at(x, _split_points(ops.shape_of(x)[axis], indices_or_sections, True), axis)


@numpy_function(np.hsplit)
def hsplit(ary, indices_or_sections):
    x = ops.as_operand(ary)
    if ops.ndim_of(x) == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(x, indices_or_sections, 1 if ops.ndim_of(x) > 1 else 0)


@numpy_function(np.vsplit)
def vsplit(ary, indices_or_sections):
    x = ops.as_operand(ary)
    if ops.ndim_of(x) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(x, indices_or_sections, 0)


@numpy_function(np.dsplit)
def dsplit(ary, indices_or_sections):
    x = ops.as_operand(ary)
    if ops.ndim_of(x) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(x, indices_or_sections, 2)


# ---------------------------------------------------------------- tiling and repeating

@numpy_function(np.tile)
def tile(A, reps):
    x = ops.as_operand(A)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    shape = tuple(ops.shape_of(x))
    d = builtins.max(len(reps), len(shape))
    shape = (1,) * (d - len(shape)) + shape
    reps = (1,) * (d - len(reps)) + reps
    if builtins.any(r < 0 for r in reps):
        raise ValueError("negative dimensions are not allowed")
    inter = builtins.sum(((1, s) for s in shape), ())
    big = builtins.sum(((r, s) for r, s in zip(reps, shape)), ())
    y = ops.broadcast_to(ops.reshape(x, inter), big)
    return ops.reshape(y, tuple(r * s for r, s in zip(reps, shape)))


@numpy_function(np.repeat)
def repeat(a, repeats, axis=None):
    x = ops.as_operand(a)
    if isinstance(repeats, Tracer):
        raise NotImplementedError("repeat with traced repeat counts has a data-dependent shape; "
                                  "pass the counts as a constant")
    if axis is None:
        x, axis = ops.ravel(x), 0
    axis = ops.normalize_axis(axis, ops.ndim_of(x))
    shape = tuple(ops.shape_of(x))
    n = shape[axis]
    reps = np.asarray(repeats)
    if reps.size == 0:
        reps = reps.astype(np.int64)    # np.asarray([]) is float64; NumPy accepts an empty count list
    if reps.dtype.kind not in "iu" and reps.size:
        raise TypeError(f"Cannot cast array data from dtype('{reps.dtype}') to dtype('int64') "
                        f"according to the rule 'safe'")
    if reps.ndim == 0 or reps.size == 1:
        r = int(reps.reshape(()))
        if r < 0:
            raise ValueError("negative dimensions are not allowed")
        y = ops.reshape(x, shape[:axis + 1] + (1,) + shape[axis + 1:])
        y = ops.broadcast_to(y, shape[:axis + 1] + (r,) + shape[axis + 1:])
        return ops.reshape(y, shape[:axis] + (n * r,) + shape[axis + 1:])
    if reps.shape != (n,):
        raise ValueError(f"operands could not be broadcast together with shape ({n},) ({reps.size},)")
    if (reps < 0).any():
        raise ValueError("repeats may not contain negative values.")
    return take(x, np.repeat(np.arange(n, dtype=np.int64), reps), axis=axis)


# ---------------------------------------------------------------- rearranging

def _roll_axis(x, shift, axis):
    n = ops.shape_of(x)[axis]
    if n == 0:
        return x
    s = shift % n
    if s == 0:
        return x
    return ops.concatenate([ops.slice_along(x, axis, n - s, n), ops.slice_along(x, axis, 0, n - s)], axis)


@numpy_function(np.roll)
def roll(a, shift, axis=None):
    x = ops.as_operand(a)
    if isinstance(shift, Tracer):
        raise NotImplementedError("roll by a traced shift is not supported; pass the shift as a constant")
    if axis is None:
        return ops.reshape(roll(ops.ravel(x), shift, 0), ops.shape_of(x))
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total = {}
    for s, ax in zip(shifts.ravel(), axes.ravel()):
        ax = ops.normalize_axis(int(ax), ops.ndim_of(x))
        total[ax] = total.get(ax, 0) + int(s)
    for ax, s in total.items():
        x = _roll_axis(x, s, ax)
    return x


@numpy_function(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    x = ops.as_operand(m)
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    nd = ops.ndim_of(x)
    if axes[0] == axes[1] or builtins.abs(axes[0] - axes[1]) == nd:
        raise ValueError("Axes must be different.")
    if not (-nd <= axes[0] < nd and -nd <= axes[1] < nd):
        raise ValueError(f"Axes={axes} out of range for array of ndim={nd}.")
    a0, a1 = axes[0] % nd, axes[1] % nd
    k %= 4
    if k == 0:
        return x
    if k == 2:
        return ops.rev(x, (a0, a1))
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return ops.transpose(ops.rev(x, (a1,)), perm)
    return ops.rev(ops.transpose(x, perm), (a1,))


@numpy_function(np.rollaxis)
def rollaxis(a, axis, start=0):
    x = ops.as_operand(a)
    n = ops.ndim_of(x)
    axis = ops.normalize_axis(axis, n)
    if not -n <= start <= n:
        raise np.exceptions.AxisError(f"start={start} is out of bounds for array of dimension {n}")
    start = start + n if start < 0 else start
    if axis < start:
        start -= 1
    if axis == start:
        return x
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return ops.transpose(x, order)


@numpy_function(np.append)
def append(arr, values, axis=None):
    x, v = ops.as_operand(arr), ops.as_operand(values)
    if axis is None:
        x = ops.ravel(x) if ops.ndim_of(x) != 1 else x
        v = ops.ravel(v)
        axis = 0
    return concatenate([x, v], axis=axis)


def _pad_pairs(value, nd, name):
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"{name} must be numbers")
    try:
        return np.broadcast_to(arr, (nd, 2))
    except ValueError:
        raise ValueError(f"unable to broadcast {name} {value!r} to ({nd}, 2)") from None


@numpy_function(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """Constant-mode padding (values may be traced); other modes are not supported yet."""
    x = ops.as_operand(array)
    if mode != "constant":
        raise NotImplementedError(f"pad mode {mode!r} is not supported on traced values (only 'constant')")
    unknown = set(kwargs) - {"constant_values"}
    if unknown:
        raise ValueError(f"unsupported keyword arguments for mode 'constant': {sorted(unknown)}")
    nd = ops.ndim_of(x)
    if nd == 0:                         # no axes to pad: NumPy returns the array as it is
        if np.asarray(pad_width).dtype.kind not in "iu":
            raise TypeError("`pad_width` must be of integral type.")
        return x
    widths = _pad_pairs(pad_width, nd, "pad_width")
    if widths.dtype.kind not in "iu":
        raise TypeError("`pad_width` must be of integral type.")
    if (widths < 0).any():
        raise ValueError("index can't contain negative values")
    cv = kwargs.get("constant_values", 0)
    dt = ops.dtype_of(x)
    if isinstance(cv, Tracer):
        if cv.shape != ():
            raise NotImplementedError("traced constant_values must be a scalar")
        values = [[cv, cv]] * nd
    else:
        values = _pad_pairs(cv, nd, "constant_values")
    # axis by axis, before and after, so later axes fill the corners (as NumPy does)
    for ax in range(nd):
        (lo, hi), (vlo, vhi) = widths[ax], values[ax]
        for width, val, before in ((int(lo), vlo, True), (int(hi), vhi, False)):
            if width:
                config = [(0, 0, 0)] * nd
                config[ax] = (width, 0, 0) if before else (0, width, 0)
                x = ops.pad(x, ops.as_dtype(val, dt) if isinstance(val, Tracer) else np.asarray(val).astype(dt)[()], config)
    return x
