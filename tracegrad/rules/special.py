"""Special-function primitives (the ones `tracegrad.scipy.special` cannot compose): impl, shape,
and derivatives.

The impls call `scipy.special` in float64 and round to the operand dtype; the Numba lowerings
(`compiler/lowering/special.py`) call the same C functions, so both agree to the last bit
(polygamma, whose compiled form is our own Hurwitz-zeta series, to a few ulp). Every derivative
is written with these same primitives, so derivatives of every order exist:
lgamma' = digamma = polygamma(0, .), polygamma(n, .)' = polygamma(n + 1, .), i0' = i1, ...
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from .. import primitives as P
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, elementwise_shape, require_float
from .elementwise import _partials


def _scipy(name):
    # imported on first use: `import tracegrad` does not pay for importing SciPy (~0.2 s)
    import scipy.special
    return getattr(scipy.special, name)


def _in_float64(name):
    def impl(x):
        with np.errstate(all="ignore"):
            return np.asarray(_scipy(name)(np.asarray(x, np.float64))).astype(x.dtype, copy=False)
    return impl


def _float_unary_shape(x, **_):
    require_float("special function", x)
    return Aval(x.shape, x.dtype)


for _p, _f in {P.lgamma_p: "gammaln", P.digamma_p: "digamma", P.gamma_p: "gamma",
               P.erfc_p: "erfc", P.erfinv_p: "erfinv", P.log_ndtr_p: "log_ndtr",
               P.i0_p: "i0", P.i1_p: "i1", P.i0e_p: "i0e", P.i1e_p: "i1e"}.items():
    defimpl(_p, _in_float64(_f))
    defshape(_p, _float_unary_shape)


def _polygamma_impl(n, x):
    """scipy.special.polygamma where n is a whole number >= 0; NaN for any other n."""
    dt = np.result_type(n, x)
    n64, x64 = np.asarray(n, np.float64), np.asarray(x, np.float64)
    whole = (n64 >= 0) & (n64 == np.floor(n64)) & np.isfinite(n64)
    with np.errstate(all="ignore"):
        out = np.where(whole, _scipy("polygamma")(np.where(whole, n64, 0.0), x64), np.nan)
    return np.asarray(out).astype(dt, copy=False)


def _polygamma_shape(n, x):
    require_float("polygamma", x)
    return elementwise_shape(n, x)


defimpl(P.polygamma_p, _polygamma_impl)
defshape(P.polygamma_p, _polygamma_shape)


# ---------------------------------------------------------------- derivatives

def _const(x, value):
    return np.asarray(value, dtype=ops.dtype_of(x))[()]


def polygamma(n, x):
    """polygamma(n, x) for a constant whole n (the traceable form the rules use)."""
    return ops.bind(P.polygamma_p, *ops.promote(_const(x, n), x)) if not ops.is_traced(n) \
        else ops.binary(P.polygamma_p, n, x)


def _sq(x):
    return ops.integer_pow(x, 2)


def _bessel_ratio(x, value, small_series):
    """value / x, with its Maclaurin series near 0 (where value / x is 0 / 0): the series has the
    right derivatives there, and the select keeps the division's NaN out of every order."""
    near0 = ops.compare(P.lt_p, ops.unary(P.abs_p, x), _const(x, 1e-2))
    safe = ops.select(near0, ops.ones_like(x), x)
    return ops.select(near0, small_series(x), ops.div(value, safe))


def _i1_over_x_series(x):
    # i1(x) / x = sum_k (x/2)^(2k) / (2 k! (k+1)!) = 1/2 + x^2/16 + x^4/384 + x^6/18432 + ...
    x2 = _sq(x)
    return ops.add(_const(x, 0.5), ops.mul(x2, ops.add(_const(x, 1 / 16),
                                                        ops.mul(x2, _const(x, 1 / 384)))))


def _i1e_over_x_series(x):
    return ops.mul(_i1_over_x_series(x), ops.exp(ops.neg(ops.unary(P.abs_p, x))))


def _sign(x):
    # d|x|/dx, +1 at 0 (as abs's own derivative)
    return ops.select(ops.compare(P.ge_p, x, 0), ops.ones_like(x), ops.neg(ops.ones_like(x)))


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)

