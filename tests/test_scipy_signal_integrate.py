"""tracegrad.scipy.signal.convolve and tracegrad.scipy.integrate.odeint: values against SciPy,
derivatives against finite differences (odeint's: finite differences of SciPy's own solve)."""
import numpy as np
import pytest
import scipy.integrate as si
import scipy.signal as ss

import tracegrad as tg
from tracegrad.scipy import integrate as ti
from tracegrad.scipy import signal as tsig
from _opcheck import agree, grads




rng = np.random.default_rng(11)

# ---------------------------------------------------------------- convolve

SHAPES = [((7,), (3,)), ((3,), (6,)), ((4,), (4,)), ((1,), (5,)), ((6, 5), (3, 2)),
          ((2, 3), (4, 5)), ((4, 3, 5), (2, 3, 2))]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("s1,s2", SHAPES, ids=[f"{a}*{b}" for a, b in SHAPES])
def test_convolve_matches_scipy(s1, s2, mode):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    f = lambda a, b: tsig.convolve(a, b, mode)
    # (traced: the same sums in another order)
    agree(f, a, b, reference=lambda a, b: ss.convolve(a, b, mode), rtol=1e-12, atol=1e-13)


def test_convolve_dtypes_and_errors():
    agree(lambda a, b: tsig.convolve(a, b), np.arange(5), np.array([1, -2, 1]), rtol=0, atol=0)
    np.testing.assert_array_equal(tg.jit(lambda a: tsig.convolve(a, np.array([1, 2])))(np.arange(4)),
                                  ss.convolve(np.arange(4), np.array([1, 2])))
    got = tg.jit(lambda a, b: tsig.convolve(a, b, "same"))(np.ones(5, np.float32), np.ones(3, np.float32))
    assert got.dtype == np.float32
    with pytest.raises(ValueError, match="convolve: mode must be one of"):
        tg.jit(lambda a: tsig.convolve(a, a, "circular"))(np.ones(3))
    with pytest.raises(ValueError, match="same dimensionality"):
        tg.jit(lambda a: tsig.convolve(a, np.ones((2, 2))))(np.ones(3))
    with pytest.raises(ValueError, match="at least as large as the other in every dimension"):
        tg.jit(lambda a: tsig.convolve(a, np.ones((3, 2)), "valid"))(np.ones((2, 5)))


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_convolve_derivatives_in_both_inputs(mode):
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 2))
    grads(lambda a, b: tsig.convolve(a, b, mode), a, b, order=2)


# ---------------------------------------------------------------- odeint

def damped(y, t, k, c):
    return np.stack([y[1], -k * y[0] - c * y[1] + 0.1 * np.sin(t)])


Y0, TS, K, C = np.array([1.0, 0.0]), np.linspace(0.0, 4.0, 5), np.array(2.0), np.array(0.3)


def _scipy_solve(y0, ts, k, c):
    return si.odeint(damped, y0, ts, (k, c), rtol=1e-12, atol=1e-12)


def test_odeint_untraced_is_scipy():
    np.testing.assert_array_equal(ti.odeint(damped, Y0, TS, args=(K, C)),
                                  si.odeint(damped, Y0, TS, args=(K, C)))


def test_odeint_values():
    solve = tg.jit(lambda y0, ts, k, c: ti.odeint(damped, y0, ts, args=(k, c)))
    np.testing.assert_allclose(solve(Y0, TS, K, C), _scipy_solve(Y0, TS, K, C), rtol=1e-6, atol=1e-7)
    # decreasing times, tight tolerances, tfirst, a nonlinear system of three
    back = TS[::-1].copy()
    np.testing.assert_allclose(solve(Y0, back, K, C), _scipy_solve(Y0, back, K, C), rtol=1e-6, atol=1e-7)
    tight = tg.jit(lambda y0: ti.odeint(damped, y0, TS, args=(K, C), rtol=1e-11, atol=1e-11))(Y0)
    np.testing.assert_allclose(tight, _scipy_solve(Y0, TS, K, C), rtol=1e-9, atol=1e-10)
    tf = tg.jit(lambda y0: ti.odeint(lambda t, y, k, c: damped(y, t, k, c), y0, TS, args=(K, C),
                                     tfirst=True))(Y0)
    np.testing.assert_allclose(tf, _scipy_solve(Y0, TS, K, C), rtol=1e-6, atol=1e-7)

    def lorenz(y, t, s, r, b):
        return np.stack([s * (y[1] - y[0]), y[0] * (r - y[2]) - y[1], y[0] * y[1] - b * y[2]])
    y0, ts = np.array([1.0, 1.0, 1.0]), np.linspace(0, 1.0, 11)
    got = tg.jit(lambda y0: ti.odeint(lorenz, y0, ts, args=(10.0, 28.0, 8 / 3)))(y0)
    want = si.odeint(lorenz, y0, ts, args=(10.0, 28.0, 8 / 3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _loss(y0, ts, k, c, solve):
    weights = np.arange(1.0, 1.0 + np.size(ts) * 2).reshape(np.size(ts), 2) / 10
    return np.sum(weights * solve(y0, ts, k, c) ** 2)


def test_odeint_adjoint_gradient_matches_finite_differences_of_scipy():
    traced = lambda y0, ts, k, c: ti.odeint(damped, y0, ts, (k, c), rtol=1e-10, atol=1e-10)
    got = tg.grad(lambda *a: _loss(*a, traced), argnums=(0, 1, 2, 3))(Y0, TS, K, C)
    base = [Y0, TS, K, C]
    eps = 1e-4     # (LSODA's own error, ~1e-11 here, must stay small next to 2 eps f')
    for i, g in enumerate(got):
        fd = np.zeros(np.shape(base[i]))
        for j in np.ndindex(fd.shape):
            e = np.zeros(np.shape(base[i]))
            e[j] = eps
            up = [b + e if n == i else b for n, b in enumerate(base)]
            down = [b - e if n == i else b for n, b in enumerate(base)]
            fd[j] = (_loss(*up, _scipy_solve) - _loss(*down, _scipy_solve)) / (2 * eps)
        np.testing.assert_allclose(g, fd, rtol=2e-5, atol=1e-7, err_msg=f"argument {i}")


def test_odeint_second_derivative():
    traced = lambda y0, ts, k, c: ti.odeint(damped, y0, ts, (k, c), rtol=1e-10, atol=1e-10)
    dk = lambda k: tg.grad(lambda k: _loss(Y0, TS[:3], k, C, traced), argnums=0)(k)
    h = tg.grad(dk)(K)
    np.testing.assert_allclose(h, (dk(K + 1e-5) - dk(K - 1e-5)) / 2e-5, rtol=1e-4)


def test_odeint_limits_and_errors():
    out = tg.jit(lambda y0: ti.odeint(damped, y0, TS, (K, C), mxstep=3))(Y0)
    np.testing.assert_array_equal(out[0], Y0)
    assert np.isnan(out[1:]).all()          # too many steps: NaN from there on, never a silent value
    with pytest.raises(NotImplementedError, match=r"odeint: argument\(s\) \['Dfun'\]"):
        tg.jit(lambda y0: ti.odeint(damped, y0, TS, (K, C), Dfun=lambda y, t, k, c: None))(Y0)
