"""Transforms written where they are used: one trace per function (by what the function is, not by
which Python object holds it), never stale, nothing kept alive; and top-level vjp/jvp reuse."""
import collections
import gc
import sys
import weakref

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import trace_cache

X = np.linspace(-1.0, 1.0, 5)
TABLE = np.array([1.0, 2.0, 3.0, 4.0, 5.0])       # rebound by a test (monkeypatch)
SCALE = 2.0
traces = collections.Counter()                     # a library object: keyed by identity only

both_tiers = pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.compiled)])


def h(x):
    traces["h"] += 1
    return np.sum(np.sin(x) * x)


def dh(x):
    return np.cos(x) * x + np.sin(x)


def uses_table(x):
    return np.sum(TABLE * np.sin(x) * SCALE)


def test_inline_grad_and_fresh_lambdas_share_one_trace():
    before = traces["h"]
    for _ in range(3):
        np.testing.assert_allclose(tg.grad(h)(X), dh(X), rtol=1e-13)
    for _ in range(3):
        np.testing.assert_allclose(tg.grad(lambda z: h(z))(X), dh(X), rtol=1e-13)
    assert traces["h"] - before == 2          # one trace of grad(h), one of grad(lambda z: h(z))
    g = tg.grad(h)
    g(X)
    assert g.cache_info().hits == 1 and g.cache_info().misses == 0


def test_transform_options_are_part_of_the_key():
    f = lambda a, b: np.sum(a * b ** 2)       # noqa: E731
    a, b = np.ones(3), np.full(3, 2.0)
    np.testing.assert_allclose(tg.grad(f)(a, b), b ** 2)
    np.testing.assert_allclose(tg.grad(f, argnums=1)(a, b), 2 * a * b)
    v, g = tg.value_and_grad(f)(a, b)
    assert v == 12.0
    np.testing.assert_allclose(g, b ** 2)


def test_a_function_counting_its_traces_is_traced_once():
    calls = []

    def f(x):
        calls.append(1)              # changes what f closes over, but only while it is traced
        return np.sum(x * 3.0)
    jf = tg.jit(f)
    for _ in range(3):
        jf(X)
    assert len(calls) == 1


@both_tiers
def test_closed_over_array_mutated_in_place_is_read_at_call_time(compiled):
    W = np.array([1.0, 2.0, 3.0, 4.0, 5.0])

    def loss(x):
        return np.sum((W.T * 2.0) * np.sin(x))       # plain NumPy on W inside: recorded too
    g = tg.grad(loss)
    np.testing.assert_allclose(g(X), 2 * W * np.cos(X), rtol=1e-13)
    W[:] = [5.0, -1.0, 0.5, 2.0, 0.0]
    np.testing.assert_allclose(g(X), 2 * W * np.cos(X), rtol=1e-13)
    np.testing.assert_allclose(tg.grad(loss)(X), 2 * W * np.cos(X), rtol=1e-13)
    W[:] = 0.0                                   # zeros: never simplified away as constants
    np.testing.assert_allclose(tg.jit(loss)(X), 0.0)
    W[:] = 1.0
    np.testing.assert_allclose(tg.jit(loss)(X), 2 * np.sum(np.sin(X)), rtol=1e-13)


@both_tiers
def test_rebound_closure_variables(compiled):
    W, k = np.ones(5), 2.0

    def loss(x):
        return np.sum(W * x ** 2) * k
    g = tg.grad(loss)
    np.testing.assert_allclose(g(X), 2 * X * 2.0, rtol=1e-13)
    W = np.full(5, 3.0)                          # another array object in the cell
    np.testing.assert_allclose(g(X), 2 * 3.0 * X * 2.0, rtol=1e-13)
    k = -1.5                                     # another Python scalar
    np.testing.assert_allclose(g(X), 2 * 3.0 * X * -1.5, rtol=1e-13)
    W = np.full(5, 3.0, np.float32)              # another dtype: another trace
    assert g(X).dtype == np.float64
    np.testing.assert_allclose(g(X), 2 * 3.0 * X * -1.5, rtol=1e-6)


@both_tiers
def test_rebound_globals(compiled, monkeypatch):
    mod = sys.modules[__name__]
    g = tg.grad(uses_table)
    np.testing.assert_allclose(g(X), TABLE * np.cos(X) * 2.0, rtol=1e-13)
    monkeypatch.setattr(mod, "TABLE", np.array([0.5, 0.0, -1.0, 7.0, 1.0]))
    np.testing.assert_allclose(g(X), mod.TABLE * np.cos(X) * 2.0, rtol=1e-13)
    np.testing.assert_allclose(tg.grad(uses_table)(X), mod.TABLE * np.cos(X) * 2.0, rtol=1e-13)
    monkeypatch.setattr(mod, "SCALE", 3.0)
    np.testing.assert_allclose(g(X), mod.TABLE * np.cos(X) * 3.0, rtol=1e-13)


