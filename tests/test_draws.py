"""Random draws inside traced functions are made at run time: a compiled function draws fresh
samples on every call, from the same NumPy generators, in the same order and with the same values
as plain NumPy and eager mode (tracegrad/draws.py, draws_params.py)."""
import contextlib
import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import draws, patching

COV = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]])


def program(x, rs, rng):
    """Many kinds of draw: NumPy's global RandomState, a RandomState and a Generator."""
    a = np.random.randn(3) + np.random.rand(3) + np.random.standard_normal(3) + np.random.random(3)
    b = np.random.normal(1.0, 2.0, size=3) + np.random.uniform(-1, 1, 3) + np.random.exponential(2.0, 3)
    i = np.random.randint(0, 5, size=3) + np.random.choice(5, 3) + np.random.permutation(3)
    c = rs.randn(3) * rs.exponential(2.0, 3) + rs.gamma(2.0, 1.0, 3) + rs.beta(2, 3, 3) + \
        rs.standard_t(5, 3) + rs.multivariate_normal(np.zeros(3), COV)
    j = rs.binomial(10, 0.3, 3) + rs.poisson(3.0, 3) + rs.randint(10, size=3) + \
        rs.choice(9, 3, replace=False, p=None)
    d = rng.standard_normal(3) + rng.normal(0.5, 1.5, 3) + rng.uniform(size=3) + rng.random(3) + \
        rng.multivariate_normal(np.zeros(3), COV) + rng.dirichlet(np.ones(3)) + \
        rng.standard_normal(3, dtype=np.float32) + rng.laplace(size=3) + rng.lognormal(size=3)
    k = rng.integers(0, 10, 3) + rng.choice(7, 3) + rng.choice(7, 3, replace=False) + \
        rng.permutation(3) + rng.poisson(2.0, 3) + rng.choice(4, 3, p=[0.1, 0.2, 0.3, 0.4])
    scalars = rng.normal() + np.random.rand() + rs.randn() + rng.integers(3)
    return x * (a + b + c + d) + i + j + k + scalars, rng.random((2, 2))


def fresh():
    np.random.seed(0)
    return np.random.RandomState(1), np.random.default_rng(2)


def states(rs, rng):
    return (str(np.random.get_state()), str(rs.get_state()), str(rng.bit_generator.state))


def run(mode, calls=3):
    """Outputs of `calls` calls of `program` and the generators' states afterwards."""
    rs, rng = fresh()
    x = np.array([0.5, -1.0, 2.0])
    if mode == "numpy":
        outs = [program(x, rs, rng) for _ in range(calls)]
    elif mode == "eager":
        with tg.eager():
            f = tg.jit(lambda x: program(x, rs, rng))
            outs = [f(x) for _ in range(calls)]
    else:
        f = tg.jit(lambda x: program(x, rs, rng), compile=mode)
        outs = [f(x) for _ in range(calls)]
    return outs, states(rs, rng)


def assert_same_stream(got, want):
    (outs, st), (ref, ref_st) = got, want
    assert st == ref_st                         # the generators advanced exactly as NumPy's did
    for o, r in zip(outs, ref):
        for a, b in zip(o, r):
            assert np.asarray(a).dtype == np.asarray(b).dtype
            np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)
    assert not np.array_equal(outs[0][1], outs[1][1])    # fresh samples on every call


def test_eager_and_interpreter_draw_numpys_stream():
    ref = run("numpy")
    assert_same_stream(run("eager"), ref)
    assert_same_stream(run("never"), ref)


@pytest.mark.compiled
def test_native_code_draws_numpys_stream():
    rs, rng = fresh()
    f = tg.jit(lambda x: program(x, rs, rng))
    f(np.ones(3))
    assert f.cache_info().entries[0].tier == "native"
    assert_same_stream(run("sync"), run("numpy"))
    # draws after a pure_callback stay in the kernel (called through object mode), still in order
    rng = np.random.default_rng(5)
    g = tg.jit(lambda x: _callback_then_draw(x, rng))
    got = [g(np.ones(2)) for _ in range(3)]
    rng = np.random.default_rng(5)
    ref = [_callback_then_draw(np.ones(2), rng) for _ in range(3)]
    np.testing.assert_array_equal(np.array(got), np.array(ref))
    # generators created inside and seed() run natively too
    h = tg.jit(_creates_generators)
    for _ in range(2):
        np.testing.assert_array_equal(h(np.zeros(2)), _creates_generators(np.zeros(2)))
    assert h.cache_info().entries[0].tier == "native"


