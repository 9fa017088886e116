"""Tiered execution: the interpreter tier answers at once, native code takes over when built.

Each tier gives the same values and errors; switching between calls is invisible except in speed;
a compile that fails, is killed or would exceed its budget leaves the function working on the
interpreter tier with the reason in `cache_info()`.
"""
import os
import signal
import time

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.passes import simplify

import compiler
from compiler import program, workers


def loss(w, x):
    return np.sum(np.tanh(x @ w) ** 2) + np.sum(np.sin(w) * w)


W = np.linspace(-1, 1, 6).reshape(3, 2)
X = np.linspace(0, 1, 12).reshape(4, 3)


def wait_native(cf, timeout=240):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        tiers = [e.tier for e in cf.cache_info().entries]
        if tiers and all(t != "compiling" for t in tiers):
            return tiers
        time.sleep(0.05)
    raise AssertionError(f"still compiling after {timeout} s: {cf.cache_info()}")


def test_never_runs_on_the_interpreter_tier_and_says_why():
    g = tg.jit(tg.grad(loss), compile="never")
    want = tg.grad(loss)(W, X)
    np.testing.assert_allclose(g(W, X), want, rtol=1e-13)
    (e,) = g.cache_info().entries
    assert e.tier == "interpreted" and e.why == "compile='never'" and e.compile_s is None


