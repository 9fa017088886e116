"""tracegrad.scipy.stats: every method against scipy.stats (inside and outside the support,
loc/scale, broadcasting, invalid parameters) and its derivatives in x and in the parameters."""
import numpy as np
import pytest
import scipy.stats as st

import tracegrad as tg
from tracegrad.scipy import stats as ts
from _opcheck import agree, grads




@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(all="ignore"):
        yield


rng = np.random.default_rng(3)
X = np.array([-2.5, -0.7, 0.0, 0.3, 1.9, 7.0])

# distribution, method, args (x first), keyword args, and a point set for derivatives
CASES = [
    ("norm", m, (X,), {}, None) for m in ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")
] + [
    ("norm", "logpdf", (X, 0.4, 2.0), {}, None),
    ("norm", "cdf", (X[:, None], np.array([0.0, 1.0]), np.array([0.5, 3.0])), {}, None),
    ("norm", "logcdf", (np.array([-40.0, -8.0, 0.0, 8.0]),), {"loc": 0.5}, None),
    ("norm", "logpdf", (X,), {"scale": -1.0}, "none"),
    ("t", "logpdf", (X, 3.5), {"loc": 0.2, "scale": 1.3}, None),
    ("t", "pdf", (X, np.array([[1.0], [4.0]])), {}, None),
    ("t", "cdf", (X, 2.5), {"loc": 0.3}, None),
    ("t", "cdf", (np.array([-1e3, -30.0, 0.0, 1e-8, 30.0]), 4.0), {}, "none"),
    ("beta", "logpdf", (np.array([-0.1, 0.0, 0.2, 0.5, 0.9, 1.0, 1.3]), 2.5, 1.5), {}, "inside"),
    ("beta", "pdf", (np.array([0.0, 0.2, 1.0]), 1.0, 2.0), {}, "none"),
    ("beta", "cdf", (np.array([-0.1, 0.2, 0.5, 0.9, 1.3]), 2.5, 1.5), {"loc": 0.05, "scale": 0.9}, "inside"),
    ("gamma", "logpdf", (X, 2.5), {"loc": -1.0, "scale": 1.5}, "inside"),
    ("gamma", "pdf", (np.array([0.0, 1.0, 2.0]), 1.0), {}, "none"),
    ("gamma", "cdf", (X, 3.0), {"scale": 2.0}, "inside"),
    ("poisson", "logpmf", (np.array([-1.0, 0.0, 1.0, 2.5, 3.0, 12.0]), 2.5), {}, "mu"),
    ("poisson", "pmf", (np.array([0.0, 1.0, 4.0]), np.array([[0.5], [3.0]])), {"loc": 1}, "mu"),
    ("poisson", "cdf", (np.array([-1.0, 0.0, 1.5, 3.0, 12.0]), 2.5), {}, "mu"),
    ("bernoulli", "logpmf", (np.array([-1.0, 0.0, 1.0, 0.5, 2.0]), 0.3), {}, "p"),
    ("bernoulli", "pmf", (np.array([0.0, 1.0]), np.array([0.1, 0.8])), {}, "p"),
    ("bernoulli", "cdf", (np.array([-0.5, 0.0, 0.5, 1.0, 2.0]), 0.3), {}, "p"),
]


def _method(mod, name, meth):
    return getattr(getattr(mod, name), meth)


