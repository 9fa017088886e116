"""Control flow: cond, fori_loop, scan, while_loop and checkpoint.

Values against plain Python loops; first and second derivatives against finite differences through
every construct (forward and reverse mode, including a while_loop whose trip count depends on the
parameters); eager mode against the interpreter; nesting; error messages naming the user's line;
checkpoint's saved residuals; tracing that does not depend on the trip count; tg.debug.steps.
"""
import time

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import control_flow as cf

HERE = "test_control_flow.py:"




def lineno(f, offset=0):
    return f.__code__.co_firstlineno + offset


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- functions under test

def pendulum(p, x0, v0, steps=20, dt=0.05):
    k, c = p[0], p[1]

    def step(i, s):
        x, v = s
        a = -k * np.sin(x) - c * v
        return x + dt * v, v + dt * a
    x, v = tg.fori_loop(0, steps, step, (x0, v0))
    return np.sum((x - 0.5) ** 2) + 0.1 * np.sum(v * v)


def pendulum_ref(p, x0, v0, steps=20, dt=0.05):
    x, v = x0.copy(), v0.copy()
    for _ in range(steps):
        a = -p[0] * np.sin(x) - p[1] * v
        x, v = x + dt * v, v + dt * a
    return np.sum((x - 0.5) ** 2) + 0.1 * np.sum(v * v)


def fori_traced_bounds(w, lo, hi):
    return tg.fori_loop(lo, hi, lambda i, c: np.sin(c * w) + 0.1 * i, w * 0.5)


def scan_fn(w, xs):
    def f(carry, x):
        h, acc = carry["h"], carry["acc"]
        h = np.tanh(h * w[0] + x * w[1])
        return {"h": h, "acc": acc + np.sum(h)}, (h * h, np.cos(x))
    carry, (ys, zs) = tg.scan(f, {"h": np.zeros(3), "acc": 0.0}, xs)
    return carry["acc"] + np.sum(ys * w[2]) + np.sum(zs)


def scan_ref(w, xs):
    h, acc, total = np.zeros(3), 0.0, 0.0
    for x in xs:
        h = np.tanh(h * w[0] + x * w[1])
        acc += np.sum(h)
        total += np.sum(h * h * w[2]) + np.sum(np.cos(x))
    return acc + total


def growth(p, x0):
    """A while_loop whose trip count depends on p: multiply until the value passes 5."""
    def cond(s):
        x, n = s
        return x < 5.0

    def body(s):
        x, n = s
        return x * (1.0 + p) + 0.01 * np.sin(x), n + 1
    x, n = tg.while_loop(cond, body, (x0, 0))
    return x * x + 0.1 * x * n


def growth_ref(p, x0):
    x, n = x0, 0
    while x < 5.0:
        x, n = x * (1.0 + p) + 0.01 * np.sin(x), n + 1
    return x * x + 0.1 * x * n, n


def branchy(x, y):
    return tg.cond(np.sum(x) > 0, lambda a, b: np.sin(a) * b, lambda a, b: a * a - b, x, y)


def cond_in_loop(x):
    def body(i, c):
        return tg.cond(np.sum(c) > 1.0, lambda z: z * 0.5, lambda z: np.exp(z * 0.3), c)
    return np.sum(tg.fori_loop(0, 6, body, x) ** 2)


def layers(w, x):
    for _ in range(4):
        x = np.tanh(x * w + 0.1)
    return x


def deep_loop(w, x0, checkpointed):
    body = lambda i, x: layers(w, x)
    body = tg.checkpoint(body) if checkpointed else body
    return np.sum(tg.fori_loop(0, 5, body, x0) ** 2)


# ---------------------------------------------------------------- values

def test_values_match_python_loops():
    p, x0, v0 = np.array([2.0, 0.3]), np.linspace(-1, 1, 4), np.zeros(4)
    np.testing.assert_allclose(tg.jit(pendulum)(p, x0, v0), pendulum_ref(p, x0, v0), rtol=1e-12)
    w, xs = np.array([0.7, -0.4, 1.3]), rng().standard_normal((6, 3))
    np.testing.assert_allclose(tg.jit(scan_fn)(w, xs), scan_ref(w, xs), rtol=1e-12)
    np.testing.assert_allclose(tg.jit(growth)(0.3, 1.0), growth_ref(0.3, 1.0)[0], rtol=1e-12)
    x, y = np.array([0.5, -0.1]), np.array([2.0, 3.0])
    np.testing.assert_allclose(tg.jit(branchy)(x, y), np.sin(x) * y)
    np.testing.assert_allclose(tg.jit(branchy)(-x, y), x * x - y)
    out = tg.jit(fori_traced_bounds)(0.8, np.int64(2), np.int64(5))
    c = 0.4
    for i in range(2, 5):
        c = np.sin(c * 0.8) + 0.1 * i
    np.testing.assert_allclose(out, c)


