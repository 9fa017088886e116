"""Traceable building blocks over the primitives: dtype promotion (NEP 50), broadcasting, axes.

Rules (VJP/JVP) and `tracegrad.numpy` are written with these. Each accepts Tracers, NumPy arrays and
scalars, and Python scalars (weakly typed, as NumPy 2 treats them); it binds primitives, so on
tracers it records IR and outside any trace it runs NumPy.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from . import primitives as P
from .trace import PY_SCALARS, Tracer, bind

_WEAK_PY = {"b": bool, "i": int, "u": int, "f": float}
_ND = np.ndarray


def is_traced(x) -> bool:
    return isinstance(x, Tracer)


def holds_tracer(x) -> bool:
    return isinstance(x, (list, tuple)) and any(isinstance(e, Tracer) or holds_tracer(e) for e in x)


def _nested_leaves(obj):
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _nested_leaves(o)
    else:
        yield obj


def stack_nested(obj):
    """A (nested) list or tuple holding tracers as one traced array, as `np.asarray` builds one
    from a list: every element counts with its own dtype (a Python float is float64 here, not a
    weak scalar as in arithmetic)."""
    dt = functools.reduce(np.promote_types, [dtype_of(x) for x in _nested_leaves(obj)])

    def build(o):
        if isinstance(o, (list, tuple)):
            return stack([build(e) for e in o], 0)
        return as_dtype(o, dt)
    return build(obj)


def as_operand(a):
    """A function argument as an array operand: tracers as they are, lists holding tracers stacked,
    anything else a NumPy array."""
    if isinstance(a, Tracer):
        return a
    if holds_tracer(a):
        return stack_nested(a)
    return np.asarray(a)


def dtype_of(x) -> np.dtype:
    if type(x) is Tracer:
        return x.node.aval.dtype
    if isinstance(x, (Tracer, np.ndarray, np.generic)):
        return x.dtype
    if holds_tracer(x):
        return functools.reduce(np.promote_types, [dtype_of(e) for e in _nested_leaves(x)])
    return np.asarray(x).dtype


def _promotion_key(x):
    """What NEP 50 promotion sees: a dtype, or a Python scalar (weak) for Python scalars and for
    tracers that came from one."""
    if isinstance(x, Tracer) and x.weak:
        return _WEAK_PY[x.dtype.kind](0)
    if type(x) in PY_SCALARS:   # not np.float64, which subclasses float but is strongly typed
        return x
    return dtype_of(x)


def shape_of(x) -> tuple:
    if isinstance(x, (Tracer, np.ndarray, np.generic)):
        return x.shape
    if holds_tracer(x):
        return stack_nested(x).shape
    return np.shape(x)


def ndim_of(x) -> int:
    return len(shape_of(x))


_RESULT_TYPES: dict = {}   # NEP 50 keys -> np.result_type (bounded; it only sees types, not values)


def result_dtype(*xs):
    keys = tuple([_nep50_key(x) for x in xs])
    dt = _RESULT_TYPES.get(keys)
    if dt is None:
        dt = np.result_type(*[_promotion_key(x) for x in xs])
        if len(_RESULT_TYPES) > 10_000:
            _RESULT_TYPES.clear()
        _RESULT_TYPES[keys] = dt
    return dt


def as_dtype(x, dtype):
    """`x` as an operand of exactly `dtype` (a Lit for scalars, a `convert` for tracers)."""
    t = type(x)
    if t is _ND:
        if x.ndim and x.dtype is dtype:
            return x
    elif isinstance(x, np.generic) and x.dtype is dtype:
        return x
    if isinstance(x, Tracer):
        dt = x.node.aval.dtype
        if dt is dtype:
            return x
        dtype = np.dtype(dtype)
        return x if dt == dtype else bind(P.convert_p, x, dtype=dtype)
    t = type(x)
    if t is float or t is int or t is bool:
        # (np.asarray(x, dtype)[()], faster; NEP 50 only asks for casts that fit)
        try:
            return dtype.type(x)
        except AttributeError:       # a dtype given as a type or a string
            return np.dtype(dtype).type(x)
    dtype = np.dtype(dtype)
    if holds_tracer(x):
        x = stack_nested(x)
    if isinstance(x, Tracer):
        return x if x.dtype == dtype else bind(P.convert_p, x, dtype=dtype)
    if isinstance(x, PY_SCALARS):
        return np.asarray(x, dtype=dtype)[()]
    arr = np.asarray(x)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr[()] if arr.ndim == 0 else arr


def promote(*xs):
    if len(xs) == 2:
        x, y = xs
        tx, ty = type(x), type(y)
        if tx is Tracer and ty is Tracer and not x.weak and not y.weak and \
                x.node.aval.dtype is y.node.aval.dtype:
            return [x, y]
        if tx is _ND and x.ndim:
            d = x.dtype
            if ty is _ND:
                if y.ndim and y.dtype is d:
                    return [x, y]
            elif (ty is float or ty is int) and d.kind == "f":   # a weak Python number: the array's dtype
                return [x, d.type(y)]
            elif isinstance(y, np.generic) and y.dtype is d:
                return [x, y]
        elif ty is _ND and y.ndim:
            d = y.dtype
            if (tx is float or tx is int) and d.kind == "f":
                return [d.type(x), y]
            if isinstance(x, np.generic) and x.dtype is d:
                return [x, y]
    dtype = result_dtype(*xs)
    return [as_dtype(x, dtype) for x in xs]


def weak_dtype(x):
    """What `ufunc.resolve_dtypes` takes: a dtype, or `int`/`float` for a weak Python scalar."""
    d = _promotion_key(x)
    if isinstance(d, bool):
        return np.dtype(np.bool_)
    if isinstance(d, (int, float)):
        return type(d)
    return d


def float_operand(x):
    """`x` as a floating-point operand, with the dtype NumPy's `np.exp` would compute in."""
    (x,) = ufunc_operands(np.exp, x)
    return x


