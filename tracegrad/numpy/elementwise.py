"""Elementwise NumPy functions (ufuncs and friends) on traced values.

Operands are cast to the dtypes of the loop NumPy itself would choose (`ufunc.resolve_dtypes`), so
results have exactly NumPy's dtype; then either one primitive is bound or a short composition.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import ops
from .. import primitives as P
from ._dispatch import numpy_function


def _ufunc(ufunc, build):
    """Register `build(*cast_operands)` as the traced `ufunc`."""
    def impl(*xs):
        if len(xs) != ufunc.nin:
            raise TypeError(f"{ufunc.__name__} takes {ufunc.nin} operand(s), got {len(xs)}")
        return build(*ops.ufunc_operands(ufunc, *xs))
    impl.__name__ = ufunc.__name__
    impl.__doc__ = f"Traceable numpy.{ufunc.__name__}."
    return numpy_function(ufunc)(impl)


def _prim(prim):
    return lambda *xs: ops.bind(prim, *xs) if len(xs) > 1 else ops.unary(prim, xs[0])


def _float_const(x, value):
    return np.asarray(value, dtype=ops.dtype_of(x))[()]


def _identity(x):
    return x


# ---------------------------------------------------------------- one input
negative = _ufunc(np.negative, _prim(P.neg_p))
positive = _ufunc(np.positive, _identity)
exp = _ufunc(np.exp, _prim(P.exp_p))
expm1 = _ufunc(np.expm1, _prim(P.expm1_p))
log = _ufunc(np.log, _prim(P.log_p))
log1p = _ufunc(np.log1p, _prim(P.log1p_p))
sqrt = _ufunc(np.sqrt, _prim(P.sqrt_p))
cbrt = _ufunc(np.cbrt, _prim(P.cbrt_p))
sin = _ufunc(np.sin, _prim(P.sin_p))
cos = _ufunc(np.cos, _prim(P.cos_p))
tan = _ufunc(np.tan, _prim(P.tan_p))
arcsin = _ufunc(np.arcsin, _prim(P.asin_p))
arccos = _ufunc(np.arccos, _prim(P.acos_p))
arctan = _ufunc(np.arctan, _prim(P.atan_p))
sinh = _ufunc(np.sinh, _prim(P.sinh_p))
cosh = _ufunc(np.cosh, _prim(P.cosh_p))
tanh = _ufunc(np.tanh, _prim(P.tanh_p))
arcsinh = _ufunc(np.arcsinh, _prim(P.asinh_p))
arccosh = _ufunc(np.arccosh, _prim(P.acosh_p))
arctanh = _ufunc(np.arctanh, _prim(P.atanh_p))
exp2 = _ufunc(np.exp2, lambda x: ops.exp(ops.mul(x, _float_const(x, math.log(2)))))
log2 = _ufunc(np.log2, lambda x: ops.mul(ops.log(x), _float_const(x, 1 / math.log(2))))
log10 = _ufunc(np.log10, lambda x: ops.mul(ops.log(x), _float_const(x, 1 / math.log(10))))
square = _ufunc(np.square, lambda x: ops.integer_pow(x, 2))
reciprocal = _ufunc(np.reciprocal, lambda x: ops.div(np.ones((), ops.dtype_of(x))[()], x)
                    if ops.dtype_of(x).kind == "f" else ops.bind(P.floordiv_p, np.ones((), ops.dtype_of(x))[()], x))
deg2rad = _ufunc(np.deg2rad, lambda x: ops.mul(x, _float_const(x, math.pi / 180)))
rad2deg = _ufunc(np.rad2deg, lambda x: ops.mul(x, _float_const(x, 180 / math.pi)))
radians = _ufunc(np.radians, lambda x: ops.mul(x, _float_const(x, math.pi / 180)))
degrees = _ufunc(np.degrees, lambda x: ops.mul(x, _float_const(x, 180 / math.pi)))
absolute = _ufunc(np.absolute, lambda x: x if ops.dtype_of(x).kind == "b" else ops.unary(P.abs_p, x))
abs = absolute
fabs = _ufunc(np.fabs, _prim(P.abs_p))
sign = _ufunc(np.sign, _prim(P.sign_p))
floor = _ufunc(np.floor, lambda x: x if ops.dtype_of(x).kind in "iub" else ops.unary(P.floor_p, x))
ceil = _ufunc(np.ceil, lambda x: x if ops.dtype_of(x).kind in "iub" else ops.unary(P.ceil_p, x))
rint = _ufunc(np.rint, _prim(P.round_p))
trunc = _ufunc(np.trunc, lambda x: x if ops.dtype_of(x).kind in "iub" else ops.unary(P.trunc_p, x))
isnan = _ufunc(np.isnan, _prim(P.isnan_p))
isinf = _ufunc(np.isinf, _prim(P.isinf_p))
isfinite = _ufunc(np.isfinite, _prim(P.isfinite_p))
signbit = _ufunc(np.signbit, _prim(P.signbit_p))
logical_not = _ufunc(np.logical_not, _prim(P.not_p))
invert = _ufunc(np.invert, _prim(P.not_p))
conjugate = _ufunc(np.conjugate, _identity)
conj = conjugate


# ---------------------------------------------------------------- two inputs
add = _ufunc(np.add, lambda x, y: ops.bind(P.or_p, x, y) if ops.dtype_of(x).kind == "b"
             else ops.bind(P.add_p, x, y))
subtract = _ufunc(np.subtract, _prim(P.sub_p))
multiply = _ufunc(np.multiply, lambda x, y: ops.bind(P.and_p, x, y) if ops.dtype_of(x).kind == "b"
                  else ops.bind(P.mul_p, x, y))
true_divide = divide = _ufunc(np.true_divide, _prim(P.div_p))
maximum = _ufunc(np.maximum, _prim(P.max_p))
minimum = _ufunc(np.minimum, _prim(P.min_p))
arctan2 = _ufunc(np.arctan2, _prim(P.atan2_p))
fmod = _ufunc(np.fmod, _prim(P.rem_p))
floor_divide = _ufunc(np.floor_divide, _prim(P.floordiv_p))
equal = _ufunc(np.equal, _prim(P.eq_p))
not_equal = _ufunc(np.not_equal, _prim(P.ne_p))
less = _ufunc(np.less, _prim(P.lt_p))
less_equal = _ufunc(np.less_equal, _prim(P.le_p))
greater = _ufunc(np.greater, _prim(P.gt_p))
greater_equal = _ufunc(np.greater_equal, _prim(P.ge_p))
logical_and = _ufunc(np.logical_and, _prim(P.and_p))
logical_or = _ufunc(np.logical_or, _prim(P.or_p))
logical_xor = _ufunc(np.logical_xor, _prim(P.xor_p))
bitwise_and = _ufunc(np.bitwise_and, _prim(P.and_p))
bitwise_or = _ufunc(np.bitwise_or, _prim(P.or_p))
bitwise_xor = _ufunc(np.bitwise_xor, _prim(P.xor_p))


def _power(x, y):
    if isinstance(y, (np.generic, np.ndarray)) and np.ndim(y) == 0 and float(y) == int(y) \
            and builtins.abs(int(y)) <= 64 and not ops.is_traced(y) and (ops.dtype_of(x).kind == "f" or int(y) >= 0):
        return ops.integer_pow(x, int(y))
    return ops.bind(P.pow_p, x, y)


power = _ufunc(np.power, _power)
float_power = _ufunc(np.float_power, _prim(P.pow_p))


def _mod(x, y):
    # Python/NumPy modulo: result has the sign of the divisor.
    r = ops.bind(P.rem_p, x, y)
    fix = ops.bind(P.and_p, ops.bind(P.ne_p, r, ops.zeros_like(r)),
                   ops.bind(P.ne_p, ops.bind(P.lt_p, r, ops.zeros_like(r)),
                            ops.bind(P.lt_p, y, ops.zeros_like(y))))
    return ops.select(fix, ops.add(r, y), r)


mod = remainder = _ufunc(np.remainder, _mod)


def _hypot(x, y):
    return ops.sqrt(ops.add(ops.integer_pow(x, 2), ops.integer_pow(y, 2)))


hypot = _ufunc(np.hypot, _hypot)


def _logaddexp(x, y):
    # max + log1p(exp(-|x - y|)): never overflows; at x == y each side gets half the gradient.
    m = ops.maximum(x, y)
    d = ops.unary(P.abs_p, ops.sub(x, y))
    return ops.add(m, ops.log1p(ops.exp(ops.neg(d))))


logaddexp = _ufunc(np.logaddexp, _logaddexp)
logaddexp2 = _ufunc(np.logaddexp2, lambda x, y: ops.mul(
    _logaddexp(ops.mul(x, _float_const(x, math.log(2))), ops.mul(y, _float_const(y, math.log(2)))),
    _float_const(x, 1 / math.log(2))))


def _fmax(x, y):
    # ignores NaN: picks the other operand where one is NaN
    m = ops.maximum(x, y)
    m = ops.select(ops.unary(P.isnan_p, x), y, m)
    return ops.select(ops.unary(P.isnan_p, y), x, m)


def _fmin(x, y):
    m = ops.minimum(x, y)
    m = ops.select(ops.unary(P.isnan_p, x), y, m)
    return ops.select(ops.unary(P.isnan_p, y), x, m)


fmax = _ufunc(np.fmax, _fmax)
fmin = _ufunc(np.fmin, _fmin)


# ---------------------------------------------------------------- not ufuncs

@numpy_function(np.where)
def where(condition, x=None, y=None):
    """Elementwise select; gradients flow to the selected side only."""
    if x is None or y is None:
        raise NotImplementedError("where(condition) with one argument (indices) has a data-dependent "
                                  "shape and cannot be traced; pass where(condition, x, y)")
    x, y = ops.promote(x, y)
    return ops.select(ops.as_dtype(condition, np.bool_) if not ops.is_traced(condition) or
                      ops.dtype_of(condition) != np.bool_ else condition, x, y)


@numpy_function(np.clip)
def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    """Clip to [a_min, a_max]; the gradient passes where the value was not clipped."""
    if out is not None:
        raise TypeError("clip(..., out=...) cannot write into a traced value")
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    dt = ops.result_dtype(*(v for v in (a, a_min, a_max) if v is not None))
    x = ops.as_dtype(a, dt)
    if a_min is not None:
        x = ops.maximum(x, ops.as_dtype(a_min, dt))
    if a_max is not None:
        x = ops.minimum(x, ops.as_dtype(a_max, dt))
    return x


@numpy_function(np.sinc)
def sinc(x):
    """sin(pi x) / (pi x), 1 at 0 (with a gradient that is also right at 0)."""
    (x,) = ops.ufunc_operands(np.sin, x)
    pix = ops.mul(x, _float_const(x, math.pi))
    is0 = ops.bind(P.eq_p, x, ops.zeros_like(x))
    safe = ops.select(is0, ops.ones_like(pix), pix)
    return ops.select(is0, ops.ones_like(x), ops.div(ops.sin(safe), safe))


@numpy_function(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +Inf -> posinf (largest finite), -Inf -> neginf; gradient passes elsewhere."""
    dt = ops.dtype_of(x)
    if dt.kind != "f":
        return x
    info = np.finfo(dt)
    big = info.max if posinf is None else posinf
    small = info.min if neginf is None else neginf
    y = ops.select(ops.unary(P.isnan_p, x), ops.full(x.shape, nan, dt), x)
    y = ops.select(ops.bind(P.eq_p, x, np.asarray(np.inf, dt)[()]), ops.full(x.shape, big, dt), y)
    return ops.select(ops.bind(P.eq_p, x, np.asarray(-np.inf, dt)[()]), ops.full(x.shape, small, dt), y)


@numpy_function(np.real)
def real(x):
    return x


@numpy_function(np.imag)
def imag(x):
    return ops.zeros_like(x)


@numpy_function(np.round, np.around)
def round(a, decimals=0, out=None):
    if out is not None:
        raise TypeError("round(..., out=...) cannot write into a traced value")
    if ops.dtype_of(a).kind in "iub" and decimals >= 0:
        return a
    if decimals == 0:
        return ops.unary(P.round_p, a)
    scale = _float_const(a, 10.0 ** decimals)
    return ops.div(ops.unary(P.round_p, ops.mul(a, scale)), scale)


around = round
