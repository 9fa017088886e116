"""More of NumPy on traced values: scans (cumsum, cumprod), sorting (sort, argsort, partition),
splitting and tiling (split, array_split, h/v/dsplit, tile, repeat), rearranging (roll, rot90,
rollaxis, append, pad), differences (diff, ediff1d), cross, select and linspace with traced ends.

All are compositions of primitives; the only new primitives they use are linear_recurrence (scans)
and sort (semantics: docs/primitives.md).
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import ops
from .. import ops_more as M
from ..trace import Tracer
from ._dispatch import numpy_function


def _arr(a):
    from .creation import as_operand   # creation imports this module's siblings: import late
    return as_operand(a)


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _flatten(a):
    return ops.reshape(a, (_size(ops.shape_of(a)),))


def _axis(axis, nd, name="axis"):
    return ops.normalize_axes(axis, nd, name)[0]


def _take_slice(x, axis, lo, hi, step=1):
    shape = ops.shape_of(x)
    start, limit, strides = [0] * len(shape), list(shape), [1] * len(shape)
    start[axis], limit[axis], strides[axis] = lo, hi, step
    return ops.slice_(x, start, limit, strides)


# ---------------------------------------------------------------- scans

def _scan_dtype(a, dtype):
    from .reductions import accumulator_dtype   # cumsum/cumprod accumulate as sum/prod do
    return accumulator_dtype(a, dtype)


def _scan(fn, name):
    def impl(a, axis=None, dtype=None, out=None):
        if out is not None:
            raise TypeError(f"{name}(..., out=...) cannot write into a traced value")
        a = _arr(a)
        x = ops.as_dtype(a, _scan_dtype(a, dtype))
        if axis is None:
            x, axis = _flatten(x), 0
        elif ops.ndim_of(x) == 0:
            x = ops.reshape(x, (1,))
        return fn(x, _axis(axis, ops.ndim_of(x)))
    impl.__name__ = name
    return impl


cumsum = numpy_function(np.cumsum)(_scan(M.cumsum, "cumsum"))
cumprod = numpy_function(np.cumprod)(_scan(M.cumprod, "cumprod"))


# ---------------------------------------------------------------- sorting

def _sorted(a, axis):
    a = _arr(a)
    if axis is None:
        a, axis = _flatten(a), 0
    if ops.ndim_of(a) == 0:
        raise np.exceptions.AxisError("axis -1 is out of bounds for array of dimension 0")
    return M.sort(a, _axis(axis, ops.ndim_of(a)))


def _check_sort_kwargs(kind, order):
    if order is not None:
        raise NotImplementedError("sort(..., order=...) (structured arrays) is not supported on traced values")
    if kind not in (None, "quicksort", "mergesort", "heapsort", "stable"):
        raise ValueError(f"sort kind must be one of 'quicksort', 'heapsort', or 'stable' (got {kind!r})")


@numpy_function(np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Sorted copy (stable); the gradient follows each element to its sorted position."""
    _check_sort_kwargs(kind, order)
    return _sorted(a, axis)[0]