class Scaled:
    def __init__(self, w, k):
        self.w, self.k = w, k

    def loss(self, x):
        return np.sum(self.w * np.sin(x)) * self.k


def make_loss(obj):
    return lambda x: obj.loss(x)                    # the same line makes every one of them


@both_tiers
def test_different_objects_in_a_cell_and_rebound_attributes(compiled):
    a, b = Scaled(np.ones(5), 1.0), Scaled(np.arange(5.0), 2.0)
    np.testing.assert_allclose(tg.grad(make_loss(a))(X), np.cos(X), rtol=1e-13)
    np.testing.assert_allclose(tg.grad(make_loss(b))(X), 2 * np.arange(5.0) * np.cos(X), rtol=1e-13)
    g = tg.grad(a.loss)                             # a bound method
    a.w = np.full(5, -2.0)
    a.k = 0.5
    np.testing.assert_allclose(g(X), -1.0 * np.cos(X), rtol=1e-13)
    np.testing.assert_allclose(tg.grad(make_loss(a))(X), -1.0 * np.cos(X), rtol=1e-13)


def test_arrays_in_containers_and_aliasing():
    params = {"w": np.ones(5), "b": [np.zeros(5), 2.0]}
    f = lambda x: np.sum(params["w"] * x ** 2 + params["b"][0] * x) * params["b"][1]   # noqa: E731
    np.testing.assert_allclose(tg.grad(f)(X), (2 * X) * 2.0, rtol=1e-13)
    params["b"][0][:] = 1.0
    np.testing.assert_allclose(tg.grad(f)(X), (2 * X + 1) * 2.0, rtol=1e-13)
    params["w"] = np.full(5, 3.0)
    np.testing.assert_allclose(tg.grad(f)(X), (6 * X + 1) * 2.0, rtol=1e-13)
    # the same array in two cells when first traced, different arrays later
    u = np.ones(5)
    v = u
    g = lambda x: np.sum(u * x) + np.sum(v * x ** 2)                          # noqa: E731
    np.testing.assert_allclose(tg.grad(g)(X), 1 + 2 * X, rtol=1e-13)
    v = np.full(5, 4.0)
    np.testing.assert_allclose(tg.grad(g)(X), 1 + 8 * X, rtol=1e-13)


def test_arrays_needed_while_tracing_are_constants_checked_at_every_call():
    counts = np.array([2, 0])

    def f(x):
        n = int(counts[0])                          # a value needed while tracing
        return np.sum(x[:n] ** 2)
    g = tg.grad(f)
    np.testing.assert_allclose(g(X), [2 * X[0], 2 * X[1], 0, 0, 0])
    counts[0] = 4
    np.testing.assert_allclose(g(X), [2 * X[0], 2 * X[1], 2 * X[2], 2 * X[3], 0])
    assert "closed-over arrays changed" in g.cache_info().reasons[-1]


def test_freeze_closure_bakes_arrays_in():
    W = np.ones(5)
    f = tg.jit(lambda x: np.sum(W * x), freeze_closure=True)
    assert f(X) == np.sum(X)
    W[:] = 2.0                                      # frozen: not seen
    assert f(X) == np.sum(X)
    W = np.full(5, 3.0)                             # rebound: another constant
    np.testing.assert_allclose(f(X), 3 * np.sum(X))
    ir = tg.make_ir(f)(X)
    assert len(ir.consts) == 1 and ir.consts[0][1] is W


def test_callbacks_keep_their_own_closure():
    def make(log):
        def f(x):
            y = tg.pure_callback(lambda v: (log.append(float(v)), v)[1],
                                 tg.ShapeDtypeStruct((), np.float64), np.sum(x))
            return y * 2.0
        return f
    log1, log2 = [], []
    assert tg.jit(make(log1))(X) == 2 * np.sum(X)
    assert tg.jit(make(log2))(X) == 2 * np.sum(X)
    assert len(log1) == 1 and len(log2) == 1


def _new_entries(before):
    return [e for e in trace_cache.ENTRIES.values() if id(e) not in before]