def test_outside_any_transform_runs_numpy():
    assert float(tg.fori_loop(0, 5, lambda i, c: c * 2.0 + i, 1.0)) == 58.0
    carry, ys = tg.scan(lambda c, x: (c + x, c * x), 0.0, np.arange(4.0))
    assert float(carry) == 6.0 and ys.tolist() == [0.0, 0.0, 2.0, 9.0]
    assert tg.while_loop(lambda c: c < 10, lambda c: c * 3, 1) == 27
    assert float(tg.cond(True, lambda a: a + 1, lambda a: a - 1, 1.0)) == 2.0


def test_reverse_scan_none_xs_and_zero_trips():
    def f(x):
        c, ys = tg.scan(lambda c, _: (c * 2 + 1, c), x, None, length=4, reverse=True)
        return c, ys
    c, ys = tg.jit(f)(1.0)
    assert float(c) == 31.0 and ys.tolist() == [15.0, 7.0, 3.0, 1.0]   # ys[i] written at i
    g = tg.grad(lambda x: np.sum(tg.fori_loop(3, 3, lambda i, c: c * c, x)))(np.ones(2))
    np.testing.assert_allclose(g, np.ones(2))
    g = tg.grad(lambda x: tg.while_loop(lambda c: c > 100.0, lambda c: c * c, x))(2.0)
    assert float(g) == 1.0


def test_weak_python_scalar_carry_takes_the_body_dtype():
    x32 = np.ones(3, np.float32)
    out = tg.jit(lambda x: tg.fori_loop(0, 3, lambda i, c: c + np.sum(x), 0.0))(x32)
    assert out.dtype == np.float32 and float(out) == 9.0


# ---------------------------------------------------------------- derivatives vs finite differences

def test_fori_loop_grads_first_and_second_order():
    p, x0, v0 = np.array([2.0, 0.3]), np.linspace(-1, 1, 4), 0.1 * np.ones(4)
    tg.check_grads(pendulum, (p, x0, v0), order=2, modes=("fwd", "rev"), rtol=1e-4)


def test_fori_loop_with_traced_bounds_grads():
    tg.check_grads(fori_traced_bounds, (0.8, np.int64(2), np.int64(6)), order=2, modes=("fwd", "rev"))
    tg.check_grads(lambda w: fori_traced_bounds(w, np.int64(0), np.int64(3)), (1.1,), order=2)


def test_scan_grads_first_and_second_order_with_pytree_carry_and_ys():
    w, xs = np.array([0.7, -0.4, 1.3]), rng().standard_normal((5, 3))
    tg.check_grads(scan_fn, (w, xs), order=2, modes=("fwd", "rev"))


def test_reverse_scan_grads():
    def f(w, xs):
        c, ys = tg.scan(lambda c, x: (np.sin(c * x + w), c * w), np.ones(2), xs, reverse=True)
        return np.sum(c) + np.sum(ys ** 2)
    tg.check_grads(f, (0.3, rng(1).standard_normal((4, 2))), order=2)


def test_while_loop_with_value_dependent_trip_count_grads():
    for p in (0.3, 0.45, 0.8):
        n = growth_ref(p, 1.0)[1]
        assert n >= 2
        tg.check_grads(growth, (p, 1.0), order=2, modes=("fwd", "rev"), rtol=1e-4)
    # the gradient reflects the trip count at the evaluation point
    g1 = tg.grad(growth)(0.3, 1.0)
    g2 = tg.grad(growth)(0.8, 1.0)
    assert growth_ref(0.3, 1.0)[1] != growth_ref(0.8, 1.0)[1] and g1 != g2


def test_while_loop_with_array_carry_and_captured_params():
    def f(w, x):
        def body(s):
            x, t = s
            return np.tanh(x * w) + 0.5, t + 0.25
        x, t = tg.while_loop(lambda s: s[1] < np.sum(w * w), body, (x, 0.0))   # 8 or 9 trips
        return np.sum(x * x) + t
    tg.check_grads(f, (np.array([0.9, 1.1]), np.array([0.1, -0.2])), order=2, modes=("fwd", "rev"))


