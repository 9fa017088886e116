"""`tracegrad.scipy.stats`: densities and distribution functions of scipy.stats distributions on
traced values, with SciPy's signatures (`loc` / `scale` keywords included).

    norm                 logpdf pdf cdf logcdf sf logsf
    multivariate_normal  logpdf pdf                (x: (..., d); mean: (d,); cov: scalar, (d,) or (d, d))
    t                    logpdf pdf cdf            (df)
    beta                 logpdf pdf cdf            (a, b)
    gamma                logpdf pdf cdf            (a)
    poisson              logpmf pmf cdf            (mu)
    bernoulli            logpmf pmf cdf            (p)
    dirichlet            logpdf pdf                (x: (k, ...) or (k - 1, ...), alpha: (k,))

Every function is differentiable in x and in every parameter, except the cdfs of t, beta and
gamma in their shape parameters (df, a, b): the incomplete beta and gamma functions have no
closed-form derivative there, and asking for one raises NotImplementedError. Outside the
support the log densities are -inf, as SciPy's; invalid parameters (scale <= 0, ...) give NaN.
Outside a trace each method returns what scipy.stats returns.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.stats as _st

from .. import ops
from .. import primitives as P
from ..numpy import linalg as _la
from ..numpy._dispatch import has_tracer
from . import special as sp

_LOG_2PI = math.log(2 * math.pi)


def _fallback(reference):
    """Call scipy.stats' own method when no argument is traced."""
    def deco(impl):
        @functools.wraps(impl)
        def wrapper(*args, **kwargs):
            if not has_tracer(args) and not has_tracer(kwargs.values()):
                return reference(*args, **kwargs)
            return impl(*args, **kwargs)
        wrapper.reference = reference
        return wrapper
    return deco


def _floats(*xs):
    """The operands in one floating-point dtype (NumPy's promotion; ints compute in float64)."""
    xs = [ops.as_operand(x) if not isinstance(x, (int, float)) else x for x in xs]
    dt = ops.result_dtype(*xs, 1.0)
    return [ops.as_dtype(x, dt) for x in xs]


def _c(x, v):
    return np.asarray(v, dtype=ops.dtype_of(x))[()]


def _full_like(x, v):
    return ops.full(ops.shape_of(x), v, ops.dtype_of(x))


def _where(cond, a, b):
    shape = tuple(np.broadcast_shapes(ops.shape_of(cond), ops.shape_of(a), ops.shape_of(b)))
    return ops.broadcast_to(ops.select(cond, a, b), shape)


def _nan_unless(ok, out):
    return _where(ok, out, _full_like(out, np.nan))


def _and(a, b):
    return ops.bind(P.and_p, *(ops.broadcast_to(v, tuple(np.broadcast_shapes(ops.shape_of(a), ops.shape_of(b))))
                               for v in (a, b)))


def _or(a, b):
    return ops.bind(P.or_p, *(ops.broadcast_to(v, tuple(np.broadcast_shapes(ops.shape_of(a), ops.shape_of(b))))
                              for v in (a, b)))


def _gt(x, v):
    return ops.compare(P.gt_p, x, v)


def _standard(x, loc, scale):
    x, loc, scale = _floats(x, loc, scale)
    return ops.div(ops.sub(x, loc), scale), scale


class _Dist:
    """One scipy.stats distribution: methods are added by `_method`."""

    def __init__(self, name):
        self.name = name
        self.reference = getattr(_st, name)

    def __repr__(self):
        return f"tracegrad.scipy.stats.{self.name}"


def _method(dist, name):
    def deco(impl):
        setattr(dist, name, _fallback(getattr(dist.reference, name))(impl))
        return impl
    return deco


def _exp_of(log_fn):
    return lambda *a, **k: ops.exp(log_fn(*a, **k))


# ---------------------------------------------------------------- norm

norm = _Dist("norm")


@_method(norm, "logpdf")
def _norm_logpdf(x, loc=0, scale=1):
    z, scale = _standard(x, loc, scale)
    out = ops.sub(ops.mul(ops.integer_pow(z, 2), _c(z, -0.5)), ops.add(ops.log(scale), _c(z, _LOG_2PI / 2)))
    return _nan_unless(_gt(scale, 0), out)


