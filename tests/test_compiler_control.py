"""Control flow compiled to real loops: compiled vs eager (the NumPy reference for these is eager
mode, which runs the same bodies with the impls), plus anomalies inside bodies."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg

pytestmark = pytest.mark.usefixtures("numba_backend")


def agree(fn, *args, rtol=1e-12):
    got = fn(*args)
    with tg.eager():
        want = fn(*args)
    for g, w in zip(tg.tree_leaves(got), tg.tree_leaves(want)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
    return got


def pendulum_loss(p, x0, v0, steps=40, dt=0.01):
    k, c = p[0], p[1]

    def body(i, s):
        x, v = s
        a = -k * np.sin(x) - c * v
        return (x + dt * v, v + dt * a)

    x, v = tg.fori_loop(0, steps, body, (x0, v0))
    return np.sum((x - 0.5) ** 2)


def test_fori_loop_gradient_pendulum():
    r = np.random.default_rng(0)
    p, x0, v0 = np.array([1.3, 0.2]), r.standard_normal(16), np.zeros(16)
    g = agree(tg.grad(pendulum_loss), p, x0, v0)
    # against central differences of the compiled forward
    f = tg.jit(pendulum_loss)
    eps = 1e-6
    fd = [(f(p + eps * e, x0, v0) - f(p - eps * e, x0, v0)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    src = tg.grad(pendulum_loss).source(p, x0, v0)
    assert "for it" in src and "range(39, -1, -1)" in src     # forward loop and reversed backward


def test_scan_with_xs_ys_and_scalar_carries():
    def f(w, xs):
        def step(carry, x):
            h, t = carry
            h = np.tanh(h * w + x)
            return (h, t + np.sum(h)), h * 2.0

        (h, t), ys = tg.scan(step, (np.zeros(3), 0.0), xs)
        return h, t, ys

    w = np.array([0.5, -0.3, 0.9])
    xs = np.random.default_rng(1).standard_normal((5, 3))
    agree(tg.jit(f), w, xs)
    agree(tg.grad(lambda w, xs: np.sum(f(w, xs)[2] ** 2)), w, xs)


def test_reverse_scan_and_swapped_carries():
    def f(a, b):
        def step(carry, x):
            u, v = carry
            return (v * x, u + x), u

        return tg.scan(step, (a, b), np.arange(4.0), reverse=True)

    agree(tg.jit(f), np.array([1.0, 2.0]), np.array([3.0, -1.0]))


def test_cond_and_while_loop():
    def f(x, n):
        y = tg.cond(np.sum(x) > 0, lambda x: x * 2.0, lambda x: -x + 1.0, x)

        def cond_fun(s):
            i, z = s
            return np.logical_and(i < n, np.max(z) < 100.0)

        i, z = tg.while_loop(cond_fun, lambda s: (s[0] + 1, s[1] * 1.5 + 1.0), (0, y))
        return i, z

    for x in (np.array([1.0, 2.0]), np.array([-1.0, -2.0])):
        agree(tg.jit(f), x, np.int64(7))
    agree(tg.grad(lambda x: np.sum(tg.cond(x[0] > 0, np.sin, np.cos, x) ** 2)), np.array([0.3, 1.2]))
    agree(tg.grad(lambda x: np.sum(tg.cond(x[0] > 0, np.sin, np.cos, x) ** 2)), np.array([-0.3, 1.2]))


def test_checkpoint_inside_a_loop():
    def f(w):
        layer = tg.checkpoint(lambda h: np.tanh(h @ w))

        def body(i, h):
            return layer(h)

        return np.sum(tg.fori_loop(0, 6, body, np.ones((2, 3))))

    w = np.random.default_rng(2).standard_normal((3, 3)) * 0.5
    agree(tg.grad(f), w)


def test_anomaly_inside_a_loop_body_matches_eager():
    def f(x):
        def body(i, s):
            return np.log(s - 0.25)      # goes negative after a few steps: NaN

        return np.sum(tg.fori_loop(0, 10, body, x))

    x = np.array([3.0, 5.0])
    errs = []
    for eager in (False, True):
        with pytest.raises(tg.AnomalyError) as info, tg.detect_anomaly(), np.errstate(all="ignore"):
            if eager:
                with tg.eager():
                    tg.jit(f)(x)
            else:
                tg.jit(f)(x)
        errs.append(info.value)
    c, e = errs
    assert (c.primitive, c.phase, c.source) == (e.primitive, e.phase, e.source) == \
        ("log", "forward", f"{__file__}:{f.__code__.co_firstlineno + 2}")


def test_run_time_sized_buffers_fall_back_to_numpy():
    def f(x):
        return np.sum(tg.while_loop(lambda s: np.sum(s) < 10.0, lambda s: s * 2.0, x))

    x = np.array([1.0, 2.0])
    agree(tg.jit(f), x)                                # compiled: a plain while loop
    assert "while True:" in tg.jit(f).source(x)
    g = agree(tg.grad(f), x)                           # reverse mode saves run-time-length residuals
    np.testing.assert_allclose(g, [4.0, 4.0])
    assert tg.grad(f).source(x).startswith("# not compiled (reverse mode through a while_loop")


def test_traced_trip_count():
    def f(x, n):
        return tg.fori_loop(0, n, lambda i, c: c * 1.5 + np.sin(c), x)

    for n in (0, 1, 5):
        agree(tg.jit(f), np.array([0.2, -0.4]), np.int64(n))
    assert "range(" in tg.jit(f).source(np.array([0.2, -0.4]), np.int64(3))


def test_one_body_in_two_loops_jvp_of_nested_loops():
    # a JVP reuses the primal loop body object in a second loop: each use gets its own storage
    def f(w):
        def outer(i, c):
            return tg.fori_loop(0, 3, lambda j, d: np.sin(d * w) + 0.1 * i * j, c)
        return np.sum(tg.fori_loop(0, 4, outer, w * 0.5))

    w, u = np.array([0.7, 1.3]), np.array([0.3, -0.8])
    out = agree(lambda w: tg.jvp(f, (w,), (u,)), w)
    eps = 1e-6
    with tg.eager():
        fd = (f(w + eps * u) - f(w - eps * u)) / (2 * eps)
    np.testing.assert_allclose(out[1], fd, rtol=1e-7)
