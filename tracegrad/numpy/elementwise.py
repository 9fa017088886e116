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
    wrapper = numpy_function(ufunc)(impl)
    wrapper._tracegrad_prim = getattr(build, "prim", None) if _float_loops(ufunc) else None
    return wrapper


def _float_loops(ufunc) -> bool:
    """Does `ufunc` compute float operands of one dtype in that dtype (no cast: _dispatch.direct)?"""
    for dt in (np.float16, np.float32, np.float64):
        d = np.dtype(dt)
        try:
            if ufunc.resolve_dtypes((d,) * ufunc.nin + (None,) * ufunc.nout)[:ufunc.nin] != (d,) * ufunc.nin:
                return False
        except TypeError:
            return False
    return True


def _prim(prim):
    fn = lambda *xs: ops.bind(prim, *xs) if len(xs) > 1 else ops.unary(prim, xs[0])   # noqa: E731
    fn.prim = prim     # one primitive on the cast operands: float operands of one dtype need no cast
    return fn


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


def _reciprocal(x):
    one = np.ones((), ops.dtype_of(x))[()]
    if ops.dtype_of(x).kind == "f":
        return ops.div(one, x)
    # integer 1/x truncates toward zero (C division): (1 - fmod(1, x)) is an exact multiple of x
    return ops.bind(P.floordiv_p, ops.sub(one, ops.bind(P.rem_p, one, x)), x)


reciprocal = _ufunc(np.reciprocal, _reciprocal)
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
logical_not = _ufunc(np.logical_not, lambda x: ops.unary(P.not_p, ops.as_dtype(x, np.bool_)))
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


def _logical(prim):
    # NumPy's logical ufuncs also loop over numbers (nonzero is True): compare as bools
    return lambda x, y: ops.bind(prim, ops.as_dtype(x, np.bool_), ops.as_dtype(y, np.bool_))


logical_and = _ufunc(np.logical_and, _logical(P.and_p))
logical_or = _ufunc(np.logical_or, _logical(P.or_p))
logical_xor = _ufunc(np.logical_xor, _logical(P.xor_p))
bitwise_and = _ufunc(np.bitwise_and, _prim(P.and_p))
bitwise_or = _ufunc(np.bitwise_or, _prim(P.or_p))
bitwise_xor = _ufunc(np.bitwise_xor, _prim(P.xor_p))


def _small_int(y):
    """The int value of a constant scalar exponent that is a small whole number, else None."""
    if ops.is_traced(y) or not isinstance(y, (np.generic, np.ndarray)) or np.ndim(y) != 0:
        return None
    v = float(y)
    if not math.isfinite(v) or v != int(v) or builtins.abs(v) > 64:
        return None
    return int(v)


def _power(x, y):
    k = _small_int(y)
    if k is not None and (ops.dtype_of(x).kind == "f" or k >= 0):
        return ops.integer_pow(x, k)
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
divmod = _ufunc(np.divmod, lambda x, y: (ops.bind(P.floordiv_p, x, y), _mod(x, y)))


def _hypot(x, y):
    # big * sqrt(1 + (small/big)**2): no overflow or underflow. big and small are *selected* (not
    # maximum/minimum, whose derivative splits 1/2 : 1/2 at ties): a * sqrt(1 + (b/a)**2) equals
    # hypot(a, b) on both sides of a tie, so derivatives of every order are exact at |x| == |y|
    # (through max/min, the second derivative there would be 0). At (0, 0), a kink, the gradient
    # is (1/2, 1/2) as in JAX (maximum's tie rule), and an infinite operand gives inf beside a NaN.
    ax, ay = ops.unary(P.abs_p, x), ops.unary(P.abs_p, y)
    swap = ops.compare(P.lt_p, ax, ay)
    big, small = ops.select(swap, ay, ax), ops.select(swap, ax, ay)
    is0 = ops.compare(P.eq_p, big, 0)
    ratio = ops.div(small, ops.select(is0, ops.ones_like(big), big))
    h = ops.select(is0, ops.maximum(ax, ay),
                   ops.mul(big, ops.sqrt(ops.add(ops.integer_pow(ratio, 2), 1))))
    inf = np.asarray(np.inf, ops.dtype_of(h))[()]
    is_inf = ops.bind(P.or_p, ops.compare(P.eq_p, ax, inf), ops.compare(P.eq_p, ay, inf))
    return ops.select(is_inf, ops.full(ops.shape_of(h), inf, ops.dtype_of(h)), h)


