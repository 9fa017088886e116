"""tg.optim: steps against hand-computed references, pytrees, dtype preservation, and whole
training steps (loss, gradient, update) traced into one function."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad import optim




GRADS = [np.array([0.5, -2.0, 0.0]), np.array([0.25, 1.0, -3.0]), np.array([-1.0, 0.5, 2.0])]
P0 = np.array([1.0, -1.0, 0.5])


def run(opt, steps=GRADS, p=P0):
    state = opt.init(p)
    for g in steps:
        p, state = opt.update(g, state, p)
    return p, state


def test_sgd_matches_hand_computation():
    p, state = run(optim.sgd(0.1))
    np.testing.assert_allclose(p, P0 - 0.1 * (GRADS[0] + GRADS[1] + GRADS[2]), rtol=1e-15)
    assert state == ()


def test_momentum_matches_hand_computation():
    lr, beta = 0.1, 0.9
    v = np.zeros(3)
    want = P0.copy()
    for g in GRADS:
        v = beta * v + g
        want = want - lr * v
    p, state = run(optim.momentum(lr, beta))
    np.testing.assert_allclose(p, want, rtol=1e-15)
    np.testing.assert_allclose(state.velocity, v, rtol=1e-15)
    # Nesterov: p <- p - lr * (g + beta * v_new)
    v = np.zeros(3)
    want = P0.copy()
    for g in GRADS:
        v = beta * v + g
        want = want - lr * (g + beta * v)
    np.testing.assert_allclose(run(optim.momentum(lr, beta, nesterov=True))[0], want, rtol=1e-15)


def adam_reference(grads, p, lr, b1, b2, eps):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


def test_adam_matches_hand_computation_with_bias_correction():
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    p, state = run(optim.adam(lr, b1, b2, eps))
    want, m, v = adam_reference(GRADS, P0, lr, b1, b2, eps)
    np.testing.assert_allclose(p, want, rtol=1e-14)
    np.testing.assert_allclose(state.mu, m, rtol=1e-14)
    np.testing.assert_allclose(state.nu, v, rtol=1e-14)
    assert state.count.dtype == np.int32 and int(state.count) == 3
    # bias correction: the first step moves each coordinate with a nonzero gradient by ~lr
    p1, _ = run(optim.adam(lr, b1, b2, eps), steps=GRADS[:1])
    np.testing.assert_allclose(np.abs(p1 - P0)[:2], [lr, lr], rtol=1e-5)
    assert p1[2] == P0[2]


def test_adam_defaults():
    opt = optim.adam()
    want, _, _ = adam_reference(GRADS, P0, 1e-3, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(run(opt)[0], want, rtol=1e-14)


def test_pytrees_and_non_float_leaves():
    params = {"w": np.ones((2, 2)), "b": (np.zeros(2), np.float64(3.0)), "n": np.array([7])}
    grads = {"w": np.full((2, 2), 2.0), "b": (np.ones(2), np.float64(-1.0)), "n": np.array([0])}
    for opt in (optim.sgd(0.5), optim.momentum(0.5), optim.adam(0.5)):
        state = opt.init(params)
        new, state = opt.update(grads, state, params)
        assert tg.tree_flatten(new)[1] == tg.tree_flatten(params)[1]
        np.testing.assert_array_equal(new["n"], [7])               # integer buffer untouched
        assert isinstance(new["b"][1], np.ndarray)                 # outside a trace: arrays
    new, _ = optim.sgd(0.5).update(grads, (), params)
    np.testing.assert_allclose(new["w"], np.zeros((2, 2)))
    np.testing.assert_allclose(new["b"][1], 3.5)
    with pytest.raises(ValueError, match="structure"):
        optim.sgd(0.1).update({"w": np.ones((2, 2))}, (), params)


@pytest.mark.parametrize("make", [lambda: optim.sgd(0.1), lambda: optim.momentum(0.1, 0.9),
                                  lambda: optim.adam(1e-2), lambda: optim.adam(np.float64(1e-2),
                                                                              np.float64(0.9))],
                         ids=["sgd", "momentum", "adam", "adam_np_float64_hyper"])
def test_float32_params_stay_float32(make):
    opt = make()
    params = {"w": np.ones(3, np.float32), "b": np.float32(0.5)}
    grads = {"w": np.array([0.1, -0.2, 0.3], np.float32), "b": np.float32(1.0)}
    state0 = opt.init(params)
    new, state = opt.update(grads, state0, params)
    for leaf in tg.tree_leaves((new, state)):
        assert leaf.dtype in (np.float32, np.int32), leaf.dtype
    new, state = opt.update(grads, state, new)              # a second step, from the state

    def step(params, state, grads):
        return opt.update(grads, state, params)
    jitted = tg.jit(step)
    new_j, state_j = jitted(*jitted(params, state0, grads), grads)
    for leaf in tg.tree_leaves((new_j, state_j)):
        assert leaf.dtype in (np.float32, np.int32), leaf.dtype
    assert "f64" not in jitted.ir(params, state0, grads)     # nothing computed in float64
    for a, b in zip(tg.tree_leaves((new_j, state_j)), tg.tree_leaves((new, state))):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
    return x, y


def loss(params, x, y):
    pred = x @ params["w"] + params["b"]
    return np.mean((pred - y) ** 2)


def jitted_step(opt):
    """One compiled training step: loss, gradient and `opt`'s update."""
    @tg.jit
    def train_step(params, state, x, y):
        value, grads = tg.value_and_grad(loss)(params, x, y)
        params, state = opt.update(grads, state, params)
        return params, state, value
    return train_step