def _creates_generators(x):
    a = np.random.default_rng(0).normal(size=2)
    b = np.random.RandomState(1).randn(2)
    c = np.random.Generator(np.random.PCG64(2)).random(2)
    np.random.seed(3)                                     # reseeds NumPy's global state per call
    return x + a + b + c + np.random.randn(2)


def _callback_then_draw(x, rng):
    first = rng.normal(size=2)
    y = tg.pure_callback(lambda v: v * 2, tg.ShapeDtypeStruct((2,), np.float64), x) \
        if not isinstance(x, np.ndarray) else x * 2
    return first + y * rng.normal(size=2)


def test_draws_after_a_callback_are_not_hoisted():
    rng = np.random.default_rng(5)
    ir = tg.make_ir(lambda x: _callback_then_draw(x, rng))(np.ones(2))
    hoisted, leading = draws.hoist(ir)
    assert len(leading) == 1 and sum(e.prim.name == "random" for e in hoisted.eqns) == 1
    g = tg.jit(lambda x: _callback_then_draw(x, rng))
    got = [g(np.ones(2)) for _ in range(2)]
    rng = np.random.default_rng(5)
    ref = [_callback_then_draw(np.ones(2), rng) for _ in range(2)]
    np.testing.assert_array_equal(np.array(got), np.array(ref))


def test_ir_and_steps_show_the_draws():
    rng = np.random.default_rng(0)
    f = lambda x: x * rng.normal(size=3) + np.random.randn(3)   # noqa: E731
    text = str(tg.make_ir(f)(np.ones(3)))
    assert "random[draw=Generator(PCG64).normal(size=3)]" in text
    assert "random[draw=np.random.randn(3)]" in text
    steps = list(tg.debug.steps(lambda x: np.sum(f(x)), np.ones(3)))
    drawn = [s for s in steps if s.primitive == "random"]
    assert len(drawn) == 2 and drawn[0].outputs[0].shape == (3,)


# ---------------------------------------------------------------- stochastic gradients

def log_density(z):
    return -0.5 * np.sum((z - np.array([1.0, -2.0])) ** 2 * np.array([1.0, 4.0]), axis=1)


def make_objective(rs):
    def objective(params):
        mean, log_std = params[:2], params[2:]
        samples = rs.randn(64, 2) * np.exp(log_std) + mean
        return -(np.sum(log_std) + np.mean(log_density(samples)))
    return objective


def gradients(mode, calls=3):
    params = np.array([0.1, 0.2, -0.3, 0.4])
    obj = make_objective(np.random.RandomState(0))
    if mode == "eager":
        with tg.eager():
            g = tg.grad(obj)
            return [g(params) for _ in range(calls)]
    g = tg.jit(tg.grad(obj), compile=mode)
    return [g(params) for _ in range(calls)]


def test_stochastic_gradient_matches_eager_on_every_call():
    ref = gradients("eager")
    got = gradients("never")
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14)
    assert not np.allclose(got[0], got[1])      # a new estimate per call, not a frozen one