@_method(norm, "cdf")
def _norm_cdf(x, loc=0, scale=1):
    z, scale = _standard(x, loc, scale)
    return _nan_unless(_gt(scale, 0), sp.ndtr(z))


@_method(norm, "logcdf")
def _norm_logcdf(x, loc=0, scale=1):
    z, scale = _standard(x, loc, scale)
    return _nan_unless(_gt(scale, 0), ops.unary(P.log_ndtr_p, z))


@_method(norm, "sf")
def _norm_sf(x, loc=0, scale=1):
    z, scale = _standard(x, loc, scale)
    return _nan_unless(_gt(scale, 0), sp.ndtr(ops.neg(z)))


@_method(norm, "logsf")
def _norm_logsf(x, loc=0, scale=1):
    z, scale = _standard(x, loc, scale)
    return _nan_unless(_gt(scale, 0), ops.unary(P.log_ndtr_p, ops.neg(z)))


_method(norm, "pdf")(_exp_of(_norm_logpdf))


# ---------------------------------------------------------------- multivariate_normal

multivariate_normal = _Dist("multivariate_normal")


@_method(multivariate_normal, "logpdf")
def _mvn_logpdf(x, mean=None, cov=1, allow_singular=False):
    """Through the Cholesky factor L of cov: -|L^-1 (x - mean)|^2 / 2 - sum log diag L - d log(2 pi) / 2."""
    if allow_singular:
        raise NotImplementedError("multivariate_normal.logpdf: allow_singular=True is not supported "
                                  "on traced values (cov must be positive definite)")
    x, cov = _floats(x, cov)
    d = ops.shape_of(x)[-1] if ops.ndim_of(x) else 1
    if ops.ndim_of(x) == 0:
        x = ops.reshape(x, (1,))
    diff = x if mean is None else ops.sub(x, ops.as_dtype(mean, ops.dtype_of(x)))
    if ops.ndim_of(cov) <= 1:      # a scalar variance or the diagonal
        var = ops.broadcast_to(cov, (d,))
        maha = ops.reduce_sum(ops.div(ops.integer_pow(diff, 2), var), (ops.ndim_of(diff) - 1,))
        half_logdet = ops.mul(ops.reduce_sum(ops.log(var), (0,)), _c(var, 0.5))
    else:
        if ops.shape_of(cov) != (d, d):
            raise ValueError(f"multivariate_normal.logpdf: cov of shape {ops.shape_of(cov)} does not "
                             f"match x's last axis ({d})")
        L = _la.cholesky(cov)
        rows = ops.reshape(diff, (ops.size_of(diff) // d, d))
        # solve L y = diff^T for every row at once
        y = _la.solve(L, ops.transpose(rows, (1, 0)))
        maha = ops.reshape(ops.reduce_sum(ops.integer_pow(y, 2), (0,)), ops.shape_of(diff)[:-1])
        diag = ops.reshape(ops.slice_(ops.reshape(L, (d * d,)), (0,), (d * d,), (d + 1,)), (d,))
        half_logdet = ops.reduce_sum(ops.log(diag), (0,))
    out = ops.neg(ops.add(ops.add(ops.mul(maha, _c(maha, 0.5)), half_logdet), _c(maha, d * _LOG_2PI / 2)))
    # SciPy squeezes every length-1 axis of the result (x of shape (1, d): a scalar)
    return ops.reshape(out, tuple(n for n in ops.shape_of(out) if n != 1))


_method(multivariate_normal, "pdf")(_exp_of(_mvn_logpdf))


# ---------------------------------------------------------------- t

t = _Dist("t")


# lgamma(a + 1/2) - lgamma(a) - log(a) / 2 = sum over odd n of c_n a^-n, c_n = (2^-n - 2) B_{n+1} / (n (n+1))
_HALF_STEP_SERIES = (-1 / 8, 1 / 192, -1 / 640, 17 / 14336, -31 / 18432, 691 / 180224, -5461 / 425984,
                     929569 / 15728640)
_HALF_STEP_FROM = 12.5     # (the next term is below 1e-17 of the sum from here)


def _lgamma_half_step(a):
    """lgamma(a + 1/2) - lgamma(a) - log(a) / 2, O(1/a): from a = 12.5 its asymptotic series, exact
    to rounding with every derivative. The lgamma difference cancels (terms ~a log a), and the t
    density's derivative in df, O(1/df^2) from terms O(1/df), was 8e-4 off at df = 2.5e5 and
    entirely wrong at 1e8."""
    far = ops.compare(P.ge_p, a, _c(a, _HALF_STEP_FROM))
    a_far = ops.select(far, a, _full_like(a, _HALF_STEP_FROM))
    a_near = ops.select(far, _full_like(a, 1.0), a)
    u = ops.div(_c(a, 1), a_far)
    u2 = ops.integer_pow(u, 2)
    series = _c(a, _HALF_STEP_SERIES[-1])
    for c in reversed(_HALF_STEP_SERIES[:-1]):
        series = ops.add(_c(a, c), ops.mul(u2, series))
    direct = ops.sub(ops.sub(sp.gammaln(ops.add(a_near, _c(a, 0.5))), sp.gammaln(a_near)),
                     ops.mul(ops.log(a_near), _c(a, 0.5)))
    return ops.select(far, ops.mul(u, series), direct)


def _t_log_kernel(z2, df, hp1):
    """(df+1)/2 log1p(u), u = z^2/df. Below u = 1e-2 as z^2/2 log1p(u)/u + log1p(u)/2 with the
    Maclaurin series of log1p(u)/u (ten terms, exact to rounding with its derivatives): its
    derivative in df is O(1/df^2), which the plain product gets from terms O(1/df) (a relative
    error ~eps df); above, the product (also at u = inf)."""
    u = ops.div(z2, df)
    small = ops.compare(P.lt_p, u, _c(u, 1e-2))
    us = ops.select(small, u, _full_like(u, 0.0))
    ul = ops.select(small, _full_like(u, 1.0), u)
    series = _c(u, -1 / 11)
    for k in range(10, 0, -1):
        series = ops.add(_c(u, (-1) ** (k + 1) / k), ops.mul(us, series))
    half = _c(u, 0.5)
    near = ops.add(ops.mul(ops.mul(_where(small, z2, _full_like(u, 0.0)), half), series),
                   ops.mul(ops.unary(P.log1p_p, us), half))
    return ops.select(small, near, ops.mul(hp1, ops.unary(P.log1p_p, ul)))


@_method(t, "logpdf")
def _t_logpdf(x, df, loc=0, scale=1):
    x, df, loc, scale = _floats(x, df, loc, scale)
    z = ops.div(ops.sub(x, loc), scale)
    half = _c(z, 0.5)
    hp1 = ops.mul(ops.add(df, _c(df, 1)), half)
    # lgamma((df+1)/2) - lgamma(df/2) - log(df pi)/2, through the O(1/df) remainder
    out = ops.sub(_lgamma_half_step(ops.mul(df, half)), ops.add(_c(df, 0.5 * math.log(2 * math.pi)), ops.log(scale)))
    out = ops.sub(out, _t_log_kernel(ops.integer_pow(z, 2), df, hp1))
    return _nan_unless(_and(_gt(scale, 0), _gt(df, 0)), out)


@_method(t, "cdf")
def _t_cdf(x, df, loc=0, scale=1):
    """Through the incomplete beta function: for z^2 >= df, I_{df/(df+z^2)}(df/2, 1/2) / 2 (accurate
    in the tails); nearer the centre 1/2 +- I_{z^2/(df+z^2)}(1/2, df/2) / 2 (accurate near 0). Where
    r = z^2 (df+1) / (2 df) < 3e-4, the Taylor series 1/2 + pdf(0) (z - (df+1)/(6 df) z^3 + ...),
    exact to rounding with its first and second derivatives (there the incomplete beta's derivative
    is inf * 0 at z == 0 and where z^2 underflows, and its second derivative a difference of terms
    ~1/z that cancel to ~z)."""
    x, df, loc, scale = _floats(x, df, loc, scale)
    z = ops.div(ops.sub(x, loc), scale)
    dfp1 = ops.add(df, _c(df, 1))
    r = ops.div(ops.mul(ops.integer_pow(z, 2), dfp1), ops.mul(df, _c(df, 2)))
    is0 = _or(ops.compare(P.lt_p, r, _c(r, 3e-4)), ops.compare(P.eq_p, z, 0))
    zs = _where(is0, ops.ones_like(z), z)
    z2 = ops.integer_pow(zs, 2)
    half, one = _c(z, 0.5), _c(z, 1)
    tails = ops.compare(P.ge_p, z2, df)
    den = ops.add(df, z2)
    # two calls rather than one on selected parameters: a select on z would make df look
    # differentiated (betainc refuses a derivative in its shape parameters). Each is evaluated at
    # 1/2 where the other is used: the unused one's density can be inf there (df / den rounds to 1
    # near z = 0), and reverse mode would multiply it by the zero cotangent (NaN)
    mid = _full_like(z2, 0.5)
    far_x, near_x = _where(tails, ops.div(df, den), mid), _where(tails, mid, ops.div(z2, den))
    far = ops.mul(ops.bind(P.betainc_p, *_broadcast(ops.mul(df, half), half, far_x)), half)
    near = ops.mul(ops.bind(P.betainc_p, *_broadcast(half, ops.mul(df, half), near_x)), half)
    neg = ops.compare(P.lt_p, zs, 0)
    lower = ops.select(tails, far, ops.sub(half, near))          # cdf for z < 0
    tail = _where(neg, lower, ops.sub(one, lower))
    # pdf(z) / pdf(0) = (1 + z^2/df)^-m = sum_k a_k (z^2/df)^k, m = (df + 1)/2, integrated termwise
    # (terms fall by r: five are exact to rounding, for the second derivative too, where r < 3e-4)
    u = _where(is0, ops.div(ops.integer_pow(z, 2), df), _full_like(z, 0.0))
    m = ops.mul(dfp1, half)
    coef, series = one, one
    for k in range(1, 5):
        coef = ops.mul(coef, ops.div(ops.neg(ops.add(m, _c(m, k - 1))), _c(m, k)))
        series = ops.add(series, ops.mul(ops.div(coef, _c(m, 2 * k + 1)), ops.integer_pow(u, k)))
    at0 = ops.add(half, ops.mul(ops.mul(z, series), ops.exp(_t_logpdf(_c(z, 0.0), df))))
    out = _where(is0, at0, tail)
    return _nan_unless(_and(_gt(scale, 0), _gt(df, 0)), out)


_method(t, "pdf")(_exp_of(_t_logpdf))


# ---------------------------------------------------------------- beta

beta = _Dist("beta")


@_method(beta, "logpdf")
def _beta_logpdf(x, a, b, loc=0, scale=1):
    x, a, b, loc, scale = _floats(x, a, b, loc, scale)
    z = ops.div(ops.sub(x, loc), scale)
    # (NaN is neither inside nor outside: it reaches the formula, as in SciPy.) An edge where the
    # density is 0 (z == 0 with a > 1, z == 1 with b > 1) counts as outside: log 0 there, with
    # derivative 0 (the outer one-sided one), not (a - 1) / 0 times a zero density (NaN)
    outside = _or(_or(ops.compare(P.lt_p, z, 0), ops.compare(P.gt_p, z, 1)),
                  _or(_and(ops.compare(P.eq_p, z, 0), _gt(a, 1)), _and(ops.compare(P.eq_p, z, 1), _gt(b, 1))))
    zs = _where(outside, _full_like(z, 0.5), z)
    one = _c(z, 1)
    out = ops.add(sp.xlogy(ops.sub(a, one), zs), sp.xlog1py(ops.sub(b, one), ops.neg(zs)))
    out = ops.sub(out, ops.add(sp.betaln(a, b), ops.log(scale)))
    out = _where(outside, _full_like(out, -np.inf), out)
    return _nan_unless(_and(_and(_gt(a, 0), _gt(b, 0)), _gt(scale, 0)), out)


@_method(beta, "cdf")
def _beta_cdf(x, a, b, loc=0, scale=1):
    x, a, b, loc, scale = _floats(x, a, b, loc, scale)
    z = ops.div(ops.sub(x, loc), scale)
    # outside the support, edges included, the cdf is the constant 0 or 1 (its derivatives 0: the
    # outer one-sided ones at an edge): betainc is evaluated at a point inside instead, not at the
    # edge, whose density z^(a-1) is inf for a < 1 and whose second derivative is 0 * inf there
    below, above = ops.compare(P.le_p, z, 0), ops.compare(P.ge_p, z, 1)
    zs = ops.select(ops.bind(P.or_p, below, above), _full_like(z, 0.5), z)
    out = ops.bind(P.betainc_p, *_broadcast(a, b, zs))
    out = _where(below, _full_like(out, 0.0), _where(above, _full_like(out, 1.0), out))
    return _nan_unless(_and(_and(_gt(a, 0), _gt(b, 0)), _gt(scale, 0)), out)


_method(beta, "pdf")(_exp_of(_beta_logpdf))


def _broadcast(*xs):
    shape = tuple(np.broadcast_shapes(*(ops.shape_of(x) for x in xs)))
    return [ops.broadcast_to(x, shape) for x in xs]


# ---------------------------------------------------------------- gamma

gamma = _Dist("gamma")


@_method(gamma, "logpdf")
def _gamma_logpdf(x, a, loc=0, scale=1):
    x, a, loc, scale = _floats(x, a, loc, scale)
    z = ops.div(ops.sub(x, loc), scale)
    # z == 0 with a > 1 (density 0) counts as outside, as in beta.logpdf
    outside = _or(ops.compare(P.lt_p, z, 0), _and(ops.compare(P.eq_p, z, 0), _gt(a, 1)))
    zs = _where(outside, ops.ones_like(z), z)
    out = ops.sub(ops.sub(sp.xlogy(ops.sub(a, _c(a, 1)), zs), zs),
                  ops.add(sp.gammaln(a), ops.log(scale)))
    out = _where(outside, _full_like(out, -np.inf), out)
    return _nan_unless(_and(_gt(a, 0), _gt(scale, 0)), out)


@_method(gamma, "cdf")
def _gamma_cdf(x, a, loc=0, scale=1):
    x, a, loc, scale = _floats(x, a, loc, scale)
    z = ops.div(ops.sub(x, loc), scale)
    # below the support, 0 included, the cdf is the constant 0 (derivatives 0: the left one-sided
    # ones at 0): gammainc is evaluated at a point inside instead, not at 0, whose density z^(a-1)
    # is inf for a < 1 and whose second derivative is 0 * inf there
    below = ops.compare(P.le_p, z, 0)
    out = ops.bind(P.gammainc_p, *_broadcast(a, ops.select(below, ops.ones_like(z), z)))
    out = _where(below, _full_like(out, 0.0), out)
    return _nan_unless(_and(_gt(a, 0), _gt(scale, 0)), out)


_method(gamma, "pdf")(_exp_of(_gamma_logpdf))


# ---------------------------------------------------------------- poisson

poisson = _Dist("poisson")


def _whole(k):
    return ops.compare(P.eq_p, k, ops.unary(P.floor_p, k))


@_method(poisson, "logpmf")
def _poisson_logpmf(k, mu, loc=0):
    k, mu, loc = _floats(k, mu, loc)
    k = ops.sub(k, loc)
    ok = _and(_whole(k), ops.compare(P.ge_p, k, 0))
    ks = ops.select(ok, k, ops.zeros_like(k))
    out = ops.sub(ops.sub(sp.xlogy(ks, mu), sp.gammaln(ops.add(ks, _c(ks, 1)))), mu)
    out = _where(ok, out, _where(ops.unary(P.isnan_p, k), k, _full_like(out, -np.inf)))
    return _nan_unless(ops.compare(P.ge_p, mu, 0), out)


@_method(poisson, "cdf")
def _poisson_cdf(k, mu, loc=0):
    """Q(floor(k) + 1, mu): its derivative in mu is -pmf(floor(k), mu)."""
    k, mu, loc = _floats(k, mu, loc)
    k = ops.unary(P.floor_p, ops.sub(k, loc))
    ok = ops.compare(P.ge_p, k, 0)
    ks = ops.select(ok, k, ops.zeros_like(k))
    out = ops.bind(P.gammaincc_p, *_broadcast(ops.add(ks, _c(ks, 1)), mu))
    out = _where(ok, out, _where(ops.unary(P.isnan_p, k), k, _full_like(out, 0.0)))
    return _nan_unless(ops.compare(P.ge_p, mu, 0), out)


_method(poisson, "pmf")(_exp_of(_poisson_logpmf))


# ---------------------------------------------------------------- bernoulli

bernoulli = _Dist("bernoulli")


@_method(bernoulli, "logpmf")
def _bernoulli_logpmf(k, p, loc=0):
    k, p, loc = _floats(k, p, loc)
    k = ops.sub(k, loc)
    ok = ops.bind(P.or_p, *_broadcast(ops.compare(P.eq_p, k, 0), ops.compare(P.eq_p, k, 1)))
    ks = ops.select(ok, k, ops.zeros_like(k))
    # (outside the support p is replaced too: log(1 - p) at p == 1 would meet a zero cotangent)
    ps = _where(ok, p, _full_like(p, 0.5))
    out = ops.add(sp.xlogy(ks, ps), sp.xlog1py(ops.sub(_c(ks, 1), ks), ops.neg(ps)))
    out = _where(ok, out, _where(ops.unary(P.isnan_p, k), k, _full_like(out, -np.inf)))
    return _nan_unless(_and(ops.compare(P.ge_p, p, 0), ops.compare(P.le_p, p, 1)), out)


@_method(bernoulli, "cdf")
def _bernoulli_cdf(k, p, loc=0):
    k, p, loc = _floats(k, p, loc)
    k = ops.sub(k, loc)
    k, p = _broadcast(k, p)
    out = _where(ops.compare(P.lt_p, k, 0), ops.zeros_like(p),
                 _where(ops.compare(P.lt_p, k, 1), ops.sub(_c(p, 1), p), ops.ones_like(p)))
    out = _where(ops.unary(P.isnan_p, k), k, out)
    return _nan_unless(_and(ops.compare(P.ge_p, p, 0), ops.compare(P.le_p, p, 1)), out)


@_method(bernoulli, "pmf")
def _bernoulli_pmf(k, p, loc=0):
    """p at k == 1, 1 - p at k == 0, else 0: directly, not exp(logpmf), whose second derivative
    near p = 1 is a difference of terms ~1/(1 - p)^2 (rounding ~eps/(1 - p) where it is 0)."""
    k, p, loc = _floats(k, p, loc)
    k = ops.sub(k, loc)
    k, p = _broadcast(k, p)
    out = _where(ops.compare(P.eq_p, k, 1), p,
                 _where(ops.compare(P.eq_p, k, 0), ops.sub(_c(p, 1), p), ops.zeros_like(p)))
    out = _where(ops.unary(P.isnan_p, k), k, out)
    return _nan_unless(_and(ops.compare(P.ge_p, p, 0), ops.compare(P.le_p, p, 1)), out)


# ---------------------------------------------------------------- dirichlet

dirichlet = _Dist("dirichlet")


@_method(dirichlet, "logpdf")
def _dirichlet_logpdf(x, alpha):
    """sum_i (alpha_i - 1) log x_i - (sum_i gammaln(alpha_i) - gammaln(sum alpha)); x's first axis
    holds the components (k of them, or k - 1 with the last one 1 - sum), as in SciPy."""
    x, alpha = _floats(x, alpha)
    if ops.ndim_of(alpha) != 1:
        raise ValueError("dirichlet.logpdf: alpha must be one-dimensional")
    k = ops.shape_of(alpha)[0]
    n = ops.shape_of(x)[0] if ops.ndim_of(x) else 0
    if n == k - 1:
        last = ops.sub(_c(x, 1), ops.reduce_sum(x, (0,)))
        x = ops.concatenate([x, ops.reshape(last, (1,) + tuple(ops.shape_of(last)))], 0)
    elif n != k:
        raise ValueError(f"dirichlet.logpdf: x's first axis has {n} components; alpha has {k}")
    a = ops.reshape(alpha, (k,) + (1,) * (ops.ndim_of(x) - 1))
    terms = ops.reduce_sum(sp.xlogy(ops.sub(a, _c(a, 1)), x), (0,))
    log_b = ops.sub(ops.reduce_sum(sp.gammaln(alpha), (0,)), sp.gammaln(ops.reduce_sum(alpha, (0,))))
    out = ops.sub(terms, log_b)
    return ops.reshape(out, tuple(n for n in ops.shape_of(out) if n != 1))   # (squeezed, as SciPy)


_method(dirichlet, "pdf")(_exp_of(_dirichlet_logpdf))


__all__ = ["norm", "multivariate_normal", "t", "beta", "gamma", "poisson", "bernoulli", "dirichlet"]