@pytest.mark.parametrize("opt", [optim.sgd(0.1), optim.momentum(0.05), optim.adam(0.1)],
                         ids=["sgd", "momentum", "adam"])
def test_whole_training_step_traces_into_one_function(opt):
    x, y = _data()
    params = {"w": np.zeros(3, np.float32), "b": np.float32(0.0)}

    train_step = jitted_step(opt)
    state = opt.init(params)
    eager_params, eager_state = params, state
    losses = []
    for _ in range(20):
        params, state, value = train_step(params, state, x, y)
        losses.append(float(value))
        g = tg.grad(loss)(eager_params, x, y)          # the same step, op by op
        with tg.eager():
            g_eager = tg.grad(loss)(eager_params, x, y)
        np.testing.assert_allclose(g["w"], g_eager["w"], rtol=1e-5)
        eager_params, eager_state = opt.update(g_eager, eager_state, eager_params)
    assert train_step.cache_info().misses == 1            # traced once
    assert losses[-1] < 0.1 * losses[0]
    for a, b in zip(tg.tree_leaves(params), tg.tree_leaves(eager_params)):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
    ir = train_step.ir(params, state, x, y)
    assert "f64" not in ir


def test_init_inside_jit_and_traced_hyperparameters():
    x, y = _data()
    params = {"w": np.zeros(3, np.float32), "b": np.float32(0.0)}

    @tg.jit
    def first_step(params, lr, x, y):
        opt = optim.adam(lr)
        state = opt.init(params)
        grads = tg.grad(loss)(params, x, y)
        return opt.update(grads, state, params)

    new, state = first_step(params, np.float32(0.05), x, y)
    g = tg.grad(loss)(params, x, y)
    want, _ = optim.adam(0.05).update(g, optim.adam(0.05).init(params), params)
    for a, b in zip(tg.tree_leaves(new), tg.tree_leaves(want)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5)
    assert state.count.dtype == np.int32 and int(state.count) == 1
    # a different learning rate is a new value, not a new trace
    first_step(params, np.float32(0.01), x, y)
    assert first_step.cache_info().misses == 1


def test_optimizers_work_in_eager_mode():
    with tg.eager():
        p, state = run(optim.adam(0.01, 0.8, 0.95, 1e-6))
    np.testing.assert_allclose(p, adam_reference(GRADS, P0, 0.01, 0.8, 0.95, 1e-6)[0], rtol=1e-14)


@pytest.mark.compiled
def test_compiled_training_step_matches_eager():
    x, y = _data()
    opt = optim.adam(0.1)
    params = {"w": np.zeros(3, np.float32), "b": np.float32(0.0)}

    train_step = jitted_step(opt)
    state = opt.init(params)
    p_e, s_e = params, state
    for _ in range(3):
        params, state, _ = train_step(params, state, x, y)
        with tg.eager():
            p_e, s_e = opt.update(tg.grad(loss)(p_e, x, y), s_e, p_e)
    assert train_step.source(params, state, x, y)
    for a, b in zip(tg.tree_leaves((params, state)), tg.tree_leaves((p_e, s_e))):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
