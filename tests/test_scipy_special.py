"""scipy.special on traced values (plain `scipy.special.X(tracer)` and tracegrad.scipy.special):
values against SciPy on several dtypes, broadcasting and edge values, then first and second
derivatives against central finite differences. Interpreter and eager modes; the compiled
counterparts are in test_scipy_compiled.py."""
import numpy as np
import pytest
import scipy.special as sc

import tracegrad as tg
import tracegrad.scipy.special as tss
from _opcheck import agree, grads




@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(all="ignore"):
        yield


rng = np.random.default_rng(7)
POS = rng.uniform(0.1, 6.0, 7)
ANY = rng.uniform(-4.0, 4.0, 7)
UNIT = rng.uniform(-0.95, 0.95, 7)
PROB = rng.uniform(0.02, 0.98, 7)

# name, SciPy function, edge values (poles, zero, signed zero, large, infinities), interior points
UNARY = [
    ("gammaln", sc.gammaln, [0.0, -0.0, -1.0, -2.0, -2.5, 1e-300, 1e10, 1e300, np.inf, -np.inf, np.nan], POS),
    ("digamma", sc.digamma, [0.0, -0.0, -1.0, -3.0, -2.5, 1e-300, 1e15, np.inf, np.nan], POS),
    ("gamma", sc.gamma, [0.0, -0.0, -1.0, -2.5, 171.5, 172.0, np.inf, -np.inf], POS),
    ("erf", sc.erf, [0.0, -0.0, 6.0, -30.0, np.inf, -np.inf], ANY),
    ("erfc", sc.erfc, [0.0, 5.0, 10.0, 26.0, 27.5, 30.0, -30.0, np.inf, -np.inf], ANY),
    ("erfinv", sc.erfinv, [0.0, -1.0, 1.0, 1.5, 1 - 1e-16, -0.999999, 1e-300], UNIT),
    ("log_ndtr", sc.log_ndtr, [0.0, -10.0, -40.0, -1e5, 10.0, 40.0, np.inf, -np.inf], ANY),
    ("ndtr", sc.ndtr, [0.0, -10.0, -38.0, 10.0, np.inf, -np.inf], ANY),
    ("expit", sc.expit, [0.0, -40.0, 40.0, -800.0, 800.0, 1e-300, np.inf, -np.inf], ANY),
    ("logit", sc.logit, [0.0, 1.0, 0.5, 0.5 + 1e-12, 1e-300, 1 - 1e-16, 2.0, -1.0], PROB),
    ("i0", sc.i0, [0.0, -0.0, 1e-10, 700.0, -700.0, 1e-300], ANY),
    ("i1", sc.i1, [0.0, -0.0, 1e-10, -1e-10, 700.0, -700.0, 1e-300], ANY),
    ("i0e", sc.i0e, [0.0, 1e-10, 1e5, -1e5, 1e300], ANY),
    ("i1e", sc.i1e, [0.0, -1e-10, 1e5, -1e5, 1e300], ANY),
    ("entr", sc.entr, [0.0, 1e-300, 1.0, -1.0, np.inf], POS),
]


@pytest.mark.parametrize("name,fn,edges,inner", UNARY, ids=[u[0] for u in UNARY])
def test_unary_values_match_scipy(name, fn, edges, inner):
    x = np.concatenate([np.asarray(edges), inner])
    f = lambda x: fn(x)
    agree(f, x, reference=fn, rtol=2e-15, atol=0)
    agree(f, x.astype(np.float32))                       # float32 in, float32 out
    agree(f, np.arange(-3, 4))                           # integers compute in float64
    agree(f, np.float64(inner[0]))                       # 0-d


@pytest.mark.parametrize("name,fn,edges,inner", UNARY, ids=[u[0] for u in UNARY])
def test_unary_derivatives(name, fn, edges, inner):
    grads(lambda x: fn(x), inner, order=2)


def test_the_tracegrad_spelling_is_the_same_function():
    for name in ("gammaln", "digamma", "psi", "erfinv", "expit", "logit", "i0e", "xlogy"):
        fn = getattr(sc, name)
        args = (PROB,) * fn.nin
        np.testing.assert_array_equal(getattr(tss, name)(*args), fn(*args))   # plain arrays: SciPy
        np.testing.assert_array_equal(tg.jit(getattr(tss, name))(*args), tg.jit(fn)(*args))


def test_bessel_derivative_identities_near_zero():
    # i1'(x) = i0(x) - i1(x)/x: finite (1/2) at 0, and the series branch joins the direct one
    for x in (0.0, 1e-3, -1e-2, 0.0099999, 0.0100001):
        d = tg.grad(sc.i1)(np.float64(x))
        h = 1e-6
        np.testing.assert_allclose(d, (sc.i1(x + h) - sc.i1(x - h)) / (2 * h), rtol=1e-8)
    assert tg.grad(tg.grad(sc.i1))(np.float64(0.0)) == 0.0
    np.testing.assert_allclose(tg.grad(tg.grad(tg.grad(sc.i1)))(np.float64(0.0)), 3 / 8, rtol=1e-12)
    np.testing.assert_allclose(tg.grad(sc.i1e)(np.float64(0.0)), 0.5, rtol=1e-12)


def test_expit_gradient_is_finite_far_out():
    x = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    g = tg.grad(lambda x: np.sum(sc.expit(x)))(x)
    np.testing.assert_allclose(g, sc.expit(x) * sc.expit(-x), rtol=1e-12, atol=0)
    g2 = tg.grad(lambda x: np.sum(tg.grad(lambda x: np.sum(sc.expit(x)))(x)))(x)
    assert np.isfinite(g2).all()