def test_background_switches_tier_at_a_call_boundary_with_the_same_values(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_COMPILE", "background")
    g = tg.grad(loss)
    first = g(W, X)                                   # answered by the interpreter tier
    assert g.cache_info().entries[0].tier in ("compiling", "interpreted", "native")
    assert wait_native(g) == ["native"]
    (e,) = g.cache_info().entries
    assert e.compile_s > 0 and e.why is None
    np.testing.assert_allclose(g(W, X), first, rtol=1e-12)
    assert g.cache_info().hits == 1 and g.cache_info().misses == 1


@pytest.mark.compiled
def test_lower_compile_returns_native_code():
    cf = tg.jit(loss, compile="never")
    native = cf.lower(W, X).compile()
    np.testing.assert_allclose(native(W, X), loss(W, X), rtol=1e-12)
    assert cf.cache_info().entries[0].tier == "native"
    assert "def kernel(" in cf.source(W, X)
    with pytest.raises(TypeError, match="lowered for other arguments"):
        native(W[:2], X[:, :2])


def test_tiers_raise_the_same_errors():
    def bad(x, idx):
        return np.sum(x[idx])
    x = np.arange(4.0)
    for mode in ("never", "sync"):
        with pytest.raises(IndexError, match="out of bounds"):
            tg.jit(bad, compile=mode)(x, np.array([1, 7]))


def test_anomaly_names_the_same_equation_on_every_tier():
    def f(x):
        y = np.log(x - 1.0)
        return np.sum(y * 2.0)
    found = []
    for mode in ("never", "sync"):
        with tg.detect_anomaly(), np.errstate(all="ignore"), pytest.raises(tg.AnomalyError) as ei:
            tg.jit(tg.grad(f), compile=mode)(np.array([3.0, 0.5]))
        found.append((ei.value.primitive, ei.value.phase, ei.value.source))
    assert found[0] == found[1] and found[0][0] == "log"


def test_a_killed_worker_leaves_the_function_on_the_interpreter_tier(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_COMPILE", "background")
    pool = workers.pool()
    real_submit = pool.submit

    def submit_then_kill(kernel):
        fut = real_submit(kernel)
        for w in list(pool.workers):
            if w.pending:
                os.kill(w.proc.pid, signal.SIGKILL)
        return fut
    monkeypatch.setattr(pool, "submit", submit_then_kill)
    f = tg.jit(lambda x: np.sum(np.cosh(x) * 3.0 + x ** 3))     # a kernel no other test compiles
    x = np.linspace(-1, 1, 7)
    first = f(x)
    assert wait_native(f) == ["interpreted"]
    (e,) = f.cache_info().entries
    assert "worker" in e.why and ("died" in e.why or "stopped" in e.why), e.why
    np.testing.assert_allclose(f(x), first)
    monkeypatch.setattr(pool, "submit", real_submit)            # the pool recovers
    g = tg.jit(lambda x: np.sum(np.cosh(x) * 4.0 + x ** 3), compile="sync")
    np.testing.assert_allclose(g(x), np.sum(np.cosh(x) * 4.0 + x ** 3))
    assert g.cache_info().entries[0].tier == "native"


def test_memory_budget_decision_keeps_an_oversized_kernel_interpreted(monkeypatch):
    monkeypatch.setattr(program, "MAX_KERNEL_LINES", 20)
    g = tg.jit(tg.grad(loss), compile="sync")
    np.testing.assert_allclose(g(W, X), tg.grad(loss)(W, X), rtol=1e-12)
    (e,) = g.cache_info().entries
    assert e.tier == "interpreted" and "compile-memory budget" in e.why


def test_worker_memory_watchdog_stops_a_compile_over_budget(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_COMPILE_MEMORY_MB", "1")      # any compile exceeds 1 MB
    monkeypatch.setenv("TRACEGRAD_COMPILE", "background")
    f = tg.jit(lambda x: np.sum(np.sinh(x) * 5.0 - x))
    x = np.linspace(-1, 1, 5)
    f(x)
    assert wait_native(f) == ["interpreted"]
    assert "memory budget" in f.cache_info().entries[0].why


def python_loop(A, x, n):
    for i in range(n):
        x = np.tanh(A @ x + 0.1 * i)
    return np.sum(x)


@pytest.mark.compiled
def test_large_programs_split_into_kernels_compiled_and_cached_one_by_one(monkeypatch):
    monkeypatch.setattr(program, "MAX_KERNEL_EQNS", 40)
    A = np.linspace(-0.5, 0.5, 16).reshape(4, 4)
    x = np.linspace(0, 1, 4)
    g = tg.grad(lambda A, x: python_loop(A, x, 12))
    ir = tg.make_ir(g)(A, x)
    prog = compiler.prepare(simplify(ir))
    assert len(prog.kernels) >= 3
    assert prog.source.startswith("# A program of") and prog.source.count("def kernel(") == len(prog.kernels)
    want = tg.jit(g, compile="never")(A, x)
    run = prog.load()
    np.testing.assert_allclose(run(A, x)[0], want, rtol=1e-12)


def test_splitting_keeps_every_value_a_later_part_reads():
    A = np.linspace(-0.5, 0.5, 16).reshape(4, 4)
    ir = tg.make_ir(tg.grad(lambda A, x: python_loop(A, x, 9)))(A, np.ones(4))
    for max_eqns in (5, 17, 60):
        parts = program.split(ir, max_eqns)
        assert sum(len(p.eqns) for p, _, _ in parts) == len(ir.eqns)
        defined = set(ir.inputs)
        for part, ins, outs in parts:
            assert set(ins) <= defined
            defined |= set(outs)
        assert all(a in defined for a in ir.outputs if not isinstance(a, tg.ir.Lit))


def test_simplify_removes_identities_and_common_subexpressions():
    def f(x):
        a = np.sin(x) * 1.0 + 0.0
        b = np.sin(x)                      # the same value: computed once
        return np.sum(a * b) + np.sum(np.where(True, x, -x))
    ir = tg.make_ir(tg.grad(f))(np.linspace(0, 1, 5))
    simple = simplify(ir)
    assert len(simple.eqns) < len(ir.eqns)
    names = [e.prim.name for e in simple.eqns]
    assert names.count("sin") == 1
    run = tg.interpret.runner(simple)
    x = np.linspace(0, 1, 5)
    np.testing.assert_allclose(run(x)[0], tg.interpret.runner(ir)(x)[0], rtol=1e-15)


def test_a_forked_process_compiles_with_its_own_workers():
    import multiprocessing as mp
    workers.pool().start()                  # the parent has workers running
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        f = tg.jit(lambda x: np.sum(np.tan(x) * 6.0), compile="sync")
        x = np.linspace(-1, 1, 5)
        q.put((float(f(x)), f.cache_info().entries[0].tier, workers.pool().pid == os.getpid()))
    p = ctx.Process(target=child)
    p.start()
    value, tier, own_pool = q.get(timeout=240)
    p.join(30)
    assert own_pool and tier == "native"
    assert np.isclose(value, np.sum(np.tan(np.linspace(-1, 1, 5)) * 6.0))


def test_lower_before_any_call_starts_the_background_compile(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_COMPILE", "background")
    cf = tg.grad(lambda w, x: np.sum(np.cos(x @ w) * 2.5))
    native = cf.lower(W, X).compile()                 # no call yet: it must not wait forever
    np.testing.assert_allclose(native(W, X), tg.jit(cf, compile="never")(W, X), rtol=1e-12)