def test_cache_entries_go_with_the_function_and_its_closure_objects():
    before = {id(e) for e in trace_cache.ENTRIES.values()}
    ns = {"np": np}
    exec(compile("def loss(x):\n    return np.sum(W * np.sin(x))\n", "<generated>", "exec"), ns)
    ns["W"] = np.ones(5)
    np.testing.assert_allclose(tg.grad(ns["loss"])(X), np.cos(X), rtol=1e-13)
    refs = [weakref.ref(e) for e in _new_entries(before)]
    assert refs
    del ns
    gc.collect()
    assert all(r() is None for r in refs)

    class Model:                                  # identity-keyed through the cell
        scale = 3.0
    m = Model()
    f = lambda x: np.sum(x) * m.scale               # noqa: E731
    before = {id(e) for e in trace_cache.ENTRIES.values()}
    assert tg.grad(f)(X)[0] == 3.0
    refs = [weakref.ref(e) for e in _new_entries(before)]
    assert refs
    del m
    gc.collect()
    assert all(r() is None for r in refs)


# ---------------------------------------------------------------- vjp and jvp at the top level

def rk4ish(y, p):
    return y + 0.1 * np.tanh(p["w"] @ y + p["b"])


@both_tiers
def test_vjp_per_step_reuses_its_traces_and_matches_finite_differences(compiled):
    rng = np.random.default_rng(1)
    p = {"w": rng.standard_normal((3, 3)) * 0.5, "b": rng.standard_normal(3)}
    y0 = rng.standard_normal(3)
    ct = rng.standard_normal(3)
    before = {id(e) for e in trace_cache.ENTRIES.values()}
    y, pbs = y0, []
    for _ in range(4):
        y, pb = tg.vjp(rk4ish, y, p)
        pbs.append(pb)
    assert len({id(e) for e in _new_entries(before)}) == 1     # one (forward, pullback) entry
    c, gw = ct, np.zeros((3, 3))
    for pb in reversed(pbs):
        c, gp = pb(c)
        gw += gp["w"]

    def final(w):
        q, yy = dict(p, w=w), y0
        for _ in range(4):
            yy = rk4ish(yy, q)
        return ct @ yy
    eps = 1e-6
    num = np.zeros((3, 3))
    for idx in np.ndindex(3, 3):
        d = np.zeros((3, 3))
        d[idx] = eps
        num[idx] = (final(p["w"] + d) - final(p["w"] - d)) / (2 * eps)
    np.testing.assert_allclose(gw, num, rtol=1e-6, atol=1e-9)
    y1, pb1 = tg.vjp(rk4ish, y0, p)
    with tg.eager():
        y_e, pb_e = tg.vjp(rk4ish, y0, p)
        np.testing.assert_allclose(y_e, y1, rtol=1e-13)
        np.testing.assert_allclose(pb_e(ct)[1]["w"], pb1(ct)[1]["w"], rtol=1e-13)


def test_vjp_pullback_casts_and_checks_cotangents():
    out, pb = tg.vjp(h, X)
    np.testing.assert_allclose(pb(1.0)[0], dh(X), rtol=1e-13)      # a Python float for f64[]
    np.testing.assert_allclose(pb(np.float32(2.0))[0], 2 * dh(X), rtol=1e-6)
    with pytest.raises(ValueError, match="cotangent shape"):
        pb(np.ones(2))
    out, pb, aux = tg.vjp(lambda x: (x * 2.0, np.sum(x)), X, has_aux=True)
    np.testing.assert_allclose(aux, np.sum(X))
    np.testing.assert_allclose(pb(np.ones(5))[0], 2.0 * np.ones(5))
    with pytest.raises(TypeError, match="structure"):
        pb((np.ones(5), np.ones(5)))
    out, pb = tg.vjp(lambda a, n: a * n, X, np.arange(5))      # an int primal: zero cotangent
    ga, gn = pb(np.ones(5))
    np.testing.assert_allclose(ga, np.arange(5.0))
    assert gn.dtype == np.arange(5).dtype and not gn.any()


def test_jvp_inline_reuses_its_trace():
    before = traces["h"]
    for _ in range(3):
        out, t = tg.jvp(h, (X,), (np.ones(5),))
        np.testing.assert_allclose(t, np.sum(dh(X)), rtol=1e-13)
    assert traces["h"] - before == 1


def test_make_ir_shows_closed_over_arrays_as_constants():
    W = np.ones(5)
    ir = tg.make_ir(lambda x: W * x)(X)
    assert len(ir.consts) == 1 and ir.consts[0][1] is W and len(ir.inputs) == 1


def test_in_place_update_of_a_closed_over_array_is_an_error_on_every_path():
    c = np.ones(5)

    def f(x):
        d = c
        d += x                     # would write a traced value into `c`
        return d
    with pytest.raises(TypeError, match="returned value"):
        tg.jit(f)(X)
    with pytest.raises(TypeError, match="returned value"), tg.eager():
        tg.jit(f)(X)
    np.testing.assert_array_equal(c, np.ones(5))


