"""Control flow compiled to real loops: compiled vs eager (the NumPy reference for these is eager
mode, which runs the same bodies with the impls), plus anomalies inside bodies."""
from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest

import tracegrad as tg

pytestmark = pytest.mark.compiled


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


def compiled_and_eager_anomalies(fn, *args):
    """The AnomalyError of fn(*args) under detect_anomaly: compiled, then in eager mode."""
    errs = []
    for mode in (contextlib.nullcontext, tg.eager):
        with pytest.raises(tg.AnomalyError) as info, tg.detect_anomaly(), np.errstate(all="ignore"):
            with mode():
                fn(*args)
        errs.append(info.value)
    return errs


def test_anomaly_inside_a_loop_body_matches_eager():
    def f(x):
        def body(i, s):
            return np.log(s - 0.25)      # goes negative after a few steps: NaN

        return np.sum(tg.fori_loop(0, 10, body, x))

    c, e = compiled_and_eager_anomalies(tg.jit(f), np.array([3.0, 5.0]))
    assert (c.primitive, c.phase, c.source) == (e.primitive, e.phase, e.source) == \
        ("log", "forward", f"{__file__}:{f.__code__.co_firstlineno + 2}")


def test_anomaly_in_the_backward_of_a_while_loop_matches_eager():
    def f(x):
        s = tg.while_loop(lambda s: np.sum(s) < 4.0,
                          lambda s: s * 1.2 + np.sqrt(s - 0.5),   # d/ds at s = 0.5 is inf
                          x)
        return np.sum(s)

    x = np.array([0.5, 0.7])
    c, e = compiled_and_eager_anomalies(tg.grad(f), x)
    assert not tg.grad(f).source(x).startswith("# not compiled")
    assert (c.primitive, c.phase, c.source) == (e.primitive, e.phase, e.source)
    assert c.phase == "backward" and c.source == f"{__file__}:{f.__code__.co_firstlineno + 2}"


def grow_until(x, limit):
    """A while_loop whose trip count depends on the values (0 to ~80 trips here)."""
    s = tg.while_loop(lambda s: np.sum(s) < limit, lambda s: s * 1.1 + 0.05 * np.sin(s), x)
    return np.sum(s ** 2)


def test_reverse_mode_through_while_loop_compiles_with_growing_buffers():
    x = np.array([0.3, 0.4])
    g = tg.grad(grow_until)
    for limit in (0.1, 1.0, 1e3):          # 0 trips, a few, and ~75 (the 16-row buffers grow)
        agree(g, x, limit)
    src = g.source(x, 1e3)
    assert not src.startswith("# not compiled")
    assert "while True:" in src and "grow_buffer(" in src
    assert re.search(r"for it\d+ in range\(\w+ - 1, -1, -1\):", src)   # the backward loop
    # the trip count depends on x: central differences of the compiled forward, away from a jump
    f, eps = tg.jit(grow_until), 1e-6
    fd = [(f(x + eps * e, 1e3) - f(x - eps * e, 1e3)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(g(x, 1e3), fd, rtol=1e-6)


def test_second_order_through_while_loop_and_traced_fori_loop_compiled():
    def traced(x, n):
        return np.sum(tg.fori_loop(0, n, lambda i, c: c * 1.05 + np.sin(c), x) ** 2)

    x = np.array([0.3, 0.4])
    h = agree(tg.hessian(grow_until), x, 5.0)
    g = tg.jit(tg.grad(grow_until))
    eps = 1e-5
    fd = np.stack([(g(x + eps * e, 5.0) - g(x - eps * e, 5.0)) / (2 * eps) for e in np.eye(2)])
    np.testing.assert_allclose(h, fd, rtol=1e-6)
    hess = tg.hessian(traced)
    for n in (0, 1, 30):                   # a run-time trip count: ys sized when the loop starts
        agree(hess, x, np.int64(n))
    assert "grow_buffer(" in hess.source(x, np.int64(3))


def test_while_loop_in_a_loop_body_under_reverse_mode():
    # the outer body is recomputed in the backward loop, so the inner residuals live per iteration
    def f(x):
        def body(i, c):
            c = tg.while_loop(lambda s: np.sum(s) < 3.0 * (i + 1), lambda s: s * 1.3 + 0.01, c)
            return np.sin(c) + c
        return np.sum(tg.fori_loop(0, 3, body, x) ** 2)

    agree(tg.grad(f), np.array([0.2, 0.5]))


def test_dynamic_length_scan_checks_its_rows():
    from tracegrad.primitives import scan_p
    from tracegrad.trace import bind
    body = tg.make_ir(lambda i, c, x: (c + x, c * x))(np.int64(0), np.ones(2), np.ones(2))

    def f(n, c0, xs):       # a scan whose trip count is read at run time, over 3 rows of xs
        return bind(scan_p, n, c0, xs, body=body, length=None, reverse=False, n_consts=0,
                    n_carry=1, saved=0)[0]

    xs = np.arange(6.0).reshape(3, 2)
    agree(tg.jit(f), np.int64(3), np.ones(2), xs)
    with pytest.raises(ValueError, match=r"scan at test_compiler_control.py:\d+: an xs operand has "
                                         r"fewer rows than the trip count"):
        tg.jit(f)(np.int64(4), np.ones(2), xs)


def test_run_time_sized_values_outside_loops_run_on_the_interpreter_tier():
    # a residual buffer returned to the caller cannot be sized by the runner: the compiler refuses
    # the IR, saying why, and its entry runs it on the interpreter tier
    import compiler
    from tracegrad.ir import IR
    from tracegrad.tiers import Entry
    x = np.array([0.3, 0.4])
    ir = tg.make_ir(tg.grad(grow_until))(x, 1.0)
    loop = next(e for e in ir.eqns if e.prim.name == "while")
    leaky = IR(ir.inputs, ir.consts, ir.eqns, ir.outputs + (loop.outs[-1],))
    with pytest.raises(compiler.NotCompilable, match=r"run-time length \(f64\[-1,2\]\) is an output"):
        compiler.compile_ir(leaky)
    entry = Entry(leaky, tg.tree_flatten((0, 0))[1], False, "sync")
    assert entry.tier == "interpreted" and "run-time length" in entry.why
    assert entry.source().startswith("# not compiled (a value of run-time length (f64[-1,2]) is an output")
    grad, saved = entry.run(x, 1.0)
    np.testing.assert_allclose(grad, tg.grad(grow_until)(x, 1.0))
    assert saved.shape[1] == 2 and saved.shape[0] > 0


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