hypot = _ufunc(np.hypot, _hypot)


def _logaddexp(x, y):
    """log(exp(x) + exp(y)) = m + log1p(t), t = exp(x - m) + exp(y - m) - 1 with m = max(x, y)
    held constant (stop_gradient): the identity holds for any m, so the derivative is exactly
    exp(x - out) to every order (1/2 each at x == y, as JAX), and t is formed without cancellation
    (expm1 of the larger operand's zero). NaN or infinities of one sign: x + y, as NumPy."""
    m = ops.stop_gradient(ops.maximum(x, y))
    m = ops.select(ops.unary(P.isinf_p, m), ops.zeros_like(m), m)
    dx, dy = ops.sub(x, m), ops.sub(y, m)
    x_big = ops.compare(P.ge_p, x, y)
    t = ops.select(x_big, ops.add(ops.unary(P.expm1_p, dx), ops.exp(dy)),
                   ops.add(ops.exp(dx), ops.unary(P.expm1_p, dy)))
    out = ops.add(m, ops.unary(P.log1p_p, t))
    return ops.select(ops.unary(P.isnan_p, ops.sub(x, y)), ops.add(x, y), out)


logaddexp = _ufunc(np.logaddexp, _logaddexp)
logaddexp2 = _ufunc(np.logaddexp2, lambda x, y: ops.mul(
    _logaddexp(ops.mul(x, _float_const(x, math.log(2))), ops.mul(y, _float_const(y, math.log(2)))),
    _float_const(x, 1 / math.log(2))))


def _fmax(x, y):
    # NaN-ignoring: x where x > y or y is NaN, else y (so at ties the gradient goes to y, as JAX)
    pick_x = ops.compare(P.gt_p, x, y)
    if ops.dtype_of(y).kind == "f":
        pick_x = ops.bind(P.or_p, pick_x, ops.unary(P.isnan_p, y))
    return ops.select(pick_x, x, y)


def _fmin(x, y):
    pick_x = ops.compare(P.lt_p, x, y)
    if ops.dtype_of(y).kind == "f":
        pick_x = ops.bind(P.or_p, pick_x, ops.unary(P.isnan_p, y))
    return ops.select(pick_x, x, y)


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
    """sin(pi x) / (pi x); near 0 its Maclaurin series 1 - z^2/6 + z^4/120 (z = pi x), so that the
    value is 1 at 0 and derivatives of every order there are right (0, -pi^2/3, ...)."""
    x = ops.as_dtype(x, ops.result_dtype(x, 1.0))     # NumPy computes pi * x: ints -> float64
    z = ops.mul(x, _float_const(x, math.pi))
    near0 = ops.compare(P.lt_p, ops.unary(P.abs_p, z), _float_const(z, 1e-3))
    safe = ops.select(near0, ops.ones_like(z), z)
    z2 = ops.integer_pow(z, 2)
    series = ops.add(ops.mul(z2, ops.add(ops.mul(z2, _float_const(z, 1 / 120)), _float_const(z, -1 / 6))), 1)
    return ops.select(near0, series, ops.div(ops.sin(safe), safe))