_BOOL_DT = np.dtype(np.bool_)
_RESOLVED: dict = {}   # (ufunc, NEP 50 keys) -> loop dtypes: ufunc.resolve_dtypes, memoised (bounded)


def _nep50_key(x):
    """weak_dtype(x), with fast paths for tracers, arrays and Python scalars."""
    t = type(x)
    if t is _ND:
        return x.dtype
    if t is float or t is int:
        return t
    if t is bool:
        return _BOOL_DT
    if isinstance(x, np.generic):
        return x.dtype
    if isinstance(x, Tracer):
        dt = x.node.aval.dtype
        if not x.weak:
            return dt
    return weak_dtype(x)


def ufunc_operands(ufunc, *xs):
    """Cast operands to the dtypes of the loop NumPy would pick for `ufunc` (exact NEP 50)."""
    keys = tuple([_nep50_key(x) for x in xs])
    dts = _RESOLVED.get((ufunc, keys))
    if dts is None:
        rkeys = keys
        if all(isinstance(k, type) for k in keys):
            # only Python scalars: NumPy converts them to arrays first (int64, float64)
            rkeys = tuple(dtype_of(x) for x in xs)
        dts = ufunc.resolve_dtypes(rkeys + (None,) * ufunc.nout)
        if len(_RESOLVED) > 10_000:
            _RESOLVED.clear()
        _RESOLVED[ufunc, keys] = dts
    return [as_dtype(x, d) for x, d in zip(xs, dts)]


# ---------------------------------------------------------------- elementwise

def unary(prim, x):
    return bind(prim, as_dtype(x, dtype_of(x)) if isinstance(x, PY_SCALARS) else x)


def binary(prim, x, y):
    x, y = promote(x, y)
    return bind(prim, x, y)


def add(x, y): return binary(P.add_p, x, y)
def sub(x, y): return binary(P.sub_p, x, y)
def mul(x, y): return binary(P.mul_p, x, y)
def maximum(x, y): return binary(P.max_p, x, y)
def minimum(x, y): return binary(P.min_p, x, y)


def div(x, y):
    return bind(P.div_p, *ufunc_operands(np.true_divide, x, y))


def neg(x): return unary(P.neg_p, x)
def exp(x): return unary(P.exp_p, x)
def log(x): return unary(P.log_p, x)
def sin(x): return unary(P.sin_p, x)
def cos(x): return unary(P.cos_p, x)
def tanh(x): return unary(P.tanh_p, x)
def sqrt(x): return unary(P.sqrt_p, x)
def sign(x): return unary(P.sign_p, x)


def integer_pow(x, y: int):
    return bind(P.integer_pow_p, x, y=int(y))


def select(pred, on_true, on_false):
    on_true, on_false = promote(on_true, on_false)
    return bind(P.select_p, as_dtype(pred, np.bool_), on_true, on_false)


def convert(x, dtype):
    return as_dtype(x, dtype)


def stop_gradient(x):
    return bind(P.stop_gradient_p, x) if isinstance(x, Tracer) else x


def compare(prim, x, y):
    return binary(prim, x, y)