@pytest.mark.compiled
def test_stochastic_gradient_native_matches_eager():
    np.testing.assert_allclose(gradients("sync"), gradients("eager"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["eager", "never", pytest.param("sync", marks=pytest.mark.compiled)])
def test_vjp_pullback_uses_the_forward_passs_draws(mode):
    """The pullback of a top-level tg.vjp differentiates the samples its forward pass drew: it never
    draws again (a fresh sample would give the gradient of a different function)."""
    rng = np.random.default_rng(3)

    def f(x):
        eps = rng.standard_normal(3)
        return np.sum(np.sin(x + eps) ** 2), eps
    x = np.array([0.1, 0.2, 0.3])
    ctx = tg.eager() if mode == "eager" else contextlib.nullcontext()
    with ctx:       # (the top-level vjp compiles per TRACEGRAD_COMPILE: "sync" under the marker)
        for _ in range(3):
            (out, eps), pullback = tg.vjp(f, x)
            g = pullback((1.0, np.zeros(3)))[0]
            g_again = pullback((1.0, np.zeros(3)))[0]
            np.testing.assert_allclose(out, np.sum(np.sin(x + eps) ** 2), rtol=1e-14)
            np.testing.assert_allclose(g, np.sin(2 * (x + eps)), rtol=1e-13)
            np.testing.assert_array_equal(g, g_again)


def test_stochastic_gradient_against_finite_differences():
    # a generator created inside the function is created afresh on every call (as in eager mode),
    # so the objective is deterministic and finite differences apply
    def objective(params):
        rs = np.random.RandomState(7)
        return make_objective(rs)(params)
    tg.check_grads(objective, (np.array([0.1, 0.2, -0.3, 0.4]),), order=2)
    f = tg.jit(objective)
    assert f(np.ones(4)) == f(np.ones(4)) == objective(np.ones(4))


# ---------------------------------------------------------------- traced parameters

MAKERS = {"Generator": lambda: np.random.default_rng(3), "RandomState": lambda: np.random.RandomState(3)}
TRACED = [
    ("normal", lambda g, p: g.normal(p, 2.0 * p, size=(4, 3))),
    ("normal_scalar", lambda g, p: g.normal(p[0], p[1])),
    ("laplace", lambda g, p: g.laplace(p, 0.5 + p)),
    ("gumbel", lambda g, p: g.gumbel(p, 0.5 + p, size=(2, 3))),
    ("logistic", lambda g, p: g.logistic(1.0, p)),
    ("lognormal", lambda g, p: g.lognormal(p, p)),
    ("uniform", lambda g, p: g.uniform(p, p + 3.0, size=(5, 3))),
    ("exponential", lambda g, p: g.exponential(p, size=(2, 3))),
    ("rayleigh", lambda g, p: g.rayleigh(p)),
    ("gamma", lambda g, p: g.gamma(2.5, p)),
    ("multivariate_normal", lambda g, p: g.multivariate_normal(p, COV, size=4)),
    ("choice", lambda g, p: g.choice(p, size=5)),
    ("choice_p", lambda g, p: g.choice(p, size=2, replace=False, p=[0.2, 0.5, 0.3])),
    ("permutation", lambda g, p: g.permutation(p)),
]


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("name,draw", TRACED, ids=[t[0] for t in TRACED])
def test_traced_parameters_give_numpys_values_and_gradients(kind, name, draw):
    make = MAKERS[kind]
    p = np.array([0.3, 1.2, 2.0])
    ref = draw(make(), p)
    with tg.eager():
        g = make()
        eager = tg.jit(lambda p: draw(g, p))(p)
    g = make()
    traced = tg.jit(lambda p: draw(g, p))(p)
    exact = dict(rtol=1e-15, atol=0) if name == "lognormal" else dict(rtol=0, atol=0)
    assert np.shape(traced) == np.shape(ref) and np.asarray(traced).dtype == np.asarray(ref).dtype
    np.testing.assert_allclose(eager, ref, **exact)
    np.testing.assert_allclose(traced, ref, **exact)
    if not name.startswith(("choice", "permutation")):    # (those are piecewise constant in p)
        tg.check_grads(lambda p: draw(make(), p), (p,), order=1)


def test_permuted_and_axis_draws_of_traced_arrays():
    x = np.arange(12.0).reshape(3, 4)
    for draw in (lambda g, x: g.permuted(x, axis=1), lambda g, x: g.permuted(x),
                 lambda g, x: g.choice(x, 5, axis=1), lambda g, x: g.permutation(x, axis=1)):
        np.testing.assert_array_equal(tg.jit(lambda x: draw(np.random.default_rng(4), x))(x),
                                      draw(np.random.default_rng(4), x))
    g = tg.grad(lambda x: np.sum(np.random.default_rng(4).permuted(x, axis=1)[0] ** 2))(x)
    np.testing.assert_allclose(np.sort(g[0]), np.sort(2 * x[0]))


def test_python_scalar_draws_promote_weakly():
    rng = np.random.default_rng(0)
    out = tg.jit(lambda x: x * rng.normal() + rng.normal(np.float32(0.0)))(np.ones(2, np.float32))
    assert out.dtype == np.float32 == (np.ones(2, np.float32) * rng.normal()).dtype


# ---------------------------------------------------------------- generators the function makes

def test_generators_created_inside_are_created_on_every_call():
    f = _creates_generators
    ref = f(np.zeros(2))
    jf = tg.jit(f)
    for _ in range(3):
        np.testing.assert_array_equal(jf(np.zeros(2)), ref)
        np.random.rand(5)                                     # draws between calls do not matter
    assert "np.random.seed(3)" in str(tg.make_ir(f)(np.zeros(2)))


def test_generator_created_inside_on_a_live_bit_generator_shares_its_stream():
    bits = np.random.PCG64(9)
    f = tg.jit(lambda x: x + np.random.Generator(bits).normal(size=2) + np.random.default_rng(bits).random())
    got = [f(np.zeros(2)) for _ in range(3)]          # (tracing must not advance `bits`)
    bits = np.random.PCG64(9)
    ref = [np.zeros(2) + np.random.Generator(bits).normal(size=2) + np.random.default_rng(bits).random()
           for _ in range(3)]
    np.testing.assert_array_equal(got, ref)


def test_unseeded_generator_created_inside_draws_fresh_entropy():
    f = tg.jit(lambda x: x + np.random.default_rng().normal(size=2))
    assert not np.array_equal(f(np.zeros(2)), f(np.zeros(2)))


# ---------------------------------------------------------------- what cannot be drawn at run time

_prebound_normal = np.random.normal      # a bound method of NumPy's global RandomState


def test_a_draw_tracegrad_cannot_see_is_detected_not_frozen():
    with pytest.raises(tg.TracerError, match="np.random.* changed while a function was traced"):
        tg.jit(lambda x: x + _prebound_normal(size=2))(np.zeros(2))
    # an implicitly compiled function runs eagerly instead, and the stream is NumPy's
    np.random.seed(0)
    ref = [np.sum(_prebound_normal(size=2)) for _ in range(2)]
    np.random.seed(0)
    g = tg.value_and_grad(lambda x: np.sum(x * _prebound_normal(size=2)))
    with pytest.warns(tg.EagerFallbackWarning, match="changed while a function was traced"):
        vals = [g(1.0)[0] for _ in range(2)]
    np.testing.assert_allclose(vals, ref, rtol=1e-15)


def test_draws_in_loop_bodies_and_in_place_calls_are_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(tg.TracerError, match="inside a tg.fori_loop .* body"):
        tg.jit(lambda x: tg.fori_loop(0, 3, lambda i, c: c + rng.normal(), x))(1.0)
    with pytest.raises(tg.TracerError, match="rng.permutation"):
        tg.jit(lambda x: (rng.shuffle(np.arange(3)), x)[1])(1.0)
    with pytest.raises(tg.TracerError, match="does not return an array"):
        tg.jit(lambda x: (rng.bytes(3), x)[1])(1.0)
    with pytest.raises(tg.TracerError, match="argument 'shape' is a traced value"):
        tg.jit(lambda a: rng.gamma(a, 1.0))(2.0)
    with pytest.raises(tg.TracerError, match="argument 'size' is a traced value"):
        tg.jit(lambda n: rng.normal(size=n))(3)
    # eager mode runs them as NumPy would (shuffle in place, bytes)
    with tg.eager():
        arr = np.arange(10)
        tg.jit(lambda x: (rng.shuffle(arr), x)[1])(1.0)
        assert sorted(arr) == list(range(10)) and list(arr) != list(range(10))


def test_patches_are_restored_after_tracing():
    rng = np.random.default_rng(0)
    normal, randn, asarray = np.random.Generator.__dict__["normal"], np.random.randn, np.asarray
    dot, getitem = np.ndarray.__dict__["dot"], np.ndarray.__dict__["__getitem__"]
    tg.jit(lambda x: x * rng.normal())(1.0)
    with pytest.raises(ZeroDivisionError):
        tg.jit(lambda x: 1 / 0)(1.0)
    assert not patching.active()
    assert np.random.Generator.__dict__["normal"] is normal and np.random.randn is randn
    assert np.asarray is asarray and type(np.random.RandomState) is type
    assert np.ndarray.__dict__["dot"] is dot and np.ndarray.__dict__["__getitem__"] is getitem


def test_eager_draws_are_numpys_results_and_may_be_modified_in_place():
    rs = np.random.RandomState(0)

    def objective(p):
        eps = rs.randn(4)
        eps[0] = 0.0                       # plain NumPy: a sample is an array like any other
        return np.sum((p * eps) ** 2)
    with tg.eager():
        g = tg.grad(objective)(np.ones(4))
    assert g[0] == 0 and np.all(g[1:] != 0)
    # compiling, a traced sample cannot be modified: a TracerError, so grad runs eagerly instead
    rs = np.random.RandomState(0)
    with pytest.warns(tg.EagerFallbackWarning, match="modified in place"):
        g2 = tg.grad(objective)(np.ones(4))
    np.testing.assert_array_equal(g2, g)
    with pytest.raises(tg.TracerError, match=r"tnp.at\(x\)"):
        tg.jit(objective)(np.ones(4))
