"""Shape manipulation and basic indexing on traced values."""
from __future__ import annotations


import numpy as np

from .. import ops
from ._dispatch import numpy_function


def _shape_arg(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _resolve_reshape(size, shape, src_shape):
    shape = list(shape)
    if shape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {tuple(shape)}")
        shape[shape.index(-1)] = size // known
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape array of shape {tuple(src_shape)} (size {size}) into shape "
                         f"{tuple(shape)}")
    return tuple(shape)


@numpy_function(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise NotImplementedError("reshape with order other than 'C' is not supported on traced values")
    shape = newshape if shape is None else shape
    return ops.reshape(a, _resolve_reshape(a.size, _shape_arg(shape), a.shape))


@numpy_function(np.ravel)
def ravel(a, order="C"):
    return reshape(a, (-1,), order)


@numpy_function(np.transpose)
def transpose(a, axes=None):
    if axes is None:
        axes = tuple(range(a.ndim))[::-1]
    axes = tuple(int(ax) % a.ndim if a.ndim else int(ax) for ax in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"axes {axes} don't match array of shape {a.shape}")
    return ops.transpose(a, axes)


@numpy_function(np.swapaxes)
def swapaxes(a, axis1, axis2):
    (i,) = ops.normalize_axes(axis1, a.ndim, "axis1")
    (j,) = ops.normalize_axes(axis2, a.ndim, "axis2")
    perm = list(range(a.ndim))
    perm[i], perm[j] = perm[j], perm[i]
    return ops.transpose(a, perm)


@numpy_function(np.moveaxis)
def moveaxis(a, source, destination):
    src = [int(s) % a.ndim for s in ((source,) if isinstance(source, int) else source)]
    dst = [int(d) % a.ndim for d in ((destination,) if isinstance(destination, int) else destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of elements")
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.transpose(a, order)


@numpy_function(np.expand_dims)
def expand_dims(a, axis):
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = a.ndim + len(axes)
    axes = ops.normalize_axes(axes, nd)
    it = iter(a.shape)
    shape = tuple(1 if i in axes else next(it) for i in range(nd))
    return ops.reshape(a, shape)


@numpy_function(np.squeeze)
def squeeze(a, axis=None):
    if axis is None:
        axes = tuple(i for i, d in enumerate(a.shape) if d == 1)
    else:
        axes = ops.normalize_axes(axis, a.ndim)
        for i in axes:
            if a.shape[i] != 1:
                raise ValueError(f"cannot select an axis to squeeze out which has size not equal to "
                                 f"one (axis {i} of shape {a.shape})")
    return ops.reshape(a, tuple(d for i, d in enumerate(a.shape) if i not in axes))


@numpy_function(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    return ops.broadcast_to(array, _shape_arg(shape))


def _as_operands(arrays):
    return [ops.as_operand(a) for a in arrays]


@numpy_function(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    if out is not None:
        raise TypeError("concatenate(..., out=...) cannot write into a traced value")
    arrays = _as_operands(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        arrays = [ops.reshape(a, (int(np.prod(ops.shape_of(a), dtype=np.int64)),)) for a in arrays]
        axis = 0
    nd = ops.ndim_of(arrays[0])
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    (axis,) = ops.normalize_axes(axis, nd)
    if dtype is not None:
        arrays = [ops.as_dtype(a, dtype) for a in arrays]
    return ops.concatenate(arrays, axis)


@numpy_function(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = _as_operands(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {tuple(ops.shape_of(a)) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    nd = ops.ndim_of(arrays[0]) + 1
    (axis,) = ops.normalize_axes(axis, nd)
    expanded = [expand_dims(a, axis) for a in arrays]
    return concatenate(expanded, axis=axis, dtype=dtype)


@numpy_function(np.atleast_1d)
def atleast_1d(*arys):
    res = [a if ops.ndim_of(a) >= 1 else ops.reshape(a, (1,)) for a in _as_operands(arys)]
    return res[0] if len(res) == 1 else tuple(res)   # NumPy 2 returns a tuple


@numpy_function(np.atleast_2d)
def atleast_2d(*arys):
    res = []
    for a in _as_operands(arys):
        s = ops.shape_of(a)
        res.append(a if len(s) >= 2 else ops.reshape(a, (1,) * (2 - len(s)) + tuple(s)))
    return res[0] if len(res) == 1 else tuple(res)


@numpy_function(np.atleast_3d)
def atleast_3d(*arys):
    res = []
    for a in _as_operands(arys):
        s = tuple(ops.shape_of(a))
        shape = {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}.get(len(s), s)
        res.append(ops.reshape(a, shape))
    return res[0] if len(res) == 1 else tuple(res)


@numpy_function(np.hstack)
def hstack(tup, dtype=None, casting="same_kind"):
    arrs = atleast_1d(*tup)
    arrs = list(arrs) if isinstance(arrs, tuple) else [arrs]
    return concatenate(arrs, axis=0 if ops.ndim_of(arrs[0]) == 1 else 1, dtype=dtype)


@numpy_function(np.vstack)
def vstack(tup, dtype=None, casting="same_kind"):
    arrs = atleast_2d(*tup)
    arrs = list(arrs) if isinstance(arrs, tuple) else [arrs]
    return concatenate(arrs, axis=0, dtype=dtype)


@numpy_function(np.column_stack)
def column_stack(tup):
    cols = []
    for a in _as_operands(tup):
        s = tuple(ops.shape_of(a))
        cols.append(ops.reshape(a, (int(np.prod(s, dtype=np.int64)), 1)) if len(s) < 2 else a)
    return concatenate(cols, axis=1)


@numpy_function(np.flip)
def flip(m, axis=None):
    return ops.rev(m, ops.normalize_axes(axis, m.ndim))


@numpy_function(np.fliplr)
def fliplr(m):
    return ops.rev(m, (1,))


@numpy_function(np.flipud)
def flipud(m):
    return ops.rev(m, (0,))


@numpy_function(np.shape)
def shape(a):
    return tuple(ops.shape_of(a))


@numpy_function(np.ndim)
def ndim(a):
    return ops.ndim_of(a)


@numpy_function(np.size)
def size(a, axis=None):
    s = ops.shape_of(a)
    return int(np.prod(s, dtype=np.int64)) if axis is None else s[axis]
