"""The SciPy functions compiled with Numba: values (edge values included) and first and second
derivatives agree with eager mode and with SciPy. Each test is one kernel (Numba compile time)."""
import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sc
import scipy.stats as st

import tracegrad as tg
import tracegrad.scipy.special as tss
from tracegrad.scipy import integrate as ti
from tracegrad.scipy import signal as tsig
from tracegrad.scipy import stats as ts

pytestmark = pytest.mark.compiled

EDGE = np.array([0.0, -0.0, -1.0, -2.5, 1e-300, 0.3, 1.7, 4.5, 30.0, 700.0, 1e10, np.inf, -np.inf, np.nan])
UNIT = np.array([-1.0, -0.999999, -0.3, 0.0, 0.2, 0.9, 1.0, 1.5])
PROB = np.array([0.0, 1e-300, 0.1, 0.5, 0.5 + 1e-12, 0.9, 1.0])
POS = np.array([0.2, 0.9, 1.6, 3.3, 7.5])

UNARY = ("gammaln", "digamma", "gamma", "erf", "erfc", "log_ndtr", "ndtr", "expit", "i0", "i1",
         "i0e", "i1e", "entr")

# primitives whose compiled code calls the very C function the impl calls: bit-identical
SAME_C_CODE = {"gammaln", "digamma", "gamma", "erf", "erfc", "log_ndtr", "i0", "i1", "i0e", "i1e"}


def _all_values(x, u, p, pos):
    out = [getattr(sc, name)(x) for name in UNARY]
    out += [sc.erfinv(u), sc.logit(p), sc.xlogy(p, x[:7]), sc.xlog1py(p[:, None], x[None]),
            sc.betaln(pos, pos[::-1]), sc.gammainc(pos, pos[::-1]), sc.gammaincc(pos, p[2:]),
            sc.betainc(pos, pos[::-1], p[1:6])]
    out += [tss.polygamma(n, x) for n in (0, 1, 3)]
    out.append(tss.polygamma(np.array([0.0, 1.0, 2.0, 5.0, 1.0]), pos))
    out += [tss.logsumexp(x[5:10]), tss.softmax(pos)]
    out += [ts.norm.logpdf(x, 0.5, 2.0), ts.norm.logcdf(x), ts.t.cdf(x, 3.0), ts.t.logpdf(x, 2.5),
            ts.beta.logpdf(p, 2.0, 3.0), ts.beta.cdf(p, 2.0, 3.0), ts.gamma.logpdf(x, 2.0),
            ts.gamma.cdf(x, 2.0, scale=2.0), ts.poisson.logpmf(np.floor(pos), 2.0),
            ts.poisson.cdf(pos, 2.0), ts.bernoulli.logpmf(np.array([0.0, 1.0, 2.0]), 0.3),
            ts.multivariate_normal.logpdf(np.stack([pos, pos[::-1]], 1), np.zeros(2),
                                          np.array([[2.0, 0.3], [0.3, 1.0]])),
            ts.dirichlet.logpdf(np.array([0.2, 0.5, 0.3]), np.array([1.5, 2.0, 3.0]))]
    out.append(tsig.convolve(pos, p[1:4], "same"))
    return tuple(out)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_values_compiled_eager_and_scipy_agree(dt):
    args = [a.astype(dt) for a in (EDGE, UNIT, PROB, POS)]
    with np.errstate(all="ignore"):
        compiled = tg.jit(_all_values)(*args)
        with tg.eager():
            eager = tg.jit(_all_values)(*args)
        want = _all_values(*args)       # untraced: SciPy itself
    # (float32: SciPy computes some in float32 itself, e.g. betainc; we compute in float64 and round)
    tol = dict(rtol=1e-13, atol=1e-300) if dt == np.float64 else dict(rtol=1e-5, atol=1e-30)
    for k, (c, e, w) in enumerate(zip(compiled, eager, want)):
        assert c.dtype == e.dtype, f"output {k}"
        if k < len(UNARY) and UNARY[k] in SAME_C_CODE:
            np.testing.assert_array_equal(c, e, err_msg=f"{UNARY[k]}: compiled vs eager")
        else:
            np.testing.assert_allclose(c, e, err_msg=f"output {k}", **tol)
        np.testing.assert_allclose(c, np.asarray(w, c.dtype), err_msg=f"output {k} vs SciPy", **tol)


def _loss(x, p):
    parts = [sc.gammaln(x), sc.digamma(x), sc.gamma(x / 2), sc.erfc(x - 1), sc.erfinv(p - 0.5),
             sc.log_ndtr(-x), sc.expit(x - 2), sc.logit(p), sc.xlogy(p, x[:7]), sc.i0(x), sc.i1(x - 1),
             sc.i0e(x), sc.i1e(x - 1), tss.polygamma(2, x), sc.gammainc(2.0, x), sc.betainc(2.0, 3.0, p),
             ts.t.cdf(x - 1, 3.0), ts.norm.logpdf(x, p, 2.0)]
    return sum(np.sum(q * (i + 1) / 10) for i, q in enumerate(parts))


def test_first_and_second_derivatives_compiled_match_eager():
    x, p, v = np.array([0.4, 1.3, 2.2, 3.7]), np.array([0.15, 0.4, 0.55, 0.8]), np.array([1.0, -0.5, 0.3, 2.0])

    def derivs(x, p):
        g = tg.grad(_loss, argnums=(0, 1))(x, p)
        hv = tg.grad(lambda x: np.sum(tg.grad(_loss)(x, p) * v))(x)
        return g[0], g[1], hv

    compiled = tg.jit(derivs)(x, p)
    with tg.eager():
        eager = tg.jit(derivs)(x, p)
    for c, e in zip(compiled, eager):
        np.testing.assert_allclose(c, e, rtol=1e-12, atol=1e-14)
    h = 1e-5      # and against finite differences of the first derivative
    fd = (tg.grad(_loss)(x + h * v, p) - tg.grad(_loss)(x - h * v, p)) / (2 * h)
    np.testing.assert_allclose(compiled[2], fd, rtol=1e-6)


def test_odeint_compiled_value_and_adjoint_gradient():
    def f(y, t, k):
        return np.stack([y[1], -k * np.sin(y[0])])

    y0, ts_, k = np.array([1.0, 0.0]), np.linspace(0.0, 3.0, 4), np.array(1.5)

    def run(y0, ts_, k):
        ys = ti.odeint(f, y0, ts_, (k,), rtol=1e-10, atol=1e-10)
        g = tg.grad(lambda y0, k: np.sum(ti.odeint(f, y0, ts_, (k,), rtol=1e-10, atol=1e-10)[-1] ** 2),
                    argnums=(0, 1))(y0, k)
        return ys, g[0], g[1]

    ys, gy0, gk = tg.jit(run)(y0, ts_, k)
    np.testing.assert_allclose(ys, si.odeint(f, y0, ts_, (k,), rtol=1e-12, atol=1e-12), rtol=1e-8, atol=1e-9)
    ref = lambda y0, k: np.sum(si.odeint(f, y0, ts_, (k,), rtol=1e-12, atol=1e-12)[-1] ** 2)
    e = 1e-4     # (LSODA's own error, ~1e-11 here, must stay small next to 2 e f')
    fd_y0 = [(ref(y0 + e * d, k) - ref(y0 - e * d, k)) / (2 * e) for d in np.eye(2)]
    np.testing.assert_allclose(gy0, fd_y0, rtol=1e-5)
    np.testing.assert_allclose(gk, (ref(y0, k + e) - ref(y0, k - e)) / (2 * e), rtol=1e-5)