BINARY = [
    ("xlogy", sc.xlogy, PROB * 3, POS),
    ("xlog1py", sc.xlog1py, PROB * 3, PROB - 0.5),
    ("betaln", sc.betaln, POS, POS[::-1]),
]


@pytest.mark.parametrize("name,fn,x,y", BINARY, ids=[b[0] for b in BINARY])
def test_binary_values_broadcasting_and_derivatives(name, fn, x, y):
    f = lambda x, y: fn(x, y)
    agree(f, x, y, reference=fn, rtol=1e-14, atol=1e-300)
    agree(f, x[:, None], y[None, :4], rtol=1e-14, atol=1e-300)
    agree(f, x.astype(np.float32), 2.0)
    grads(f, x, y, order=2)


def test_xlogy_at_zero_is_zero_with_jax_derivatives():
    x = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    y = np.array([0.0, np.inf, -1.0, 3.0, np.nan, 0.0])
    agree(lambda x, y: sc.xlogy(x, y), x, y, reference=sc.xlogy, rtol=0, atol=0)
    agree(lambda x, y: sc.xlog1py(x, y), x, y - 1, reference=sc.xlog1py, rtol=0, atol=0)
    gx, gy = tg.grad(lambda x, y: np.sum(sc.xlogy(x, y)), argnums=(0, 1))(x[3:4], y[3:4])
    np.testing.assert_allclose(gx, np.log(3.0), rtol=1e-15)      # d/dx at x == 0 is log(y)
    assert gy[0] == 0.0                                          # d/dy is x / y = 0
    gx0, gy0 = tg.grad(lambda x, y: np.sum(sc.xlogy(x, y)), argnums=(0, 1))(x[:1], y[:1])
    assert np.isfinite(gy0).all() and gy0[0] == 0.0


def test_polygamma():
    x = np.concatenate([POS, [-2.5, -0.5, 0.0, 1e-300, 50.0]])
    for n in (0, 1, 2, 3, 6):
        agree(lambda x: tss.polygamma(n, x), x, reference=lambda x: sc.polygamma(n, x), rtol=1e-15)
        grads(lambda x: tss.polygamma(n, x), POS, order=2, rtol=1e-5)
    n = np.array([0, 1, 2, 3, 4, 1, 2])
    agree(lambda x: tss.polygamma(n, x), POS, reference=lambda x: sc.polygamma(n, x), rtol=1e-15)
    # (SciPy computes digamma of float32 x in float32, then promotes; we compute in float64)
    agree(lambda n, x: tss.polygamma(n, x), n.astype(float), POS.astype(np.float32), rtol=1e-6)
    # non-whole or negative n: NaN (SciPy's polygamma(0.5, x) is NaN as well)
    out = tg.jit(lambda x: tss.polygamma(np.array([0.5, -1.0]), x))(POS[:2])
    assert np.isnan(out).all()


def test_digamma_is_the_derivative_of_gammaln_to_third_order():
    f = lambda x: np.sum(sc.gammaln(x))
    for k, want in enumerate((sc.digamma(POS), sc.polygamma(1, POS), sc.polygamma(2, POS))):
        g = f
        for _ in range(k):
            g = (lambda h: (lambda x: np.sum(tg.grad(h)(x))))(g)
        np.testing.assert_allclose(tg.grad(g)(POS), want, rtol=1e-13)


def test_incomplete_gamma_and_beta():
    a, b, x = POS[:5], POS[2:], PROB[:5]
    agree(lambda a, x: sc.gammainc(a, x * 4), a, x, reference=lambda a, x: sc.gammainc(a, x * 4),
          rtol=1e-15)
    agree(lambda a, x: sc.gammaincc(a, x), a[:, None], x[None], rtol=1e-15)
    agree(lambda a, b, x: sc.betainc(a, b, x), a, b, x, reference=sc.betainc, rtol=1e-15)
    grads(lambda x: sc.gammainc(a, x * 4), x, order=2)
    grads(lambda x: sc.gammaincc(a, x), x, order=2)
    grads(lambda x: sc.betainc(a, b, x), x, order=2)
    with pytest.raises(NotImplementedError, match="gammainc: the derivative with respect to the shape parameter a"):
        tg.grad(lambda a: np.sum(sc.gammainc(a, x)))(a)
    with pytest.raises(NotImplementedError, match="betainc: .* shape parameter b"):
        tg.grad(lambda b: np.sum(sc.betainc(a, b, x)))(b)


def test_logsumexp_softmax():
    x = rng.standard_normal((3, 4)) * 300
    for kw in ({}, {"axis": 1}, {"axis": 0, "keepdims": True}, {"b": np.abs(x) / 300}):
        agree(lambda x: tss.logsumexp(x, **kw), x, reference=lambda x: sc.logsumexp(x, **kw),
              rtol=1e-14)
    for axis in (None, 0, 1):
        agree(lambda x: tss.softmax(x, axis=axis), x, reference=lambda x: sc.softmax(x, axis=axis),
              rtol=1e-12, atol=1e-300)
        agree(lambda x: tss.log_softmax(x, axis=axis), x,
              reference=lambda x: sc.log_softmax(x, axis=axis), rtol=1e-12)
    small = x / 300
    grads(lambda x: tss.logsumexp(x, axis=1), small, order=2)
    grads(lambda x: tss.softmax(x, axis=0), small, order=2)


def test_scipy_python_functions_that_convert_their_argument_name_the_alternative():
    # scipy.special.logsumexp calls np.asarray: that is a TracerError pointing at the way out
    with pytest.raises(tg.TracerError, match="asarray"):
        tg.jit(lambda x: sc.logsumexp(x))(POS)


def test_unsupported_ufunc_keyword_names_the_function():
    with pytest.raises(NotImplementedError, match="gammaln keyword"):
        tg.jit(lambda x: sc.gammaln(x, dtype=np.float32))(POS)