@pytest.mark.parametrize("name,meth,args,kw,_", CASES, ids=[f"{c[0]}.{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_matches_scipy_stats(name, meth, args, kw, _):
    f = lambda *a: _method(ts, name, meth)(*a, **kw)
    agree(f, *args, reference=lambda *a: _method(st, name, meth)(*a, **kw), rtol=5e-14, atol=1e-300)
    f32 = [np.asarray(a, np.float32) if np.ndim(a) else a for a in args]
    want = _method(st, name, meth)(*f32, **kw)
    got = tg.jit(f)(*f32)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-30)


def _interior(name, args, which):
    """Points where the method is smooth in every argument (inside the support)."""
    if name in ("poisson", "bernoulli"):
        return None
    x = np.asarray(args[0], float)
    if which == "inside":
        x = x[(x > 0.05) & (x < 0.95)] if name == "beta" else x[(x > 0.5)]
    return x


@pytest.mark.parametrize("name,meth,args,kw,which", [c for c in CASES if c[4] != "none"],
                         ids=[f"{c[0]}.{c[1]}-{i}" for i, c in enumerate(CASES) if c[4] != "none"])
def test_derivatives(name, meth, args, kw, which):
    params = [np.asarray(a, float) for a in args[1:]]
    if name in ("poisson", "bernoulli"):
        # discrete: derivatives in the parameter at fixed k
        k = np.asarray(args[0], float)
        if meth != "cdf":   # at k outside the support the log pmf is -inf for every parameter
            k = k[(k >= 0) & (k == np.floor(k)) & ((k <= 1) | (name == "poisson"))]
        grads(lambda p: _method(ts, name, meth)(k, p, **kw), params[0], order=2)
        return
    x = _interior(name, args, which)
    shape_params = meth == "cdf" and name in ("t", "beta", "gamma")
    if shape_params:
        grads(lambda x: _method(ts, name, meth)(x, *params, **kw), x, order=2)
    else:
        grads(lambda x, *p: _method(ts, name, meth)(x, *p, **kw), x, *params, order=2)
    floats = {k: float(v) for k, v in kw.items()}
    if floats:   # and in loc / scale
        keys = sorted(floats)
        grads(lambda *v: _method(ts, name, meth)(x, *params, **dict(zip(keys, v))),
              *[np.asarray(floats[k]) for k in keys], order=2)


def test_shape_parameter_of_a_cdf_is_not_silently_constant():
    with pytest.raises(NotImplementedError, match="shape parameter"):
        tg.grad(lambda df: ts.t.cdf(1.5, df))(np.float64(3.0))
    with pytest.raises(NotImplementedError, match="shape parameter"):
        tg.grad(lambda a: ts.gamma.cdf(1.5, a))(np.float64(3.0))


def test_t_cdf_at_its_centre():
    # at z == 0 the incomplete beta's derivative is inf * 0: the centre branch gives pdf(0)
    g = tg.grad(lambda x: ts.t.cdf(x, 3.0, loc=1.0))(np.float64(1.0))
    np.testing.assert_allclose(g, st.t.pdf(0.0, 3.0), rtol=1e-14)
    h = tg.grad(tg.grad(lambda x: ts.t.cdf(x, 3.0)))(np.float64(0.0))
    assert h == 0.0


SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 0.7]])


@pytest.mark.parametrize("x,mean,cov", [
    (rng.standard_normal((4, 3)), np.array([0.1, -0.2, 0.3]), SPD),
    (rng.standard_normal(3), None, SPD),
    (rng.standard_normal((2, 5, 3)), np.zeros(3), SPD),
    (rng.standard_normal((4, 3)), np.ones(3), 2.0),
    (rng.standard_normal((4, 3)), np.ones(3), np.array([0.5, 1.0, 2.0])),
], ids=["batch", "one-point", "2-d-batch", "scalar-cov", "diag-cov"])
def test_multivariate_normal(x, mean, cov):
    kw = {} if mean is None else {"mean": mean}
    for meth in ("logpdf", "pdf"):
        agree(lambda x, cov: getattr(ts.multivariate_normal, meth)(x, cov=cov, **kw), x, cov,
              reference=lambda x, cov: getattr(st.multivariate_normal, meth)(x, cov=cov, **kw),
              rtol=1e-13, atol=1e-300)
    grads(lambda x: ts.multivariate_normal.logpdf(x, cov=cov, **kw), x, order=2)
    if np.ndim(cov) == 2:   # in the covariance, through the Cholesky factor (symmetric directions)
        grads(lambda c: ts.multivariate_normal.logpdf(x, cov=(c + c.T) / 2, **kw), cov, order=2)
    with pytest.raises(NotImplementedError, match="allow_singular"):
        tg.jit(lambda x: ts.multivariate_normal.logpdf(x, cov=cov, allow_singular=True))(x)


def test_dirichlet():
    alpha = np.array([1.5, 2.0, 3.0])
    x = rng.dirichlet(alpha, 4).T                    # (k, n): components first, as SciPy
    for meth in ("logpdf", "pdf"):
        agree(lambda x, a: getattr(ts.dirichlet, meth)(x, a), x, alpha,
              reference=lambda x, a: getattr(st.dirichlet, meth)(x, a), rtol=1e-13)
    agree(lambda x, a: ts.dirichlet.logpdf(x, a), x[:2], alpha,
          reference=lambda x, a: st.dirichlet.logpdf(x, a), rtol=1e-13)    # k - 1 components
    agree(lambda x, a: ts.dirichlet.logpdf(x, a), x[:, 0], alpha,
          reference=lambda x, a: st.dirichlet.logpdf(x, a), rtol=1e-13)
    grads(lambda x, a: ts.dirichlet.logpdf(x, a), x[:2], alpha, order=2)
    with pytest.raises(ValueError, match="dirichlet.logpdf: x's first axis has 1 components"):
        tg.jit(lambda x: ts.dirichlet.logpdf(x, alpha))(x[:1])
