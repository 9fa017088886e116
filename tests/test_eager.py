"""Eager mode, the step debugger and anomaly detection in eager mode."""
import sys

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp


def loss(w, x):
    h = np.tanh(x @ w)
    if np.sum(h) > 0:          # Python control flow on values: eager only
        h = h * 2
    return np.mean(h ** 2)


W = np.random.default_rng(1).standard_normal((3, 2))
X = np.random.default_rng(2).standard_normal((4, 3))


def test_eager_context_matches_traced_and_allows_python_if():
    with tg.eager():
        g = tg.grad(loss)(W, X)
    hval = np.tanh(X @ W)
    scale = 2 if hval.sum() > 0 else 1
    static = tg.grad(lambda w, x: np.mean((np.tanh(x @ w) * scale) ** 2))(W, X)
    np.testing.assert_allclose(g, static, rtol=1e-12)
    with pytest.raises(tg.TracerError):
        tg.jit(tg.grad(loss))(W, X)
    # without an explicit tg.jit, the implicit compilation falls back to eager mode, with a warning
    with pytest.warns(tg.EagerFallbackWarning, match=r"test_eager.py:\d+"):
        np.testing.assert_allclose(tg.grad(loss)(W, X), static, rtol=1e-12)


def test_eager_decorator_forms_and_env_var(monkeypatch):
    @tg.eager
    def bare():
        return tg.grad(loss)(W, X)

    @tg.eager()
    def called():
        return tg.grad(loss)(W, X)
    np.testing.assert_allclose(bare(), called())
    monkeypatch.setenv("TRACEGRAD_EAGER", "1")
    np.testing.assert_allclose(tg.grad(loss)(W, X), bare())
    np.testing.assert_allclose(tg.jit(loss)(W, X), loss(W, X))


def test_print_shows_values(capsys):
    def f(x):
        y = np.sin(x)
        print("y =", y)
        print(f"{y[0]:.3f}")
        return np.sum(y)
    with tg.eager():
        tg.grad(f)(np.array([0.5, 1.0]))
    out = capsys.readouterr().out
    assert "y = [0.47942554 0.84147098]" in out
    assert "0.479" in out


def test_breakpoint_sees_concrete_values(monkeypatch):
    seen = {}

    def hook(*a, **k):
        frame = sys._getframe(1)
        seen["h"] = np.asarray(frame.f_locals["h"].value)
    monkeypatch.setattr(sys, "breakpointhook", hook)

    def f(w):
        h = np.exp(w)
        breakpoint()
        return np.sum(h)
    with tg.eager():
        tg.grad(f)(np.array([0.0, 1.0]))
    np.testing.assert_allclose(seen["h"], np.exp([0.0, 1.0]))


def test_steps_yields_forward_then_backward_in_order_with_values():
    def f(x):
        y = np.sin(x)
        return np.sum(y * x)
    line = f.__code__.co_firstlineno
    x = np.array([1.0, 2.0])
    steps = list(tg.debug.steps(f, x))
    phases = [s.phase for s in steps]
    assert phases == sorted(phases, key=lambda p: p != "forward")   # forward block first
    fwd = [s for s in steps if s.phase == "forward"]
    assert [s.primitive for s in fwd] == ["sin", "mul", "reduce_sum"]
    np.testing.assert_allclose(fwd[0].outputs[0], np.sin(x))
    assert fwd[0].source.endswith(f"test_eager.py:{line + 1}")
    bwd = [s for s in steps if s.phase == "backward"]
    assert bwd and all(s.forward_source for s in bwd)
    cos_step = [s for s in bwd if s.primitive == "cos"][0]
    assert cos_step.forward_source.endswith(f"test_eager.py:{line + 1}")
    # the last backward step computes the gradient: sin(x) + x cos(x)
    np.testing.assert_allclose(bwd[-1].outputs[0], np.sin(x) + x * np.cos(x))
    assert "sin" in str(steps[0]) and "backward" in str(steps[-1])


def test_steps_of_non_scalar_function_is_forward_only():
    steps = list(tg.debug.steps(lambda x: x * 2, np.ones(2)))
    assert [s.phase for s in steps] == ["forward"]


def nan_forward(x):
    y = np.log(x - 1.0)      # x == 1 -> -inf
    return np.sum(y)


def inf_backward(x):
    y = np.sqrt(x)           # d/dx at 0 is inf
    return np.sum(y)


def test_anomaly_forward_fields():
    line = nan_forward.__code__.co_firstlineno + 1
    with tg.eager(), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as ei:
            tg.grad(nan_forward)(np.array([1.0, 2.0]))
    e = ei.value
    assert (e.primitive, e.phase, e.forward_source) == ("log", "forward", None)
    assert e.source.endswith(f"test_eager.py:{line}")
    assert "log" in str(e) and f"test_eager.py:{line}" in str(e)
    assert isinstance(e, FloatingPointError)


def test_anomaly_backward_fields_name_forward_line():
    line = inf_backward.__code__.co_firstlineno + 1
    with tg.eager(), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as ei:
            tg.grad(inf_backward)(np.array([0.0, 2.0]))
    e = ei.value
    assert e.phase == "backward" and e.primitive == "div"
    assert e.forward_source.endswith(f"test_eager.py:{line}")
    assert e.source.endswith(f"test_eager.py:{line}")
    assert "backward" in str(e) and "derivative of the forward op" in str(e)


def test_anomaly_env_var_and_interpreter(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_DEBUG_NANS", "1")
    with pytest.raises(tg.AnomalyError) as ei:
        tg.grad(nan_forward)(np.array([1.0, 2.0]))
    assert ei.value.primitive == "log"


def test_no_anomaly_without_flag_returns_inf():
    with np.errstate(divide="ignore"):
        g = tg.grad(inf_backward)(np.array([0.0, 2.0]))
    assert np.isinf(g[0])


def test_tnp_on_plain_arrays_is_numpy():
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    for name in ("sin", "exp", "tanh", "abs"):
        a, b = getattr(tnp, name)(x), getattr(np, name)(x)
        assert type(a) is type(b) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert tnp.sum(x) == np.sum(x) and type(tnp.sum(x)) is type(np.sum(x))
    assert tnp.float32 is np.float32 and tnp.pi == np.pi and tnp.newaxis is None


@pytest.mark.parametrize("loop", ["fori_loop", "while_loop"])
def test_eager_gradient_through_a_loop_runs_the_forward_loop_once(loop):
    """The forward loop saves its residuals as it runs; its VJP must not run it a second time."""
    calls = []

    def count(i):
        calls.append(int(i))
        return np.zeros((), np.float64)

    def body_value(i, c):
        tick = tg.pure_callback(count, tg.ShapeDtypeStruct((), np.float64), i)
        return np.sin(c) * 1.5 + tick

    def f(x):
        if loop == "fori_loop":
            return np.sum(tg.fori_loop(0, 4, body_value, x))
        _, c = tg.while_loop(lambda s: s[0] < 4, lambda s: (s[0] + 1, body_value(s[0], s[1])), (0, x))
        return np.sum(c)

    x = np.array([0.3, -0.8])
    with tg.eager():
        g = tg.grad(f)(x)
    assert calls == [0, 1, 2, 3]
    c, dc = x, np.ones_like(x)
    for _ in range(4):
        c, dc = np.sin(c) * 1.5, dc * np.cos(c) * 1.5
    np.testing.assert_allclose(g, dc, rtol=1e-12)
