"""Elementwise primitives: impl, shape, and derivatives.

A differentiable elementwise primitive states its partial derivatives once, as traceable
expressions of (inputs, out); the VJP (`ct * d`) and JVP (`sum t_i * d_i`) both come from them.
Cotangents are returned at the broadcast output shape: autodiff sums them back to each input.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from .. import primitives as P
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, elementwise_shape, same_dtype


def _partials(prim, *partials):
    """Register VJP and JVP from partial derivatives `d_i(*inputs, out)` (None: no gradient)."""

    def vjp(ct, *args, out, active=None, **params):
        # (`active`: autodiff says which inputs need a cotangent; the others are not computed)
        return tuple(None if d is None or (active is not None and not active[i])
                     else ops.mul(ct, d(*args, out, **params)) for i, d in enumerate(partials))
    vjp.accepts_active = True

    def jvp(tangents, *args, out, **params):
        total = None
        for t, d in zip(tangents, partials):
            if t is None or d is None:
                continue
            term = ops.mul(t, d(*args, out, **params))
            total = term if total is None else ops.add(total, term)
        return total

    defvjp(prim, vjp)
    defjvp(prim, jvp)


def _linear(prim, *signs):
    """Primitives linear in each input with coefficient +1/-1 (add, sub, neg)."""

    def vjp(ct, *args, out, active=None, **params):
        return tuple(None if active is not None and not active[i] else ct if s > 0 else ops.neg(ct)
                     for i, s in enumerate(signs))
    vjp.accepts_active = True

    def jvp(tangents, *args, out, **params):
        total = None
        for t, s in zip(tangents, signs):
            if t is None:
                continue
            term = t if s > 0 else ops.neg(t)
            total = term if total is None else ops.add(total, term)
        if total is not None and total.shape != out.shape:
            total = ops.broadcast_to(total, out.shape)
        return total

    defvjp(prim, vjp)
    defjvp(prim, jvp)


def _zero_jvp(tangents, *args, out, **params):
    return None


def _unary_shape(x, **_):
    return Aval(x.shape, x.dtype)


def _bool_shape(x, **_):
    return Aval(x.shape, np.bool_)


_UNARY_IMPL = {
    P.neg_p: np.negative, P.abs_p: np.abs, P.sign_p: np.sign, P.exp_p: np.exp,
    P.expm1_p: np.expm1, P.log_p: np.log, P.log1p_p: np.log1p, P.sqrt_p: np.sqrt,
    P.cbrt_p: np.cbrt, P.sin_p: np.sin, P.cos_p: np.cos, P.tan_p: np.tan, P.asin_p: np.arcsin,
    P.acos_p: np.arccos, P.atan_p: np.arctan, P.sinh_p: np.sinh, P.cosh_p: np.cosh,
    P.tanh_p: np.tanh, P.asinh_p: np.arcsinh, P.acosh_p: np.arccosh, P.atanh_p: np.arctanh,
    P.floor_p: np.floor, P.ceil_p: np.ceil, P.round_p: np.rint, P.trunc_p: np.trunc,
    P.stop_gradient_p: lambda x: x,
}
_erf = np.vectorize(math.erf, otypes=[np.float64])
_UNARY_IMPL[P.erf_p] = lambda x: _erf(x).astype(x.dtype, copy=False)

for _p, _f in _UNARY_IMPL.items():
    defimpl(_p, _f)
    defshape(_p, _unary_shape)

for _p, _f in {P.isnan_p: np.isnan, P.isinf_p: np.isinf, P.isfinite_p: np.isfinite,
               P.signbit_p: np.signbit}.items():
    defimpl(_p, _f)
    defshape(_p, _bool_shape)

defimpl(P.not_p, lambda x: np.logical_not(x) if x.dtype == np.bool_ else np.invert(x))
defshape(P.not_p, _unary_shape)


def _sq(x):
    return ops.integer_pow(x, 2)


def _rsqrt(x):
    return ops.div(1, ops.sqrt(x))


_partials(P.exp_p, lambda x, out: out)
_partials(P.expm1_p, lambda x, out: ops.add(out, 1))
_partials(P.log_p, lambda x, out: ops.div(1, x))
_partials(P.log1p_p, lambda x, out: ops.div(1, ops.add(x, 1)))
_partials(P.sqrt_p, lambda x, out: ops.div(0.5, out))
_partials(P.cbrt_p, lambda x, out: ops.mul(1 / 3, ops.integer_pow(out, -2)))
_partials(P.sin_p, lambda x, out: ops.cos(x))
_partials(P.cos_p, lambda x, out: ops.neg(ops.sin(x)))
_partials(P.tan_p, lambda x, out: ops.add(1, _sq(out)))
_partials(P.asin_p, lambda x, out: _rsqrt(ops.sub(1, _sq(x))))
_partials(P.acos_p, lambda x, out: ops.neg(_rsqrt(ops.sub(1, _sq(x)))))
_partials(P.atan_p, lambda x, out: ops.div(1, ops.add(1, _sq(x))))
_partials(P.sinh_p, lambda x, out: ops.unary(P.cosh_p, x))
_partials(P.cosh_p, lambda x, out: ops.unary(P.sinh_p, x))
_partials(P.tanh_p, lambda x, out: ops.sub(1, _sq(out)))
_partials(P.asinh_p, lambda x, out: _rsqrt(ops.add(_sq(x), 1)))
_partials(P.acosh_p, lambda x, out: _rsqrt(ops.mul(ops.sub(x, 1), ops.add(x, 1))))
_partials(P.atanh_p, lambda x, out: ops.div(1, ops.sub(1, _sq(x))))
_partials(P.erf_p, lambda x, out: ops.mul(2 / math.sqrt(math.pi), ops.exp(ops.neg(_sq(x)))))
# |x|' at 0 is taken as +1, as JAX does.
_partials(P.abs_p, lambda x, out: ops.select(ops.compare(P.ge_p, x, 0), ops.ones_like(x),
                                             ops.neg(ops.ones_like(x))))
_linear(P.neg_p, -1)


# ---------------------------------------------------------------- integer_pow

def _integer_pow_impl(x, *, y):
    if y == 2:
        return x * x
    return np.power(x, x.dtype.type(y)) if x.dtype.kind == "f" else np.power(x, y)


def _integer_pow_d(x, out, *, y):
    if y == 0:
        return ops.zeros_like(x)
    if y == 1:
        return ops.ones_like(x)
    if y == 2:
        return ops.mul(2, x)
    return ops.mul(y, ops.integer_pow(x, y - 1))


defimpl(P.integer_pow_p, _integer_pow_impl)
defshape(P.integer_pow_p, _unary_shape)
_partials(P.integer_pow_p, _integer_pow_d)


# ---------------------------------------------------------------- convert, stop_gradient

def _convert_shape(x, *, dtype):
    return Aval(x.shape, dtype)


def _convert_vjp(ct, x, *, out, dtype):
    if x.dtype.kind != "f" or np.dtype(dtype).kind != "f":
        return (None,)
    return (ops.as_dtype(ct, x.dtype),)


def _convert_jvp(tangents, x, *, out, dtype):
    (t,) = tangents
    if t is None or np.dtype(dtype).kind != "f":
        return None
    return ops.as_dtype(t, dtype)


defimpl(P.convert_p, lambda x, *, dtype: np.asarray(x).astype(dtype))
defshape(P.convert_p, _convert_shape)
defvjp(P.convert_p, _convert_vjp)
defjvp(P.convert_p, _convert_jvp)
defvjp(P.stop_gradient_p, lambda ct, x, *, out: (None,))
defjvp(P.stop_gradient_p, _zero_jvp)


# ---------------------------------------------------------------- binary

_BINARY_IMPL = {
    P.add_p: np.add, P.sub_p: np.subtract, P.mul_p: np.multiply, P.div_p: np.true_divide,
    P.pow_p: np.power, P.max_p: np.maximum, P.min_p: np.minimum, P.atan2_p: np.arctan2,
    P.rem_p: np.fmod, P.floordiv_p: np.floor_divide, P.and_p: np.bitwise_and,
    P.or_p: np.bitwise_or, P.xor_p: np.bitwise_xor,
}
for _p, _f in _BINARY_IMPL.items():
    defimpl(_p, _f)
    defshape(_p, elementwise_shape)

_COMPARE_IMPL = {P.eq_p: np.equal, P.ne_p: np.not_equal, P.lt_p: np.less, P.le_p: np.less_equal,
                 P.gt_p: np.greater, P.ge_p: np.greater_equal}
for _p, _f in _COMPARE_IMPL.items():
    defimpl(_p, _f)
    defshape(_p, lambda x, y: elementwise_shape(x, y, out_dtype=np.bool_))

_linear(P.add_p, 1, 1)
_linear(P.sub_p, 1, -1)
_partials(P.mul_p, lambda x, y, out: y, lambda x, y, out: x)
_partials(P.div_p, lambda x, y, out: ops.div(1, y), lambda x, y, out: ops.neg(ops.div(out, y)))


def _pow_dx(x, y, out):
    # y * x**(y-1), with 0 at 0**0 (as JAX defines it). Only there: at y == 0 with x != 0 the
    # expression is exact (0 * x**-1), and its derivative in y (x**-1, the mixed second
    # derivative) must survive (JAX selects 0 wherever y == 0, so that one comes out 0).
    special = ops.bind(P.and_p, *ops.promote(ops.compare(P.eq_p, y, 0), ops.compare(P.eq_p, x, 0)))
    safe_x = ops.select(special, ops.ones_like(x), x)
    d = ops.mul(y, ops.binary(P.pow_p, safe_x, ops.sub(y, 1)))
    return ops.select(special, ops.zeros_like(d), d)


def _pow_dy(x, y, out):
    # out * log(x), with 0 where x == 0
    is0 = ops.compare(P.eq_p, x, 0)
    return ops.select(is0, ops.zeros_like(out), ops.mul(out, ops.log(ops.select(is0, ops.ones_like(x), x))))


_partials(P.pow_p, _pow_dx, _pow_dy)


def _balanced(x, y, out):
    """1 where x alone attains `out`, 0.5 at ties, 0 elsewhere (JAX's convention for max/min)."""
    wins = ops.convert(ops.compare(P.eq_p, x, out), out.dtype)
    ties = ops.convert(ops.compare(P.eq_p, x, y), out.dtype)
    return ops.mul(wins, ops.sub(1, ops.mul(0.5, ties)))


_partials(P.max_p, _balanced, lambda x, y, out: _balanced(y, x, out))
_partials(P.min_p, _balanced, lambda x, y, out: _balanced(y, x, out))
_partials(P.atan2_p, lambda x, y, out: ops.div(y, ops.add(_sq(x), _sq(y))),
          lambda x, y, out: ops.neg(ops.div(x, ops.add(_sq(x), _sq(y)))))
_partials(P.rem_p, lambda x, y, out: ops.ones_like(out),
          lambda x, y, out: ops.neg(ops.unary(P.trunc_p, ops.div(x, y))))


# ---------------------------------------------------------------- select

def _select_shape(pred, a, b):
    if pred.dtype != np.bool_:
        raise TypeError(f"select needs a bool predicate, got {pred.dtype}")
    same_dtype(a, b)
    return elementwise_shape(*(Aval(p.shape, a.dtype) for p in (pred, a, b)))


def _select_vjp(ct, pred, a, b, *, out):
    zero = ops.zeros_like(ct)
    return (None, ops.select(pred, ct, zero), ops.select(pred, zero, ct))


def _select_jvp(tangents, pred, a, b, *, out):
    _, ta, tb = tangents
    if ta is None and tb is None:
        return None
    ta = ops.zeros_like(out) if ta is None else ta
    tb = ops.zeros_like(out) if tb is None else tb
    return ops.select(pred, ta, tb)


defimpl(P.select_p, np.where)
defshape(P.select_p, _select_shape)
defvjp(P.select_p, _select_vjp)
defjvp(P.select_p, _select_jvp)