def test_cond_grads_both_branches_and_inside_loop():
    x, y = np.array([0.5, -0.1]), np.array([2.0, 3.0])
    tg.check_grads(branchy, (x, y), order=2)
    tg.check_grads(branchy, (-x, y), order=2)
    tg.check_grads(cond_in_loop, (np.array([0.2, 0.9]),), order=2)


def test_checkpoint_grads_top_level_and_in_loop():
    w, x = 0.8, np.array([0.3, -0.5, 1.0])
    tg.check_grads(lambda w, x: np.sum(tg.checkpoint(layers)(w, x)), (w, x), order=2)
    tg.check_grads(lambda w, x: deep_loop(w, x, True), (w, x), order=2)


# ---------------------------------------------------------------- nesting

def test_loop_inside_loop():
    def f(w):
        def outer(i, c):
            return tg.fori_loop(0, 3, lambda j, d: np.sin(d * w) + 0.1 * i * j, c)
        return np.sum(tg.fori_loop(0, 4, outer, w * 0.5))
    tg.check_grads(f, (np.array([0.7, 1.3]),), order=2)


def test_triangular_loops_and_grad_of_a_loop_inside_a_loop_body():
    def tri(w):      # inner trip count = outer index: residuals of run-time length inside a body
        def outer(i, c):
            return tg.fori_loop(0, i, lambda j, d: np.sin(d * w) + 0.1 * j, c)
        return np.sum(tg.fori_loop(0, 5, outer, w * 0.5) ** 2)
    tg.check_grads(tri, (np.array([0.7, 1.3]),), order=2)

    def inner_loss(w):
        return np.sum(tg.fori_loop(0, 3, lambda i, c: np.tanh(c * w), w) ** 2)

    def train(w0):
        return np.sum(tg.fori_loop(0, 4, lambda i, w: w - 0.3 * tg.grad(inner_loss)(w), w0) ** 2)
    tg.check_grads(train, (np.array([0.5, -0.4]),), order=2)


def test_grad_inside_a_loop_body_and_differentiated_again():
    def inner_loss(w, t):
        return np.sum((np.tanh(w) - t) ** 2)

    def train(t):
        return tg.fori_loop(0, 5, lambda i, w: w - 0.5 * tg.grad(inner_loss)(w, t), np.zeros(2))

    w = tg.jit(train)(np.array([0.3, -0.2]))
    ref = np.zeros(2)
    for _ in range(5):
        ref = ref - 0.5 * 2 * (np.tanh(ref) - np.array([0.3, -0.2])) * (1 - np.tanh(ref) ** 2)
    np.testing.assert_allclose(w, ref, rtol=1e-12)
    tg.check_grads(lambda t: np.sum(train(t) ** 2), (np.array([0.3, -0.2]),), order=2)


def test_loop_inside_grad_inside_jit_and_hessian():
    p, x0, v0 = np.array([2.0, 0.3]), np.linspace(-1, 1, 4), 0.1 * np.ones(4)
    step = tg.jit(lambda p: p - 0.1 * tg.grad(pendulum)(p, x0, v0))
    g = tg.grad(pendulum)(p, x0, v0)
    np.testing.assert_allclose(step(p), p - 0.1 * g, rtol=1e-12)
    h = tg.hessian(pendulum)(p, x0, v0)
    eps = 1e-5
    fd = np.stack([(tg.grad(pendulum)(p + eps * e, x0, v0) - tg.grad(pendulum)(p - eps * e, x0, v0))
                   / (2 * eps) for e in np.eye(2)])
    np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(h, h.T, rtol=1e-10)
    h2 = tg.jacrev(tg.jacrev(lambda p: pendulum(p, x0, v0)))(p)
    np.testing.assert_allclose(h2, h, rtol=1e-10)


def test_while_inside_scan_and_cond_inside_while():
    def f(w, xs):
        def step(c, x):
            def body(s):
                y, n = s
                y = tg.cond(y > 0.5, lambda y: y * 0.5, lambda y: y + w, y)
                return y * (1.0 + 0.1 * x), n + 1
            y, _ = tg.while_loop(lambda s: s[1] < 3, body, (c, 0))
            return y, y * x
        c, ys = tg.scan(step, 0.2, xs)
        return c + np.sum(ys)
    tg.check_grads(f, (0.3, np.array([0.4, -0.3, 0.8])), order=2)


# ---------------------------------------------------------------- eager vs interpreter