@both_tiers
def test_repeated_calls_take_a_shortcut_that_notices_every_change(compiled, monkeypatch):
    mod = sys.modules[__name__]
    W = np.ones(5)
    g = tg.grad(lambda x: np.sum(W * np.sin(x)) * SCALE + np.sum(TABLE * x))
    want = lambda: W * np.cos(X) * mod.SCALE + mod.TABLE                 # noqa: E731
    for _ in range(4):                                                   # (a shortcut after two)
        np.testing.assert_allclose(g(X), want(), rtol=1e-13)
    assert g._fast is not None
    W[:] = 2.0                                                           # in place
    np.testing.assert_allclose(g(X), want(), rtol=1e-13)
    W = np.full(5, -1.0)                                                 # rebound cell
    np.testing.assert_allclose(g(X), want(), rtol=1e-13)
    monkeypatch.setattr(mod, "TABLE", mod.TABLE * 3)                     # rebound global
    np.testing.assert_allclose(g(X), want(), rtol=1e-13)
    x32 = X.astype(np.float32)                                           # another signature
    assert g(x32).dtype == np.float32
    np.testing.assert_allclose(g(x32), want(), rtol=1e-5)
    with tg.eager():
        np.testing.assert_allclose(g(X), want(), rtol=1e-13)
    with tg.detect_anomaly():
        np.testing.assert_allclose(g(X), want(), rtol=1e-13)
        with pytest.raises(tg.AnomalyError), np.errstate(all="ignore"):
            tg.grad(lambda x: np.sum(np.log(x - 2.0)))(X)
    assert g.cache_info().hits >= 4


@both_tiers
def test_objects_built_per_call_share_a_shortcut_that_notices_every_change(compiled, monkeypatch):
    """`tg.grad(lambda ...)(x)` written inline: a fresh function and transform object per call, one
    shortcut shared through the code object, checked against the new function's own environment."""
    mod = sys.modules[__name__]
    W = np.ones(5)
    c = 1.0

    def make():
        return tg.grad(lambda x: np.sum(W * np.sin(x)) * c + np.sum(TABLE * x))
    step = lambda: make()(X)                                             # noqa: E731
    want = lambda: W * np.cos(X) * c + mod.TABLE                         # noqa: E731
    for _ in range(3):
        np.testing.assert_allclose(step(), want(), rtol=1e-13)
    g = make()
    np.testing.assert_allclose(g(X), want(), rtol=1e-13)
    assert g._fast is not None and g.cache_info().hits == 1              # adopted on its first call
    W[:] = 2.0                                                           # in place
    np.testing.assert_allclose(step(), want(), rtol=1e-13)
    W = np.full(5, -1.0)                                                 # rebound cell
    np.testing.assert_allclose(step(), want(), rtol=1e-13)
    c = 3.0                                                              # a new scalar: a new trace
    np.testing.assert_allclose(step(), want(), rtol=1e-13)
    monkeypatch.setattr(mod, "TABLE", mod.TABLE * 3)                     # rebound global
    np.testing.assert_allclose(step(), want(), rtol=1e-13)
    got = make()(X.astype(np.float32))                                   # another signature
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want(), rtol=1e-5)
    W = [np.full(5, 0.5)]                                                # another structure
    np.testing.assert_allclose(step(), 0.5 * np.cos(X) * c + mod.TABLE, rtol=1e-13)


def test_a_closure_value_changing_every_call_stops_native_compilation(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_COMPILE", "background")
    for k in range(12):
        c = 0.5 + k
        g = tg.grad(lambda x: np.sum(np.sin(x) * c))
        np.testing.assert_allclose(g(X), c * np.cos(X), rtol=1e-13)
    tiers = [(e.tier, e.why) for e in g.cache_info().entries]
    assert len(tiers) == 12
    assert all(t == "interpreted" and "traced 8+ times" in w for t, w in tiers[8:])


def test_a_vjp_whose_closure_changes_every_call_keeps_working():
    # the churn note is set on the vjp's forward/pullback pair too (its `why` was read-only: the
    # ninth trace raised AttributeError); the tests' compile mode is "never"
    for k in range(12):
        c = 0.5 + k
        out, pb = tg.vjp(lambda x: np.sin(x) * c, X)
        np.testing.assert_allclose(pb(np.ones_like(X))[0], c * np.cos(X), rtol=1e-13)


def test_frozen_scalars_are_never_taken_for_another_array():
    # 0-d arrays are baked into the trace as literals under freeze_closure: the entry must go when
    # its array does, so a new array at the same address is a new trace (not the old literal)
    for k in range(50):
        c = np.array(float(k))
        f = tg.jit(lambda x: x / c, freeze_closure=True)
        np.testing.assert_allclose(f(X), X / k if k else X / np.float64(0.0))
        del c, f
