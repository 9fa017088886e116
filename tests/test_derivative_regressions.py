"""Regressions of the issue "zero silent wrong derivatives: higher orders, special points, empty
arrays": each once in eager mode and traced on the interpreter tier, and all together in one
compiled (Numba) kernel. Expected derivatives are central finite differences of NumPy itself in
float64 (or exact closed forms), never another library's output.

1. hypot's second derivative at |x| == |y| (was 0: max/min split 1/2 : 1/2 through the tie);
2. det of singular matrices under grad (was LinAlgError; the derivative is the adjugate), and
   slogdet there (-inf, NaN derivative, no error);
3. zero-size arrays (einsum with an empty batch raised; matmul with a zero inner dimension,
   reductions over empty axes, empty parts of concatenate/split, empty index arrays);
4. eigh(UPLO="U"): NumPy's eigenvectors (LAPACK's signs for the upper triangle), so derivatives
   agree with finite differences of NumPy along any direction;
5. isclose / allclose trace (a bool result; `if np.allclose(...)` in eager mode), and grad of a
   bool output is the usual TypeError.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sc
import scipy.stats as st

import tracegrad as tg
import tracegrad.scipy.integrate as ti
import tracegrad.scipy.special as tss
import tracegrad.scipy.stats as ts

MODES = ("jit", "eager")
rng = np.random.default_rng(11)


def _mode(mode):
    return tg.eager() if mode == "eager" else contextlib.nullcontext()


def fd1(f, x, v, h=1e-4):
    """Five-point central difference of f (NumPy) at x along v (error O(h^4))."""
    g = lambda k: np.asarray(f(x + k * h * v))
    return (-g(2) + 8 * g(1) - 8 * g(-1) + g(-2)) / (12 * h)


def fd2(f, x, v, w, h=2e-3):
    """Mixed second difference of f (NumPy) at x along v and w, Richardson-extrapolated (error
    O(h^4))."""
    def d(h):
        g = lambda a, b: np.asarray(f(x + a * h * v + b * h * w))
        return (g(1, 1) - g(1, -1) - g(-1, 1) + g(-1, -1)) / (4 * h * h)
    return (4 * d(h / 2) - d(h)) / 3


def derivatives(f, x, v, w):
    """(f(x), d f[v], d2 f[v, w] forward-over-forward, the same forward-over-reverse for a
    scalar f) with tracegrad."""
    y, t = tg.jvp(f, (x,), (v,))
    _, tt = tg.jvp(lambda x: tg.jvp(f, (x,), (w,))[1], (x,), (v,))
    return y, t, tt


# ---------------------------------------------------------------- 1. hypot at ties

@pytest.mark.parametrize("mode", MODES)
def test_hypot_second_derivative_at_a_tie(mode):
    with _mode(mode):
        got = tg.grad(tg.grad(lambda x: np.hypot(x, 2.0)))(2.0)
    np.testing.assert_allclose(got, 4 / 8 ** 1.5, rtol=1e-12)     # y^2 / h^3 at x = y = 2
    for x, y in [(2.0, 2.0), (-3.0, 3.0), (1.5, -1.5), (1e-3, 1e-3), (0.0, 2.0), (3.0, 4.0)]:
        f = lambda p: np.hypot(p[0], p[1])
        p = np.array([x, y])
        scale = np.max(np.abs(p))           # steps relative to the point
        v, w = rng.standard_normal(2) * scale, rng.standard_normal(2) * scale
        with _mode(mode):
            _, t, tt = derivatives(f, p, v, w)
            hess = tg.hessian(f)(p)
            gg = tg.grad(lambda q: np.sum(tg.grad(f)(q) * w))(p)    # reverse over reverse
        np.testing.assert_allclose(t, fd1(f, p, v), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(tt, fd2(f, p, v, w), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(v @ hess @ w, fd2(f, p, v, w), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(gg @ v, fd2(f, p, v, w), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- 2. det at singular matrices

SINGULAR = [
    np.array([[1.0, 2.0], [2.0, 4.0]]),                               # rank 1
    np.array([[0.0, 1.0], [0.0, 0.0]]),                               # every pivot zero, rank 1
    np.zeros((3, 3)),                                                 # rank 0
    np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),    # nilpotent, rank 2
    np.diag([0.0, 1.0, -2.0]),
    np.stack([np.array([[2.0, 1.0], [4.0, 2.0]]), np.array([[1.0, 3.0], [0.5, -1.0]])]),
]


def _adjugate_t(a):
    """d det / d a: the cofactor matrix, from minors (NumPy)."""
    n = a.shape[-1]
    c = np.zeros_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, -2), j, -1)
            c[..., i, j] = (-1) ** (i + j) * (np.linalg.det(minor) if n > 1 else 1.0)
    return c


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("a", SINGULAR, ids=lambda a: "x".join(map(str, a.shape)))
def test_det_derivatives_at_singular_matrices(mode, a):
    v, w = rng.standard_normal(a.shape), rng.standard_normal(a.shape)
    f = lambda a: np.linalg.det(a)
    with _mode(mode):
        assert np.array_equal(tg.jit(f)(a), np.linalg.det(a))
        g = tg.grad(lambda a: np.sum(f(a)))(a)
        _, t, tt = derivatives(f, a, v, w)
        gg = tg.grad(lambda b: np.sum(tg.grad(lambda c: np.sum(f(c)))(b) * w))(a)
    np.testing.assert_allclose(g, _adjugate_t(a), atol=1e-12)
    np.testing.assert_allclose(t, fd1(f, a, v), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tt, fd2(f, a, v, w), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sum(gg * v), np.sum(fd2(f, a, v, w)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", MODES)
def test_slogdet_of_a_singular_matrix_is_minus_inf_with_an_undefined_derivative(mode):
    a = SINGULAR[0]
    with _mode(mode), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sign, logdet = tg.jit(np.linalg.slogdet)(a)
        g = tg.grad(lambda a: np.linalg.slogdet(a)[1])(a)
        # a regular matrix in the same batch is unaffected
        b = np.stack([a, np.array([[2.0, 1.0], [1.0, 3.0]])])
        gb = tg.grad(lambda b: np.sum(np.linalg.slogdet(b)[1]))(b)
    assert sign == 0.0 and logdet == -np.inf
    assert np.isnan(g).all()
    np.testing.assert_allclose(gb[1], np.linalg.inv(b[1]).T, rtol=1e-12)


# ---------------------------------------------------------------- 3. zero-size arrays

ZERO_SIZE = [
    ("einsum batch", lambda a, b: np.einsum("...ij,...jk->...ik", a, b), [(0, 2, 3), (0, 3, 4)]),
    ("einsum contracted", lambda a, b: np.einsum("ij,jk->ik", a, b), [(2, 0), (0, 3)]),
    ("matmul inner 0", lambda a, b: a @ b, [(2, 0), (0, 3)]),
    ("sum empty axis", lambda a: np.sum(a, axis=1), [(3, 0)]),
    ("prod empty axis", lambda a: np.prod(a, axis=0), [(0, 2)]),
    ("max initial", lambda a: np.max(a, axis=0, initial=-1.0), [(0, 3)]),
    ("concatenate empty part", lambda a, b: np.concatenate([a, b]), [(0, 3), (2, 3)]),
    ("split empty parts", lambda a: np.split(a, [0, 0, 2])[2] * 2, [(3, 2)]),
    ("take empty index", lambda a: np.take(a, np.array([], dtype=np.int64), axis=0), [(3, 2)]),
    ("fancy empty index", lambda a: a[np.array([], dtype=np.int64)] + 1, [(3,)]),
    ("det of 0x0", lambda a: np.linalg.det(a), [(2, 0, 0)]),
    ("norm of empty", lambda a: np.linalg.norm(a), [(0, 4)]),
    ("cumsum empty", lambda a: np.cumsum(a, axis=1), [(2, 0)]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name, f, shapes", ZERO_SIZE, ids=[z[0] for z in ZERO_SIZE])
def test_zero_size_values_and_derivatives(mode, name, f, shapes):
    xs = [rng.standard_normal(s) for s in shapes]
    want = f(*xs)
    with _mode(mode):
        got = tg.jit(f)(*xs)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want)
        # reverse: a cotangent of the output's shape gives gradients of the inputs' shapes,
        # equal to finite differences of <u, f> along v (trivially 0 for empty inputs)
        u = rng.standard_normal(want.shape)
        vs = [rng.standard_normal(s) for s in shapes]
        _, pullback = tg.vjp(f, *xs)
        cts = pullback(u)
        _, t = tg.jvp(f, tuple(xs), tuple(vs))
    for c, x in zip(cts, xs):
        assert c.shape == x.shape
    h = 1e-6
    fd = (f(*[x + h * v for x, v in zip(xs, vs)]) - f(*[x - h * v for x, v in zip(xs, vs)])) / (2 * h)
    np.testing.assert_allclose(t, fd, atol=1e-8)
    np.testing.assert_allclose(sum(np.sum(c * v) for c, v in zip(cts, vs)), np.sum(u * fd), atol=1e-8)


# ---------------------------------------------------------------- 4. eigh(UPLO="U")

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("uplo", ["U", "L"])
def test_eigh_reads_one_triangle_and_matches_numpy(mode, uplo):
    a = rng.standard_normal((2, 3, 4, 4))
    a = a + np.swapaxes(a, -1, -2)                      # batched symmetric
    f = lambda a: tuple(np.linalg.eigh(a, UPLO=uplo))
    with _mode(mode):
        w, v = tg.jit(f)(a)
        np.testing.assert_array_equal(w, np.linalg.eigh(a, UPLO=uplo)[0])
        np.testing.assert_array_equal(v, np.linalg.eigh(a, UPLO=uplo)[1])
        # along non-symmetric directions, first and second order, both modes (check_grads
        # differentiates NumPy's eigh(UPLO=uplo) by finite differences)
        tg.check_grads(f, (a,), order=2, atol=1e-6, rtol=1e-5)
        # the derivative lives in the triangle that is read
        g = tg.grad(lambda a: np.sum(np.linalg.eigh(a, UPLO=uplo)[1] ** 3))(a)
    other = np.tril(np.ones((4, 4)), -1) if uplo == "U" else np.triu(np.ones((4, 4)), 1)
    assert not np.any(g * other)


# ---------------------------------------------------------------- 5. isclose / allclose

CLOSE = [(np.array([1.0, np.nan, np.inf, 2.0, -np.inf]), np.array([1.0 + 1e-9, np.nan, np.inf, 2.1, np.inf])),
         (np.array([1e10, 1e-8]), np.array([1.00001e10, 1e-9])),
         (np.float32([1.0, 2.0]), np.float32([1.0, 2.0 + 1e-5]))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kw", [{}, {"equal_nan": True}, {"rtol": 0.0, "atol": 0.2}])
def test_isclose_allclose_trace(mode, kw):
    for a, b in CLOSE:
        with _mode(mode), warnings.catch_warnings():
            warnings.simplefilter("error")          # NumPy warns for none of these: neither may we
            c, ac = tg.jit(lambda a, b: (np.isclose(a, b, **kw), np.allclose(a, b, **kw)))(a, b)
        np.testing.assert_array_equal(c, np.isclose(a, b, **kw))
        assert c.dtype == np.bool_ and bool(ac) == np.allclose(a, b, **kw)


def test_allclose_in_python_control_flow_and_under_grad():
    def f(x):
        if np.allclose(x, 1.0):           # concrete in eager mode
            return np.sum(x * 2.0)
        return np.sum(x)
    with tg.eager():
        np.testing.assert_array_equal(tg.grad(f)(np.ones(3)), [2.0, 2.0, 2.0])
        np.testing.assert_array_equal(tg.grad(f)(np.zeros(3)), [1.0, 1.0, 1.0])
    with pytest.raises(tg.TracerError):
        tg.jit(f)(np.ones(3))
    with pytest.raises(TypeError, match="floating-point.*got bool"):
        tg.grad(lambda x: np.allclose(x, 1.0))(np.ones(3))
    with pytest.raises(TypeError, match="floating-point.*got bool"):
        tg.grad(lambda x: np.isclose(x, 1.0)[0])(np.ones(3))


# ---------------------------------------------------------------- compiled

@pytest.mark.compiled
def test_compiled_kernel_agrees_with_finite_differences():
    """The five regressions in one Numba kernel (values, first and second derivatives)."""
    a_sing = SINGULAR[1]
    e1, e2 = np.zeros((0, 2, 3)), np.zeros((0, 3, 4))
    s = rng.standard_normal((2, 3, 3))
    s = s + np.swapaxes(s, -1, -2)
    v_s, w_s = rng.standard_normal(s.shape), rng.standard_normal(s.shape)
    v_a, w_a = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    det = lambda a: np.linalg.det(a)
    eig = lambda s: np.linalg.eigh(s, UPLO="U")[1]

    @tg.jit
    def kernel(x, a, e1, e2, s):
        hyp1 = tg.grad(lambda x: np.hypot(x, 2.0))(x)
        hyp2 = tg.grad(tg.grad(lambda x: np.hypot(x, 2.0)))(x)
        g_det = tg.grad(det)(a)
        h_det = tg.jvp(lambda a: tg.jvp(det, (a,), (w_a,))[1], (a,), (v_a,))[1]
        g_ein = tg.grad(lambda p, q: np.sum(np.einsum("...ij,...jk->...ik", p, q)), argnums=(0, 1))(e1, e2)
        w, v = np.linalg.eigh(s, UPLO="U")
        t_eig = tg.jvp(eig, (s,), (v_s,))[1]
        tt_eig = tg.jvp(lambda s: tg.jvp(eig, (s,), (w_s,))[1], (s,), (v_s,))[1]
        close = (np.isclose(x, 2.0), np.allclose(s, s))
        return hyp1, hyp2, g_det, h_det, g_ein, w, v, t_eig, tt_eig, close

    x = np.float64(2.0)
    hyp1, hyp2, g_det, h_det, g_ein, w, v, t_eig, tt_eig, close = kernel(x, a_sing, e1, e2, s)
    hyp = lambda x: np.hypot(x, 2.0)
    np.testing.assert_allclose(hyp1, fd1(hyp, 2.0, 1.0), rtol=1e-8)
    np.testing.assert_allclose(hyp2, fd2(hyp, 2.0, 1.0, 1.0), rtol=1e-5)
    np.testing.assert_allclose(g_det, _adjugate_t(a_sing), atol=1e-12)
    np.testing.assert_allclose(h_det, fd2(det, a_sing, v_a, w_a), rtol=1e-5, atol=1e-7)
    assert g_ein[0].shape == e1.shape and g_ein[1].shape == e2.shape
    np.testing.assert_array_equal(w, np.linalg.eigh(s, UPLO="U")[0])
    np.testing.assert_array_equal(v, np.linalg.eigh(s, UPLO="U")[1])
    np.testing.assert_allclose(t_eig, fd1(eig, s, v_s), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tt_eig, fd2(eig, s, v_s, w_s), rtol=1e-4, atol=1e-6)
    assert bool(close[0]) and bool(close[1])


# ---------------------------------------------------------------- 6. found by the fuzzer (SciPy)

@pytest.mark.parametrize("mode", MODES)
def test_cdf_derivatives_outside_and_at_the_edge_of_the_support(mode):
    """beta.cdf / gamma.cdf with a < 1: outside the support the derivative is 0 (was 0 * inf =
    NaN, through the density at the clipped edge); at the edge, second derivatives are 0, not NaN,
    where the cdf is flat on both sides (a > 2)."""
    x = np.array([-0.7, -0.2, 1.3, 2.0])
    with _mode(mode):
        g_beta = tg.grad(lambda x: np.sum(ts.beta.cdf(x, 0.4, 0.6, loc=-0.1)))(x)
        g_gamma = tg.grad(lambda x: np.sum(ts.gamma.cdf(x, 0.4, loc=-0.1)))(x)
        h_gamma = tg.grad(tg.grad(lambda x: ts.gamma.cdf(x, 3.5)))(0.0)
        h_beta = tg.grad(tg.grad(lambda x: ts.beta.cdf(x, 3.5, 2.5)))(1.0)
    f_beta = lambda x: st.beta.cdf(x, 0.4, 0.6, loc=-0.1)
    f_gamma = lambda x: st.gamma.cdf(x, 0.4, loc=-0.1)
    np.testing.assert_allclose(g_beta, fd1(f_beta, x, np.ones(4)), atol=1e-12)
    outside = x < -0.1
    np.testing.assert_array_equal(g_gamma[outside], 0.0)
    np.testing.assert_allclose(g_gamma[~outside], fd1(f_gamma, x, np.ones(4), h=1e-6)[~outside], rtol=1e-7)
    assert h_gamma == 0.0 and h_beta == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_pdf_derivative_at_an_edge_where_the_density_is_zero(mode):
    """beta.pdf at x == 0 with a > 1 (density 0, a kink): the outer one-sided derivative, 0 (was
    NaN: (a - 1) / 0 times a zero density)."""
    with _mode(mode):
        g = tg.grad(lambda x: np.sum(ts.beta.pdf(x, 2.0, 3.0)))(np.array([0.0, 1.0, 0.5]))
        gl = tg.grad(lambda x: np.sum(ts.gamma.logpdf(x, 2.5)))(np.array([0.0, 2.5]))
    np.testing.assert_allclose(g, [0.0, 0.0, fd1(lambda x: st.beta.pdf(x, 2.0, 3.0), 0.5, 1.0)], atol=1e-9)
    np.testing.assert_allclose(gl, [0.0, fd1(lambda x: st.gamma.logpdf(x, 2.5), 2.5, 1.0)], rtol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_t_cdf_reverse_mode_next_to_zero(mode):
    """t.cdf at |z| ~ 1e-16: reverse mode was NaN (the unused tail branch's density is inf there and
    met a zero cotangent); at |z| ~ 1e-300 (z^2 underflows) both modes were."""
    x = np.array([-2.5e-16, 0.0, 3e-300, -0.15, 9e-5, 1.1e-4])
    with _mode(mode):
        g = tg.grad(lambda x: np.sum(ts.t.cdf(x, 1.66)))(x)
        _, t = tg.jvp(lambda x: ts.t.cdf(x, 1.66), (x,), (np.ones(6),))
        h = tg.grad(lambda x: np.sum(tg.grad(lambda x: np.sum(ts.t.cdf(x, 1.66)))(x)))(x)
    np.testing.assert_allclose(g, st.t.pdf(x, 1.66), rtol=1e-12)
    np.testing.assert_allclose(t, st.t.pdf(x, 1.66), rtol=1e-12)
    # (the t density's derivative in closed form: -pdf(x) (df + 1) x / (df + x^2))
    np.testing.assert_allclose(h, -st.t.pdf(x, 1.66) * 2.66 * x / (1.66 + x ** 2), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("mode", MODES)
def test_bernoulli_reverse_mode_outside_the_support(mode):
    """bernoulli.pmf / logpmf at k outside {0, 1} and p == 1: derivative 0 in both modes (reverse
    mode was NaN: log(1 - p) of the unused branch met a zero cotangent)."""
    k = np.array([-1.0, 2.0, 0.5])
    with _mode(mode):
        g = tg.grad(lambda p: np.sum(ts.bernoulli.pmf(k, p)))(1.0)
        gl = tg.grad(lambda p: np.sum(np.where(np.isfinite(ts.bernoulli.logpmf(k, p)), 1.0, 0.0)
                                      + ts.bernoulli.cdf(k, p)))(1.0)
        _, t = tg.jvp(lambda p: ts.bernoulli.pmf(k, p), (1.0,), (1.0,))
    assert g == 0.0 and gl == -1.0
    np.testing.assert_array_equal(t, 0.0)
    # pmf is linear in p: its second derivative is 0, also next to p = 1 (through exp(logpmf) it
    # was a difference of terms ~1/(1 - p)^2: 7e-9 at 1 - p = 3e-8)
    with _mode(mode):
        h = tg.grad(tg.grad(lambda p: np.sum(ts.bernoulli.pmf(np.array([0.0, 1.0]), p))))(1 - 3e-8)
    assert h == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_log_ndtr_derivatives_in_the_far_left_tail(mode):
    """(log Phi)' and '' at x << 0: the second derivative (-> -1) was wrong by 54% at x = -1e4 and
    by orders of magnitude beyond (exp(-x^2/2 - log Phi) cancels); finite differences of SciPy's
    log_ndtr with steps large enough for its magnitude (x^2/2) decide."""
    import scipy.special as sc
    for x in (-9.0, -40.0, -1e3, -1e4, -1e6):
        with _mode(mode):
            d1 = tg.grad(sc.log_ndtr)(x)
            d2 = tg.grad(tg.grad(sc.log_ndtr))(x)
        h = 1e-3 * abs(x)
        want1 = fd1(sc.log_ndtr, x, 1.0, h=h)
        want2 = (4 * (sc.log_ndtr(x + h) - 2 * sc.log_ndtr(x) + sc.log_ndtr(x - h)) / h ** 2
                 - (sc.log_ndtr(x + 2 * h) - 2 * sc.log_ndtr(x) + sc.log_ndtr(x - 2 * h)) / (2 * h) ** 2) / 3
        np.testing.assert_allclose(d1, want1, rtol=1e-9)
        np.testing.assert_allclose(d2, want2, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_log_ndtr_reverse_over_reverse_in_the_far_tail(mode):
    """At x ~ -5e13 the unused branch of (log Phi)' (exp of a difference of two ~1e27 numbers) was
    inf, and reverse over reverse multiplied it by the zero cotangent: NaN. The second derivative
    there is -1 to rounding (-1 + 1/x^2)."""
    for x in (-4.8e13, -1e100):
        with _mode(mode):
            got = tg.grad(lambda y: tg.vjp(sc.log_ndtr, y)[1](1.0)[0])(x)
        assert got == -1.0


@pytest.mark.parametrize("mode", MODES)
def test_spectral_norm_reverse_over_reverse_with_a_zero_singular_value(mode):
    """matrix_norm(ord=2) of a wide rank-1 matrix: the SVD's reverse rule divided the zero
    singular value's (zero) cotangent column by s = 0 (NaN everywhere); forward over forward was
    right. Reference: forward over forward, and finite differences of the gradient (NumPy's)."""
    a = np.array([[0.0, 0.0, 0.0], [1.4, -3.0, -2.3]])
    v, w = rng.standard_normal(a.shape), rng.standard_normal(a.shape)
    f = lambda a: np.linalg.matrix_norm(a, ord=2)
    with _mode(mode):
        rr = tg.grad(lambda b: np.sum(tg.grad(f)(b) * w))(a)
        fof = tg.jvp(lambda b: tg.jvp(f, (b,), (w,))[1], (a,), (v,))[1]
    assert np.isfinite(rr).all()
    np.testing.assert_allclose(np.sum(rr * v), fof, rtol=1e-12)
    np.testing.assert_allclose(fof, fd2(f, a, v, w), rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_t_logpdf_derivative_in_df_for_large_df(mode):
    """d/d df of t.logpdf is O(1/df^2), made of terms O(1/df): it was 1e-3 off at df = 1e6 and
    wrong at 1e8. Closed form: logpdf = norm.logpdf(x) + (x^4/4 - x^2/2 - 1/4) / df + O(df^-2)."""
    x = 1.5
    for df in (1e6, 1e8, 1e10):
        with _mode(mode):
            got = tg.grad(lambda d: ts.t.logpdf(x, d))(df)
        # (the O(df^-3) term is ~1e-5 of it at df = 1e6)
        np.testing.assert_allclose(got, (0.25 + x ** 2 / 2 - x ** 4 / 4) / df ** 2, rtol=5e-5)


@pytest.mark.parametrize("mode", MODES)
def test_scaled_bessel_second_derivatives_for_large_arguments(mode):
    """i0e'' and i1e'' at |x| >> 1 (i1e - i0e, the closed form of i0e', cancels to ~i0e / 2x: 8%
    off at 1.7e7). Closed form: Hankel's expansion, e^-t I_nu(t) ~ (2 pi t)^-1/2 (1 - (4 nu^2 - 1)
    / (8 t)), whose second derivative is (2 pi)^-1/2 (3/4 t^-5/2 - 15 (4 nu^2 - 1) / 32 t^-7/2)."""
    for x in (-1.7457e7, 2.5e5):
        t = abs(x)
        for fn, nu in ((sc.i0e, 0), (sc.i1e, 1)):
            with _mode(mode):
                got = tg.grad(tg.grad(fn))(x)
            want = (0.75 * t ** -2.5 - 15 * (4 * nu ** 2 - 1) / 32 * t ** -3.5) / np.sqrt(2 * np.pi)
            np.testing.assert_allclose(got, want * (np.sign(x) if nu else 1.0), rtol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_odeint_pullback_differentiated_again_with_a_constant_cotangent(mode):
    """Reverse over reverse of odeint where the cotangent is a constant of the outer trace: the
    adjoint indexed the cotangent (a NumPy array) with the scan's traced step (a TracerError)."""
    def damped(y, t, k, c):
        return np.stack([y[1], -k * y[0] - c * y[1]])

    y0, ts, u = np.array([1.0, -0.5]), np.array([0.0, 0.7, 1.5]), np.array([[0.3, -1.0], [0.5, 2.0], [-1.0, 0.25]])
    solve = lambda y0, k: ti.odeint(damped, y0, ts, args=(k, 0.3), rtol=1e-11, atol=1e-11)
    with _mode(mode):
        dk = lambda k: tg.vjp(lambda k: solve(y0, k), k)[1](u)[0]
        got = tg.grad(dk)(1.7)
    ref = lambda k: np.sum(u * si.odeint(damped, y0, ts, args=(k, 0.3), rtol=1e-12, atol=1e-12))
    h = 1e-3
    want = (ref(1.7 + h) - 2 * ref(1.7) + ref(1.7 - h)) / h ** 2
    np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_logsumexp_ignores_zero_weights_for_its_shift(mode):
    """A term with b == 0 far above the others took logsumexp's shift, underflowed the others and
    gave -inf (SciPy: log of the weighted terms); the derivative in that b stays exp(a_i) / s."""
    a, b = np.array([1.0, 2.0e4, 3.0, 2.5]), np.array([1.0, 0.0, 2.0, 0.5])
    a2 = np.array([1.0, 5.0, 3.0])
    b2 = np.array([1.0, 0.0, 2.0])
    with _mode(mode):
        value = tg.jit(lambda a, b: tss.logsumexp(a, b=b))(a, b)
        ga, gb = tg.grad(lambda a, b: tss.logsumexp(a, b=b), argnums=(0, 1))(a2, b2)
    np.testing.assert_allclose(value, sc.logsumexp(a, b=b), rtol=1e-15)
    s = np.sum(b2 * np.exp(a2))
    np.testing.assert_allclose(ga, b2 * np.exp(a2) / s, rtol=1e-14)
    np.testing.assert_allclose(gb, np.exp(a2) / s, rtol=1e-14)


def test_scipy_result_shapes_at_empty_and_single_inputs():
    """As SciPy: multivariate_normal / dirichlet squeeze length-1 axes; logsumexp over nothing is
    -inf (sign -1) rather than an error, and a 0-d input with keepdims gives shape (1,)."""
    import scipy.special as sc
    cases = [
        (lambda m, x: m.multivariate_normal.logpdf(x, np.zeros(2), np.eye(2)), np.full((1, 2), 0.3)),
        (lambda m, x: m.multivariate_normal.pdf(x, np.zeros(1), 2.0), np.full((3, 1), 0.3)),
        (lambda m, x: m.dirichlet.logpdf(x, np.array([2.0, 3.0, 1.5])), np.array([[0.2], [0.5], [0.3]])),
        (lambda m, x: m.logsumexp(x, axis=0), np.zeros((0, 3))),
        (lambda m, x: m.logsumexp(x, return_sign=True), np.zeros(0)),
        (lambda m, x: m.logsumexp(x, keepdims=True, b=-2.0, return_sign=True), np.float64(-1.5)),
    ]
    for f, x in cases:
        want = f(st, x) if "logsumexp" not in f.__code__.co_names else f(sc, x)
        got = tg.jit(lambda x: f(ts, x) if "logsumexp" not in f.__code__.co_names else f(tss, x))(x)
        for g, w in zip(*(v if isinstance(v, tuple) else (v,) for v in (got, want))):
            assert np.shape(g) == np.shape(w)
            np.testing.assert_allclose(g, w, rtol=1e-13)