_partials(P.lgamma_p, lambda x, out: ops.unary(P.digamma_p, x))
_partials(P.digamma_p, lambda x, out: polygamma(1, x))
_partials(P.polygamma_p, None, lambda n, x, out: polygamma(ops.add(n, _const(n, 1)), x))
_partials(P.gamma_p, lambda x, out: ops.mul(out, ops.unary(P.digamma_p, x)))
_partials(P.erfc_p, lambda x, out: ops.mul(_const(x, -_TWO_OVER_SQRT_PI), ops.exp(ops.neg(_sq(x)))))
_partials(P.erfinv_p, lambda x, out: ops.mul(_const(x, 1 / _TWO_OVER_SQRT_PI), ops.exp(_sq(out))))
_MILLS_FROM = -8.0        # below: the continued fraction, exact to rounding with _MILLS_LEVELS
_MILLS_LEVELS = 20
_LOG_NDTR_AT_MILLS_FROM = -35.01343715991456      # log_ndtr(-8) (SciPy is imported lazily)


def _log_ndtr_dx(x, out):
    """(log Phi)'(x) = phi(x) / Phi(x). Down to x = -8: exp(-x^2/2 - log Phi(x)) / sqrt(2 pi) (no
    0/0 in the tail). Below, that exponent is a difference of two numbers near x^2/2 (a relative
    error of ~x^2 eps; the derivative of the result, -x - phi/Phi, cancels further: second
    derivatives were wrong by 50% at x = -1e4), so there Laplace's continued fraction for the
    inverse Mills ratio, phi(x)/Phi(x) = t + 1/(t + 2/(t + 3/(t + ...))) with t = -x: every level
    and every derivative of it is a sum of positive terms, exact to rounding at any order."""
    far = ops.compare(P.lt_p, x, _const(x, _MILLS_FROM))
    t = ops.select(far, ops.neg(x), ops.full(ops.shape_of(x), -_MILLS_FROM, ops.dtype_of(x)))
    k = t
    for n in range(_MILLS_LEVELS, 0, -1):
        k = ops.add(t, ops.div(_const(x, n), k))
    # (the other formula at x = -8 where unused: at x ~ -1e13 its exponent is rounding noise ~1e11,
    # exp of it inf, and reverse mode would multiply that by the zero cotangent: NaN)
    x_near = ops.select(far, ops.full(ops.shape_of(x), _MILLS_FROM, ops.dtype_of(x)), x)
    out_near = ops.select(far, ops.full(ops.shape_of(x), _LOG_NDTR_AT_MILLS_FROM, ops.dtype_of(x)), out)
    near = ops.mul(_const(x, _INV_SQRT_2PI), ops.exp(ops.sub(ops.mul(_sq(x_near), _const(x, -0.5)), out_near)))
    return ops.select(far, k, near)


_partials(P.log_ndtr_p, _log_ndtr_dx)
_partials(P.i0_p, lambda x, out: ops.unary(P.i1_p, x))
_partials(P.i1_p, lambda x, out: ops.sub(ops.unary(P.i0_p, x),
                                         _bessel_ratio(x, out, _i1_over_x_series)))
_HANKEL_FROM = 50.0        # from here the scaled Bessel functions' derivatives use Hankel's series
_HANKEL_TERMS = 18         # (terms fall by ~k / (2 |x|): 18 are exact to rounding at |x| = 50)


def _scaled_bessel_tail_dt(nu, t):
    """d/dt (e^-t I_nu(t)) for t >= 50, from Hankel's expansion e^-t I_nu(t) ~ (2 pi t)^-1/2
    sum_k c_k t^-k, c_k = (-1)^k prod_{j <= k} (4 nu^2 - (2j - 1)^2) / (k! 8^k): termwise,
    -(2 pi)^-1/2 t^-3/2 sum_k (k + 1/2) c_k t^-k, a sum of terms falling fast, with no
    cancellation at any order (i1e - i0e, the closed form, cancels to ~i0e / (2t): second
    derivatives were 8% off at |x| = 1.7e7)."""
    c, coefs = 1.0, []
    for k in range(_HANKEL_TERMS):
        coefs.append((k + 0.5) * c)
        c *= -(4 * nu * nu - (2 * k + 1) ** 2) / ((k + 1) * 8)
    u = ops.div(_const(t, 1), t)
    total = _const(t, coefs[-1])
    for ck in reversed(coefs[:-1]):
        total = ops.add(_const(t, ck), ops.mul(u, total))
    scale = ops.div(_const(t, -1 / math.sqrt(2 * math.pi)), ops.mul(t, ops.sqrt(t)))
    return ops.mul(scale, total)