@numpy_function(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Indices that sort `a` (stable: equal elements keep their order). No gradient."""
    _check_sort_kwargs(kind, order)
    return _sorted(a, axis)[1]


def _kth_list(kth, n):
    ks = [int(k) for k in np.atleast_1d(np.asarray(kth))]
    if np.asarray(kth).dtype.kind not in "iu":
        raise TypeError("Partition index must be integer")
    for k in ks:
        if not -n <= k < n:
            raise ValueError(f"kth(={k}) out of bounds ({n})")
    return ks


@numpy_function(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A valid partition (the fully sorted array): the k-th element is in its sorted place, no
    element before it is larger and none after is smaller. NumPy leaves the order within the two
    sides unspecified; here they are sorted. The gradient follows the selection."""
    if order is not None:
        raise NotImplementedError("partition(..., order=...) is not supported on traced values")
    vals, _ = _sorted(a, axis)
    _kth_list(kth, ops.shape_of(vals)[-1 if axis is None else _axis(axis, ops.ndim_of(vals))])
    return vals


@numpy_function(np.argpartition)
def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """Indices of a valid partition (those of a stable full sort). No gradient."""
    if order is not None:
        raise NotImplementedError("argpartition(..., order=...) is not supported on traced values")
    _, perm = _sorted(a, axis)
    _kth_list(kth, ops.shape_of(perm)[-1 if axis is None else _axis(axis, ops.ndim_of(perm))])
    return perm


# ---------------------------------------------------------------- splitting

def _split_at(x, bounds, axis):
    n = ops.shape_of(x)[axis]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo, hi = builtins.min(builtins.max(lo, 0), n), builtins.min(builtins.max(hi, 0), n)
        out.append(_take_slice(x, axis, lo, builtins.max(lo, hi)))
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
    x = _arr(ary)
    axis = _axis(axis, ops.ndim_of(x))
    return _split_at(x, _split_points(ops.shape_of(x)[axis], indices_or_sections, False), axis)


@numpy_function(np.split)
def split(ary, indices_or_sections, axis=0):
    x = _arr(ary)
    axis = _axis(axis, ops.ndim_of(x))
    return _split_at(x, _split_points(ops.shape_of(x)[axis], indices_or_sections, True), axis)


@numpy_function(np.hsplit)
def hsplit(ary, indices_or_sections):
    x = _arr(ary)
    if ops.ndim_of(x) == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(x, indices_or_sections, 1 if ops.ndim_of(x) > 1 else 0)


@numpy_function(np.vsplit)
def vsplit(ary, indices_or_sections):
    x = _arr(ary)
    if ops.ndim_of(x) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(x, indices_or_sections, 0)


@numpy_function(np.dsplit)
def dsplit(ary, indices_or_sections):
    x = _arr(ary)
    if ops.ndim_of(x) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(x, indices_or_sections, 2)


# ---------------------------------------------------------------- tiling and repeating

@numpy_function(np.tile)
def tile(A, reps):
    x = _arr(A)
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
    x = _arr(a)
    if isinstance(repeats, Tracer):
        raise NotImplementedError("repeat with traced repeat counts has a data-dependent shape; "
                                  "pass the counts as a constant")
    if axis is None:
        x, axis = _flatten(x), 0
    axis = _axis(axis, ops.ndim_of(x))
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
    from .indexing import take
    return take(x, np.repeat(np.arange(n, dtype=np.int64), reps), axis=axis)


# ---------------------------------------------------------------- rearranging

def _roll_axis(x, shift, axis):
    n = ops.shape_of(x)[axis]
    if n == 0:
        return x
    s = shift % n
    if s == 0:
        return x
    return ops.concatenate([_take_slice(x, axis, n - s, n), _take_slice(x, axis, 0, n - s)], axis)


@numpy_function(np.roll)
def roll(a, shift, axis=None):
    x = _arr(a)
    if isinstance(shift, Tracer):
        raise NotImplementedError("roll by a traced shift is not supported; pass the shift as a constant")
    if axis is None:
        return ops.reshape(roll(_flatten(x), shift, 0), ops.shape_of(x))
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total = {}
    for s, ax in zip(shifts.ravel(), axes.ravel()):
        ax = _axis(int(ax), ops.ndim_of(x))
        total[ax] = total.get(ax, 0) + int(s)
    for ax, s in total.items():
        x = _roll_axis(x, s, ax)
    return x


@numpy_function(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    x = _arr(m)
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
    x = _arr(a)
    n = ops.ndim_of(x)
    axis = _axis(axis, n)
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
    x, v = _arr(arr), _arr(values)
    if axis is None:
        x = _flatten(x) if ops.ndim_of(x) != 1 else x
        v = _flatten(v)
        axis = 0
    from .shapes import concatenate
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
    x = _arr(array)
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


# ---------------------------------------------------------------- differences, cross, select

@numpy_function(np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    x = _arr(a)
    if n == 0:
        return x
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    nd = ops.ndim_of(x)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = _axis(axis, nd)
    parts = []
    for val, where in ((prepend, "pre"), (append, "post")):
        if val is np._NoValue:
            continue
        v = _arr(val)
        if ops.ndim_of(v) == 0:
            shape = list(ops.shape_of(x))
            shape[axis] = 1
            v = ops.broadcast_to(v, tuple(shape))
        parts.append((where, v))
    if parts:
        from .shapes import concatenate
        seq = [v for w, v in parts if w == "pre"] + [x] + [v for w, v in parts if w == "post"]
        x = concatenate(seq, axis=axis)
    is_bool = ops.dtype_of(x).kind == "b"
    for _ in range(n):
        length = ops.shape_of(x)[axis]
        hi = _take_slice(x, axis, builtins.min(1, length), length)   # (empty along axis: empty)
        lo = _take_slice(x, axis, 0, builtins.max(length - 1, 0))
        x = ops.binary(ops.P.ne_p, hi, lo) if is_bool else ops.sub(hi, lo)
    return x


@numpy_function(np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    x = _flatten(_arr(ary))
    dt = ops.dtype_of(x)
    n = ops.shape_of(x)[0]
    d = ops.sub(_take_slice(x, 0, builtins.min(1, n), n), _take_slice(x, 0, 0, builtins.max(n - 1, 0)))
    d = ops.as_dtype(d, dt)
    parts = []
    if to_begin is not None:
        parts.append(ops.as_dtype(_flatten(_arr(to_begin)), dt))
    parts.append(d)
    if to_end is not None:
        parts.append(ops.as_dtype(_flatten(_arr(to_end)), dt))
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, 0)


def _component(v, i):
    return _take_slice(v, ops.ndim_of(v) - 1, i, i + 1)


@numpy_function(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = ops.promote(_arr(a), _arr(b))
    a = ops.transpose(a, _to_end(ops.ndim_of(a), _axis(axisa, ops.ndim_of(a), "axisa")))
    b = ops.transpose(b, _to_end(ops.ndim_of(b), _axis(axisb, ops.ndim_of(b), "axisb")))
    na, nb = ops.shape_of(a)[-1], ops.shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n(dimension must be 2 or 3)")
    lead = tuple(np.broadcast_shapes(tuple(ops.shape_of(a))[:-1], tuple(ops.shape_of(b))[:-1]))
    a = ops.broadcast_to(a, lead + (na,))
    b = ops.broadcast_to(b, lead + (nb,))
    a0, a1 = _component(a, 0), _component(a, 1)
    b0, b1 = _component(b, 0), _component(b, 1)
    z = ops.sub(ops.mul(a0, b1), ops.mul(a1, b0))
    if na == 2 and nb == 2:
        return ops.reshape(z, lead)
    zero = ops.zeros_like(a0)
    a2 = _component(a, 2) if na == 3 else zero
    b2 = _component(b, 2) if nb == 3 else zero
    x = ops.sub(ops.mul(a1, b2), ops.mul(a2, b1))
    y = ops.sub(ops.mul(a2, b0), ops.mul(a0, b2))
    c = ops.concatenate([x, y, z], len(lead))
    nd = len(lead) + 1
    axisc = _axis(axisc, nd, "axisc")
    return ops.transpose(c, _from_end(nd, axisc))


def _to_end(nd, axis):
    return tuple(i for i in range(nd) if i != axis) + (axis,)


def _from_end(nd, axis):
    order = list(range(nd - 1))
    order.insert(axis, nd - 1)
    return tuple(order)


@numpy_function(np.select)
def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    # Python scalars stay weak for the result dtype, as NumPy's select keeps them
    choices = [c if type(c) in (int, float) else _arr(c)
               for c in list(choicelist) + [default]]
    dt = ops.result_dtype(*choices)
    conds = []
    for i, c in enumerate(condlist):
        c = _arr(c)
        if ops.dtype_of(c) != np.bool_:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
        conds.append(c)
    shape = tuple(np.broadcast_shapes(*[tuple(ops.shape_of(c)) for c in conds + choices]))
    result = ops.broadcast_to(ops.as_dtype(choices[-1], dt), shape)
    for c, choice in zip(conds[::-1], choices[-2::-1]):
        result = ops.select(c, ops.as_dtype(choice, dt), result)
    return ops.broadcast_to(result, shape)


# ---------------------------------------------------------------- linspace

@numpy_function(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """Evenly spaced values between traced (or constant) ends; differentiable in start and stop."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = (num - 1) if endpoint else num
    # Python scalars stay weak in the dtype promotion (NEP 50: linspace(float32, 1) is float32)
    start, stop = [v if type(v) in (int, float) else _arr(v) for v in (start, stop)]
    dt = ops.result_dtype(start, stop, 1.0)
    start, stop = ops.as_dtype(start, dt), ops.as_dtype(stop, dt)
    delta = ops.sub(stop, start)
    dshape = tuple(np.broadcast_shapes(tuple(ops.shape_of(start)), tuple(ops.shape_of(stop))))
    start, stop = ops.broadcast_to(start, dshape), ops.broadcast_to(stop, dshape)
    steps = np.arange(num, dtype=dt).reshape((-1,) + (1,) * len(dshape))
    if div > 0:
        step = ops.div(delta, np.asarray(div, dt)[()])
        y = ops.mul(steps, step)
    else:
        step = np.nan                   # NumPy: an undefined step is the Python float nan
        y = ops.mul(steps, delta)
    y = ops.add(y, start)
    y = ops.broadcast_to(y, (num,) + dshape)
    if endpoint and num > 1:
        last = ops.reshape(ops.broadcast_to(stop, dshape), (1,) + dshape)
        y = ops.concatenate([_take_slice(y, 0, 0, num - 1), last], 0)
    if axis != 0:
        nd = 1 + len(dshape)
        y = ops.transpose(y, _from_end_at(nd, _axis(axis, nd)))
    if dtype is not None:
        if np.issubdtype(dtype, np.integer):
            y = ops.unary(ops.P.floor_p, y)
        y = ops.as_dtype(y, dtype)
    return (y, step) if retstep else y


def _from_end_at(nd, axis):
    """Permutation moving axis 0 to position `axis`."""
    order = list(range(1, nd))
    order.insert(axis, 0)
    return tuple(order)


# ---------------------------------------------------------------- Tracer methods (ndarray's)

def _take(*args):
    from .indexing import take
    return take(*args)


def _contractions():
    from . import contractions
    return contractions


def _install_methods():
    from ..trace import Tracer as T
    methods = {
        "cumsum": lambda self, axis=None, dtype=None, out=None: cumsum(self, axis, dtype, out),
        "cumprod": lambda self, axis=None, dtype=None, out=None: cumprod(self, axis, dtype, out),
        "argsort": lambda self, axis=-1, kind=None, order=None: argsort(self, axis, kind, order),
        "repeat": lambda self, repeats, axis=None: repeat(self, repeats, axis),
        "take": lambda self, indices, axis=None, out=None, mode="raise": _take(self, indices, axis, out, mode),
        "diagonal": lambda self, offset=0, axis1=0, axis2=1: _contractions().diagonal(self, offset, axis1, axis2),
        "trace": lambda self, offset=0, axis1=0, axis2=1, dtype=None, out=None:
            _contractions().trace(self, offset, axis1, axis2, dtype, out),
    }
    for name, fn in methods.items():
        if not hasattr(T, name):   # tracegrad/numpy/_methods.py owns the method table; fill gaps only
            setattr(T, name, fn)


_install_methods()