@pytest.mark.parametrize("name", ["fori", "fori_traced", "scan", "while", "cond", "checkpoint"])
def test_eager_agrees_with_interpreter(name):
    cases = {
        "fori": (pendulum, (np.array([2.0, 0.3]), np.linspace(-1, 1, 4), 0.1 * np.ones(4))),
        "fori_traced": (lambda w, n: fori_traced_bounds(w, np.int64(1), n), (0.8, np.int64(5))),
        "scan": (scan_fn, (np.array([0.7, -0.4, 1.3]), rng().standard_normal((5, 3)))),
        "while": (growth, (0.3, 1.0)),
        "cond": (cond_in_loop, (np.array([0.2, 0.9]),)),
        "checkpoint": (lambda w, x: deep_loop(w, x, True), (0.8, np.array([0.3, -0.5, 1.0]))),
    }
    f, args = cases[name]
    vg = tg.value_and_grad(f)
    v1, g1 = vg(*args)
    with tg.eager():
        v2, g2 = vg(*args)
        h2 = tg.grad(lambda *a: np.sum(tg.grad(f)(*a) ** 2))(*args)
    h1 = tg.grad(lambda *a: np.sum(tg.grad(f)(*a) ** 2))(*args)
    np.testing.assert_allclose(v1, v2, rtol=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-13)
    np.testing.assert_allclose(h1, h2, rtol=1e-12)


def test_steps_expand_loop_bodies_with_iteration_and_values():
    def f(x):
        return np.sum(tg.fori_loop(0, 3, lambda i, c: np.sin(c) * 2.0, x))
    line = lineno(f, 1)
    x = np.array([0.5, 1.0])
    steps = list(tg.debug.steps(f, x))
    fwd_sin = [s for s in steps if s.primitive == "sin" and s.where.startswith("scan")]
    assert [s.where for s in fwd_sin] == ["scan i=0", "scan i=1", "scan i=2"]
    assert all(s.source.endswith(f"{HERE}{line}") for s in fwd_sin)
    c = x
    for s in fwd_sin:
        np.testing.assert_allclose(s.inputs[0], c)
        c = np.sin(c) * 2.0
    scans = [s for s in steps if s.primitive == "scan"]
    assert [s.phase for s in scans] == ["forward", "backward"]
    bwd_body = [s for s in steps[scans[0].index + 1:scans[1].index] if s.where]
    assert bwd_body and all(s.phase == "backward" for s in bwd_body)
    assert bwd_body[0].where == "scan i=2" and bwd_body[-1].where == "scan i=0"   # in reverse
    assert "scan i=1" in str(fwd_sin[1])


def test_anomaly_inside_a_loop_body_names_the_body_line():
    def f(x):
        return np.sum(tg.fori_loop(0, 3, lambda i, c: np.log(c - 1.0), x))
    line = lineno(f, 1)
    for mode in ("eager", "interpret"):
        with tg.detect_anomaly(), tg.eager(mode == "eager"), np.errstate(invalid="ignore"):
            with pytest.raises(tg.AnomalyError) as ei:
                tg.grad(f)(np.array([3.0, 1.5]))
        assert ei.value.primitive == "log" and ei.value.source.endswith(f"{HERE}{line}")


# ---------------------------------------------------------------- IR: one equation, traced once

def pend_loss(p, x0, v0, steps):
    k, c = p[0], p[1]

    def step(i, s):
        x, v = s
        a = -k * np.sin(x) - c * v
        return x + 0.01 * v, v + 0.01 * a
    x, _ = tg.fori_loop(0, steps, step, (x0, v0))
    return np.sum((x - 0.5) ** 2)


def test_ir_size_and_tracing_do_not_depend_on_trip_count():
    p, x0, v0 = np.array([2.0, 0.3]), np.linspace(-1, 1, 64), np.zeros(64)
    irs, times = {}, {}
    for steps in (50, 5000):
        make = tg.make_ir(tg.grad(pend_loss), static_argnums=(3,))
        t0 = time.perf_counter()
        irs[steps] = make(p, x0, v0, steps)
        times[steps] = time.perf_counter() - t0
        tg.verify(irs[steps])
    a, b = str(irs[50]), str(irs[5000])
    assert a.replace("length=50", "length=5000").replace("f64[50,", "f64[5000,") == b
    assert len(irs[50].eqns) < 40
    assert times[5000] < 10 * times[50] + 0.05