@numpy_function(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +Inf -> posinf (largest finite), -Inf -> neginf; gradient passes elsewhere."""
    dt = ops.dtype_of(x)
    if dt.kind != "f":
        return x
    info = np.finfo(dt)
    big = info.max if posinf is None else posinf
    small = info.min if neginf is None else neginf
    x = ops.as_operand(x)
    fill = lambda v: ops.broadcast_to(ops.as_dtype(v, dt), ops.shape_of(x))   # noqa: E731  (v may be traced)
    y = ops.select(ops.unary(P.isnan_p, x), fill(nan), x)
    y = ops.select(ops.bind(P.eq_p, x, np.asarray(np.inf, dt)[()]), fill(big), y)
    return ops.select(ops.bind(P.eq_p, x, np.asarray(-np.inf, dt)[()]), fill(small), y)


@numpy_function(np.isclose)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b| where b is finite, or a == b (NumPy's formula and dtypes: b is
    made inexact first). A bool array with no derivative."""
    x = a if type(a) in (bool, int, float) else ops.as_operand(a)
    y = b if type(b) in (bool, int, float) else ops.as_operand(b)
    y = float(y) if type(y) in (bool, int) else ops.as_dtype(y, ops.result_dtype(y, 1.0))
    rtol, atol = [v if type(v) in (int, float) else ops.as_operand(v) for v in (rtol, atol)]
    dt = ops.result_dtype(x, y)
    x, y = ops.as_dtype(x, dt), ops.as_dtype(y, dt)
    # |x - y| <= tol is False wherever x or y is not finite (x == y decides there): compare zeros
    # instead, so that inf - inf raises no warning
    finite = ops.bind(P.and_p, *[ops.broadcast_to(ops.unary(P.isfinite_p, v), np.broadcast_shapes(
        ops.shape_of(x), ops.shape_of(y))) for v in (x, y)])
    xs, ys = ops.select(finite, x, ops.zeros_like(x)), ops.select(finite, y, ops.zeros_like(y))
    tol = ops.add(atol, ops.mul(rtol, ops.unary(P.abs_p, ys)))
    near = ops.compare(P.le_p, ops.unary(P.abs_p, ops.sub(xs, ys)), tol)
    result = ops.bind(P.or_p, ops.bind(P.and_p, near, finite), ops.compare(P.eq_p, x, y))
    if equal_nan:
        result = ops.bind(P.or_p, result, ops.bind(P.and_p, ops.unary(P.isnan_p, x), ops.unary(P.isnan_p, y)))
    return result


@numpy_function(np.allclose)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """`all(isclose(a, b, ...))`: a traced 0-d bool (NumPy returns a Python bool); `if` on it works in
    eager mode, and under compilation `tg.cond` / `tnp.where` take it."""
    close = isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return ops.reduce(P.reduce_and_p, close, tuple(range(ops.ndim_of(close))))


@numpy_function(np.real)
def real(x):
    return x


@numpy_function(np.imag)
def imag(x):
    return ops.zeros_like(x)


@numpy_function(np.round, np.around)
def round(a, decimals=0, out=None):
    """Half to even, as NumPy: x * 10**d rounded, / 10**d (for d < 0: x / 10**-d rounded, * 10**-d),
    in the float dtype of `a` (float64 for ints, cast back)."""
    if out is not None:
        raise TypeError("round(..., out=...) cannot write into a traced value")
    dt = ops.dtype_of(a)
    if dt.kind == "b":
        # NumPy rounds bools through the float16 rint loop and cannot scale them
        if decimals != 0:
            raise TypeError(f"round of a bool array with decimals={decimals} is not supported "
                            f"(NumPy cannot cast the scaled float64 back to bool)")
        return ops.unary(P.round_p, ops.as_dtype(a, np.float16))
    if dt.kind in "iu" and decimals >= 0:
        return a
    if decimals == 0:
        return ops.unary(P.round_p, a)
    x = ops.as_dtype(a, dt if dt.kind == "f" else np.float64)
    scale = _float_const(x, 10.0 ** builtins.abs(decimals))
    if decimals > 0:
        y = ops.div(ops.unary(P.round_p, ops.mul(x, scale)), scale)
    else:
        y = ops.mul(ops.unary(P.round_p, ops.div(x, scale)), scale)
    return ops.as_dtype(y, dt)


around = round


@numpy_function(np.select)
def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    # Python scalars stay weak for the result dtype, as NumPy's select keeps them
    choices = [c if type(c) in (int, float) else ops.as_operand(c)
               for c in list(choicelist) + [default]]
    dt = ops.result_dtype(*choices)
    conds = []
    for i, c in enumerate(condlist):
        c = ops.as_operand(c)
        if ops.dtype_of(c) != np.bool_:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
        conds.append(c)
    shape = tuple(np.broadcast_shapes(*[tuple(ops.shape_of(c)) for c in conds + choices]))
    result = ops.broadcast_to(ops.as_dtype(choices[-1], dt), shape)
    for c, choice in zip(conds[::-1], choices[-2::-1]):
        result = ops.select(c, ops.as_dtype(choice, dt), result)
    return ops.broadcast_to(result, shape)


__all__ = [_n for _n, _v in list(globals().items())
           if not _n.startswith("_") and hasattr(_v, "_tracegrad_impl")]