def _scaled_bessel_dx(nu, closed_form):
    """d/dx of i0e (nu = 0: even) or i1e (nu = 1: odd): the closed form up to |x| = 50, Hankel's
    series beyond (evaluated at 50 where unused, so that no branch is inf or NaN)."""
    def partial(x, out):
        t = ops.unary(P.abs_p, x)
        far = ops.compare(P.gt_p, t, _const(x, _HANKEL_FROM))
        tail = _scaled_bessel_tail_dt(nu, ops.select(far, t, ops.full(ops.shape_of(x), _HANKEL_FROM, ops.dtype_of(x))))
        tail = ops.mul(_sign(x), tail) if nu == 0 else tail
        return ops.select(far, tail, closed_form(x, out))
    return partial


_partials(P.i0e_p, _scaled_bessel_dx(0, lambda x, out: ops.sub(ops.unary(P.i1e_p, x), ops.mul(_sign(x), out))))
_partials(P.i1e_p, _scaled_bessel_dx(1, lambda x, out: ops.sub(
    ops.sub(ops.unary(P.i0e_p, x), _bessel_ratio(x, out, _i1e_over_x_series)),
    ops.mul(_sign(x), out))))


# ---------------------------------------------------------------- incomplete gamma and beta

def _incomplete_impl(name):
    def impl(*xs):
        dt = np.result_type(*xs)
        with np.errstate(all="ignore"):
            out = _scipy(name)(*(np.asarray(x, np.float64) for x in xs))
        return np.asarray(out).astype(dt, copy=False)
    return impl


def _incomplete_shape(*xs):
    for x in xs:
        require_float("incomplete gamma/beta", x)
    return elementwise_shape(*xs)


def _gamma_density(a, x):
    # x^(a-1) e^-x / Gamma(a) = dP(a, x)/dx
    return ops.exp(ops.sub(ops.sub(_xlogy(ops.sub(a, _const(a, 1)), x), x), ops.unary(P.lgamma_p, a)))


def _beta_density(a, b, x):
    # x^(a-1) (1-x)^(b-1) / B(a, b) = dI_x(a, b)/dx
    one = _const(x, 1)
    log_b = ops.sub(ops.add(ops.unary(P.lgamma_p, a), ops.unary(P.lgamma_p, b)),
                    ops.unary(P.lgamma_p, ops.add(a, b)))
    return ops.exp(ops.sub(ops.add(_xlogy(ops.sub(a, one), x), _xlogy(ops.sub(b, one), ops.sub(one, x))),
                           log_b))


def _xlogy(k, y):
    # k log y, 0 where k == 0 (the density's x^0 at x == 0 is 1)
    zero = ops.compare(P.eq_p, k, 0)
    return ops.select(zero, ops.zeros_like(ops.mul(k, y)),
                      ops.mul(k, ops.log(ops.select(zero, ops.ones_like(y), y))))


def _incomplete_rules(prim, name, params, dx):
    """VJP/JVP with respect to x (the last operand) only: a derivative in a shape parameter
    (a, b) has no closed form and raises instead of being silently zero."""
    def refuse(i):
        raise NotImplementedError(
            f"{name}: the derivative with respect to the shape parameter {params[i]} is not "
            f"implemented (only with respect to x); pass it as a constant (tg.stop_gradient)")

    def vjp(ct, *xs, out, active):
        for i, on in enumerate(active[:-1]):
            if on:
                refuse(i)
        return (None,) * (len(xs) - 1) + (ops.mul(ct, dx(*xs)),)

    def jvp(tangents, *xs, out):
        for i, t in enumerate(tangents[:-1]):
            if t is not None:
                refuse(i)
        t = tangents[-1]
        return None if t is None else ops.mul(t, dx(*xs))

    defimpl(prim, _incomplete_impl(name))
    defshape(prim, _incomplete_shape)
    defvjp(prim, vjp)
    defjvp(prim, jvp)


_incomplete_rules(P.gammainc_p, "gammainc", ("a",), _gamma_density)
_incomplete_rules(P.gammaincc_p, "gammaincc", ("a",),
                  lambda a, x: ops.neg(_gamma_density(a, x)))
_incomplete_rules(P.betainc_p, "betainc", ("a", "b"), _beta_density)