def test_printed_ir_of_grad_through_fori_loop():
    p, x0, v0 = np.array([2.0, 0.3]), np.linspace(-1, 1, 4), np.zeros(4)
    text = tg.jit(tg.grad(pend_loss), static_argnums=(3,)).ir(p, x0, v0, 500)
    assert text.count("= scan[body=") == 2
    assert "reverse=False, saved=3]" in text and "reverse=True, saved=0]" in text
    assert "f64[500,4]" in text
    assert f"# {HERE}{lineno(pend_loss, 7)}" in text            # body lines keep the user's source


def test_while_records_trip_count_only_when_differentiated():
    fwd = tg.make_ir(lambda p: growth(p, 1.0))(0.3)
    (w,) = [e for e in fwd.eqns if e.prim.name == "while"]
    assert w.params["record"] is False and len(w.outs) == 2
    ir = tg.make_ir(tg.grad(lambda p: growth(p, 1.0)))(0.3)
    (w,) = [e for e in ir.eqns if e.prim.name == "while"]
    assert w.params["record"] is True and str(w.outs[2].aval) == "i64[]"
    assert all(v.aval.shape[0] == -1 for v in w.outs[3:])
    (s,) = [e for e in ir.eqns if e.prim.name == "scan"]
    assert s.params["length"] is None and s.inputs[0] is w.outs[2] and s.params["reverse"]
    tg.verify(ir)


def _scopes(ir, out):
    """The variables of each distinct (sub-)IR. The same sub-IR object may be held by several
    equations (a replayed equation keeps its params): it is then one scope, used twice."""
    if any(ir is seen for seen, _ in out):
        return out
    out.append((ir, set(ir.inputs) | {v for e in ir.eqns for v in e.outs}))
    for e in ir.eqns:
        for p in e.params.values():
            for sub in (p if isinstance(p, tuple) else (p,)):
                if isinstance(sub, tg.IR):
                    _scopes(sub, out)
    return out


def test_sub_irs_are_closed_and_share_no_variables():
    p, x0, v0 = np.array([2.0, 0.3]), np.linspace(-1, 1, 4), 0.1 * np.ones(4)
    irs = [tg.make_ir(tg.hessian(pendulum))(p, x0, v0),
           tg.make_ir(tg.hessian(lambda p: growth(p[0], p[1])))(np.array([0.3, 1.0])),
           tg.make_ir(tg.hessian(lambda x: branchy(x, x)))(np.array([0.5, -0.1])),
           tg.make_ir(tg.jacfwd(tg.grad(lambda w: deep_loop(w, x0, True))))(0.8)]
    for ir in irs:
        tg.verify(ir)
        scopes = _scopes(ir, [])
        assert len(scopes) >= 3      # (Jacobians are one batched pass: one copy of each body)
        seen = set()
        for _, sc in scopes:
            assert not (sc & seen)
            seen |= sc
        for sub_scope_ir in [e.params.get("body") for e in ir.eqns if "body" in e.params]:
            assert not sub_scope_ir.consts


# ---------------------------------------------------------------- checkpoint saves less

def test_checkpoint_stores_fewer_intermediates():
    w, x = 0.8, rng(3).standard_normal(100)

    def saved_bytes(checkpointed):
        ir = tg.make_ir(tg.grad(lambda w, x: deep_loop(w, x, checkpointed)))(w, x)
        return sum(a.size * a.dtype.itemsize for a in cf.saved_residuals(ir))
    plain, ckpt = saved_bytes(False), saved_bytes(True)
    assert ckpt == 5 * 100 * 8                  # only each iteration's input
    assert plain >= 4 * ckpt                    # every layer's activations
    g1 = tg.grad(lambda w, x: deep_loop(w, x, False))(w, x)
    g2 = tg.grad(lambda w, x: deep_loop(w, x, True))(w, x)
    np.testing.assert_allclose(g1, g2, rtol=1e-12)


# ---------------------------------------------------------------- errors name the user's line

def _raises(exc, fn, *args):
    with pytest.raises(exc) as ei:
        fn(*args)
    return str(ei.value)