# ---------------------------------------------------------------- shapes

def normalize_axes(axis, ndim: int, name: str = "axis") -> tuple:
    """`axis` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(f"{name} {a} is out of bounds for array of dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in '{name}': {axis}")
    return tuple(sorted(out))


def normalize_axis(axis, ndim: int, name: str = "axis") -> int:
    """One `axis` (negatives allowed) as a non-negative int."""
    return normalize_axes(axis, ndim, name)[0]


def size_of(x) -> int:
    return int(np.prod(shape_of(x), dtype=np.int64))


def reshape(x, shape):
    shape = tuple(map(int, shape))
    if shape_of(x) == shape:
        return x
    if not isinstance(x, Tracer):   # a constant stays a constant
        return np.reshape(np.asarray(x), shape)
    return bind(P.reshape_p, x, shape=shape)


def broadcast_to(x, shape):
    shape = tuple(map(int, shape))
    if shape_of(x) == shape:
        return x
    if not isinstance(x, Tracer) and np.size(x) == 1:   # broadcast the scalar literal itself
        x = np.asarray(x).reshape(())[()]
    return bind(P.broadcast_to_p, x, shape=shape)


def transpose(x, perm):
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    return bind(P.transpose_p, x, perm=perm)


def reduce(prim, x, axes):
    axes = tuple(axes)
    if not axes:
        return x
    return bind(prim, x, axes=axes)


def reduce_sum(x, axes): return reduce(P.reduce_sum_p, x, axes)


def expand_to_reduced(y, in_shape, axes):
    """Reshape a reduction's result (axes dropped) back to keepdims form, ready to broadcast."""
    kept = tuple([1 if i in axes else d for i, d in enumerate(in_shape)])
    return reshape(y, kept)


def sum_to_shape(x, shape):
    """Sum a broadcast result back down to `shape` (the one place broadcasting is undone)."""
    shape = tuple(shape)
    xs = shape_of(x)
    if xs == shape:
        return x
    lead = len(xs) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and xs[lead + i] != 1)
    y = reduce_sum(x, axes)
    return reshape(y, shape)


def full(shape, value, dtype):
    return broadcast_to(np.asarray(value, dtype=dtype)[()], shape)


def zeros_like(x):
    dt = dtype_of(x)
    return broadcast_to(dt.type(0), shape_of(x))


def ones_like(x):
    dt = dtype_of(x)
    return broadcast_to(dt.type(1), shape_of(x))


def slice_(x, start, limit, strides=None):
    nd = ndim_of(x)
    strides = tuple(strides) if strides is not None else (1,) * nd
    if tuple(start) == (0,) * nd and tuple(limit) == tuple(shape_of(x)) and strides == (1,) * nd:
        return x
    return bind(P.slice_p, x, start=tuple(map(int, start)), limit=tuple(map(int, limit)),
                strides=tuple(map(int, strides)))


def slice_along(x, axis, lo, hi, step=1):
    """`x[lo:hi:step]` along one axis (0 <= lo <= hi, step > 0)."""
    shape = shape_of(x)
    start, limit, strides = [0] * len(shape), list(shape), [1] * len(shape)
    start[axis], limit[axis], strides[axis] = lo, hi, step
    return slice_(x, start, limit, strides)


def pad(x, fill, config):
    config = tuple((int(lo), int(hi), int(it)) for lo, hi, it in config)
    if builtins.all(c == (0, 0, 0) for c in config):
        return x
    return bind(P.pad_p, x, as_dtype(fill, dtype_of(x)), config=config)


def concatenate(xs, axis: int):
    xs = promote(*xs)
    if len(xs) == 1:
        return xs[0]
    return bind(P.concatenate_p, *xs, axis=int(axis))


def stack(xs, axis: int):
    """Same-shaped values stacked along a new axis."""
    shapes = {tuple(shape_of(x)) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    (shape,) = shapes
    new = shape[:axis] + (1,) + shape[axis:]
    return concatenate([reshape(x, new) for x in xs], axis)


def ravel(x):
    return reshape(x, (size_of(x),))


def rev(x, axes):
    axes = tuple(sorted(int(a) for a in axes))
    if not axes:
        return x
    return bind(P.rev_p, x, axes=axes)


def dot_general(x, y, contract, batch=((), ())):
    x, y = promote(x, y)
    contract = (tuple(map(int, contract[0])), tuple(map(int, contract[1])))
    batch = (tuple(map(int, batch[0])), tuple(map(int, batch[1])))
    return bind(P.dot_general_p, x, y, contract=contract, batch=batch)