def test_carry_structure_shape_and_dtype_errors():
    def bad_structure(x):
        return tg.fori_loop(0, 3, lambda i, c: (c, c), x)

    def bad_shape(x):
        return tg.fori_loop(0, 3, lambda i, c: c[1:], x)

    def grow(c):
        return np.concatenate([c, c])

    def bad_shape_while(x):
        return tg.while_loop(lambda c: np.sum(c) < 10, grow, x)

    def bad_dtype(x):
        return tg.fori_loop(0, 3, lambda i, c: c.astype(np.float32), x)

    def bad_scan_carry(x):
        return tg.scan(lambda c, x: ({"a": c}, x), x, np.ones((2, 3)))

    cases = [(bad_structure, TypeError, "structure"), (bad_shape, ValueError, "shape"),
             (bad_shape_while, ValueError, "shape"), (bad_dtype, TypeError, "dtype"),
             (bad_scan_carry, TypeError, "structure")]
    for fn, exc, word in cases:
        for run in (tg.jit(fn), tg.grad(lambda x: np.sum(fn(x)))):
            msg = _raises(exc, run, np.ones(3))
            assert word in msg and f"{HERE}{lineno(fn, 1)}" in msg, msg
    msg = _raises(ValueError, tg.jit(bad_shape_while), np.ones(3))
    assert f"'grow' (defined at {__file__}:{lineno(grow)})" in msg and "f64[3]" in msg and "f64[6]" in msg
    with tg.eager():
        msg = _raises(TypeError, tg.jit(bad_dtype), np.ones(3))
    assert "f64[3]" in msg and "f32[3]" in msg and f"{HERE}{lineno(bad_dtype, 1)}" in msg


def test_cond_branch_mismatch_errors():
    def shapes(x):
        return tg.cond(x[0] > 0, lambda a: a, lambda a: a[:2], x)

    def dtypes(x):
        return tg.cond(x[0] > 0, lambda a: a, lambda a: a.astype(np.float32), x)

    def structure(x):
        return tg.cond(x[0] > 0, lambda a: (a, a), lambda a: a, x)

    for fn, exc in ((shapes, TypeError), (dtypes, TypeError), (structure, TypeError)):
        msg = _raises(exc, tg.jit(fn), np.ones(3))
        assert "true_fun" in msg and "false_fun" in msg and f"{HERE}{lineno(fn, 1)}" in msg, msg
    msg = _raises(TypeError, tg.jit(shapes), np.ones(3))
    assert "f64[3]" in msg and "f64[2]" in msg
    # a Python scalar in one branch takes the other branch's dtype (weak typing)
    out = tg.jit(lambda x: tg.cond(x[0] > 0, lambda a: np.sum(a), lambda a: 0.0, x))(np.ones(3, np.float32))
    assert out.dtype == np.float32


def test_other_misuse_errors():
    def no_pair(x):
        return tg.scan(lambda c, x: c + x, x, np.ones((2, 3)))

    def no_length(x):
        return tg.scan(lambda c, x: (c, x), x, None)

    def bad_len(x):
        return tg.scan(lambda c, x: (c, x), x, np.ones((2, 3)), length=3)

    def non_bool_cond(x):
        return tg.while_loop(lambda c: np.sum(c), lambda c: c * 2, x)

    def float_bounds(x):
        return tg.fori_loop(0, np.sum(x), lambda i, c: c, x)

    def vector_pred(x):
        return tg.cond(x > 0, lambda a: a, lambda a: -a, x)

    for fn, exc, word in ((no_pair, TypeError, "pair"), (no_length, ValueError, "length"),
                          (bad_len, ValueError, "length"), (non_bool_cond, TypeError, "bool"),
                          (float_bounds, TypeError, "integer"), (vector_pred, TypeError, "scalar")):
        msg = _raises(exc, tg.jit(fn), np.ones(3))
        assert word in msg and f"{HERE}{lineno(fn, 1)}" in msg, msg


def test_python_if_in_a_loop_body_suggests_cond():
    def f(x):
        def body(i, c):
            if c[0] > 0:                 # traced even in eager mode: bodies are traced once
                return c
            return -c
        return tg.fori_loop(0, 2, body, x)
    line = lineno(f, 2)
    for eager in (False, True):
        with tg.eager(eager):
            msg = _raises(tg.TracerError, tg.jit(f), np.ones(3))
        assert f"{HERE}{line}" in msg and "tg.cond" in msg and "traced once" in msg


# ---------------------------------------------------------------- the example

def test_fit_pendulum_example_recovers_the_parameters():
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "fit_pendulum.py"
    spec = importlib.util.spec_from_file_location("_example_fit_pendulum", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(iters=100, verbose=False)
    assert abs(res["k"] - mod.TRUE_K) < 0.01 * mod.TRUE_K, res["k"]
    assert abs(res["c"] - mod.TRUE_C) < 0.01 * mod.TRUE_C, res["c"]
    assert res["history"][-1] < 0.01 * res["history"][0]
