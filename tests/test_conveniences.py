"""What autograd users reach for: grad of a one-element output, elementwise_grad, hvp, jacobian,
ravel_pytree, tg.optim.minimize and autograd's check_grads spellings."""
import numpy as np
import pytest
import scipy.optimize

import tracegrad as tg

rng = np.random.default_rng(0)
X = np.array([0.3, -1.2, 2.0])


def central_diff(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        d = np.zeros_like(x)
        d.flat[i] = eps
        g.flat[i] = (np.sum(f(x + d)) - np.sum(f(x - d))) / (2 * eps)
    return g


# ---------------------------------------------------------------- grad of a size-1 output

@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_grad_accepts_any_one_element_output(shape):
    f = lambda x: np.reshape(np.sum(np.sin(x) * x), shape)     # noqa: E731
    g = tg.grad(f)(X)
    np.testing.assert_allclose(g, central_diff(f, X), rtol=1e-7, atol=1e-9)
    value, g2 = tg.value_and_grad(f)(X)
    assert np.shape(value) == shape and np.allclose(g2, g)
    with tg.eager():
        np.testing.assert_allclose(tg.grad(f)(X), g, rtol=1e-15)
    assert tg.hessian(f)(X).shape == shape + (3, 3)


def test_grad_of_a_larger_output_is_a_type_error_suggesting_vjp():
    with pytest.raises(TypeError, match=r"one element.*f64\[2\].*tg.vjp or tg.jacrev"):
        tg.grad(lambda x: x[:2] * 2)(X)
    with pytest.raises(TypeError, match="floating-point"):
        tg.grad(lambda x: np.sum(x > 0, keepdims=True))(X)


def test_size_one_objective_with_scipy_minimize():
    target = np.array([1.0, -2.0, 0.5])
    objective = lambda x: (x - target) @ (x - target)[:, None] + 1.0      # noqa: E731  (shape (1,))
    res = scipy.optimize.minimize(tg.value_and_grad(objective), np.zeros(3), jac=True, method="BFGS")
    assert res.success and np.allclose(res.x, target, atol=1e-6)


# ---------------------------------------------------------------- elementwise_grad, hvp, jacobian

def test_elementwise_grad():
    np.testing.assert_allclose(tg.elementwise_grad(np.tanh)(X), 1 / np.cosh(X) ** 2, rtol=1e-14)
    ga, gb = tg.elementwise_grad(lambda a, b: a * b ** 2, argnums=(0, 1))(X, 2 * X)
    np.testing.assert_allclose(ga, (2 * X) ** 2)
    np.testing.assert_allclose(gb, 2 * X * (2 * X))
    f = lambda x: np.exp(x) @ np.ones((3, 2))     # noqa: E731  (not elementwise: column sums)
    np.testing.assert_allclose(tg.elementwise_grad(f)(X), central_diff(f, X), rtol=1e-7)
    with pytest.raises(TypeError, match="one floating-point array"):
        tg.elementwise_grad(lambda x: x > 0)(X)


def test_hvp_forward_over_reverse():
    f = lambda x: np.sum(np.sin(x) * x[::-1]) + np.sum(x ** 4)       # noqa: E731
    v = np.array([1.0, 0.5, -2.0])
    np.testing.assert_allclose(tg.hvp(f, (X,), (v,)), tg.hessian(f)(X) @ v, rtol=1e-13)
    g = lambda a, b: np.sum(a ** 2 * b) + np.sum(np.sin(a) * b ** 3)   # noqa: E731
    a, b = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    ta, tb = np.array([0.3, -0.7]), np.array([1.1, 0.2])
    H = tg.hessian(lambda z: g(z[:2], z[2:]))(np.concatenate([a, b]))
    ha, hb = tg.hvp(g, (a, b), (ta, tb))
    np.testing.assert_allclose(np.concatenate([ha, hb]), H @ np.concatenate([ta, tb]), rtol=1e-13)
    # inside a transform it is traced; at the top level it is compiled once per signature
    np.testing.assert_allclose(tg.jit(lambda x: tg.hvp(f, (x,), (v,)))(X), tg.hvp(f, (X,), (v,)))
    assert "jvp" not in str(tg.make_ir(lambda x: tg.hvp(f, (x,), (v,)))(X)).split("\n")[0]
    from tracegrad.conveniences import _cached
    assert _cached(f).cache_info().misses == 1
    with pytest.raises(TypeError, match="tuples"):
        tg.hvp(f, X, v)


def test_jacobian_is_jacrev():
    assert tg.jacobian is tg.jacrev
    np.testing.assert_allclose(tg.jacobian(np.sin)(X), np.diag(np.cos(X)), rtol=1e-15)


# ---------------------------------------------------------------- ravel_pytree

def test_ravel_pytree_roundtrip_and_promotion():
    tree = {"w": np.ones((2, 2), np.float32), "b": np.arange(3), "s": (1.5, [np.float32(2.0)])}
    flat, unravel = tg.ravel_pytree(tree)
    assert flat.dtype == np.float64 and flat.shape == (9,)
    np.testing.assert_array_equal(flat, [0, 1, 2, 1.5, 2, 1, 1, 1, 1])   # leaves in sorted key order
    back = unravel(flat * 2)
    assert back["w"].dtype == np.float32 and back["b"].dtype == np.int64
    assert back["w"].shape == (2, 2) and back["s"][0].shape == () and isinstance(back["s"][1], list)
    np.testing.assert_array_equal(back["b"], [0, 2, 4])
    with pytest.raises(TypeError, match="dtype float32"):
        unravel(flat.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        unravel(flat[:4])
    # one dtype: unravel keeps the dtype it is given; leaves are copies, not views of the vector
    flat32, unravel32 = tg.ravel_pytree([np.ones(2, np.float32), np.zeros((1, 1), np.float32)])
    assert flat32.dtype == np.float32 and unravel32(flat32.astype(np.float64))[0].dtype == np.float64
    out = unravel32(flat32)
    out[0][0] = 7
    assert flat32[0] == 1
    flat0, unravel0 = tg.ravel_pytree({})
    assert flat0.shape == (0,) and unravel0(flat0) == {}


def test_ravel_pytree_traced_and_differentiable():
    def loss(v):
        flat, unravel = tg.ravel_pytree({"a": v, "b": (v[:2] * 2, np.ones(1))})
        back = unravel(flat * 3.0)
        return np.sum(flat ** 2) + np.sum(back["a"] * back["b"][0][0])
    tg.check_grads(loss, (X,), order=2)
    params = {"w": rng.standard_normal((3, 2)), "b": np.zeros(2)}
    flat, unravel = tg.ravel_pytree(params)
    f = lambda p: np.sum(np.tanh(X @ p["w"] + p["b"]) ** 2)     # noqa: E731
    g_flat = tg.grad(lambda z: f(unravel(z)))(flat)
    np.testing.assert_allclose(g_flat, tg.ravel_pytree(tg.grad(f)(params))[0], rtol=1e-14)


# ---------------------------------------------------------------- tg.optim.minimize

A = rng.standard_normal((30, 3))
B = A @ np.array([1.0, -2.0, 0.5])


def lsq(params, a, b):
    return np.mean((a @ params["w"] + params["c"] - b) ** 2)


def test_minimize_converges_and_reports_the_loss_history():
    res = tg.optim.minimize(lsq, {"w": np.zeros(3), "c": 0.0}, optimizer=tg.optim.adam(0.05),
                            steps=400, args=(A, B))
    params, losses = res
    assert losses.shape == (400,) and losses[0] == pytest.approx(lsq({"w": np.zeros(3), "c": 0.0}, A, B))
    assert losses[-1] < 1e-6 and np.all(np.diff(losses[:50]) < 0)
    np.testing.assert_allclose(params["w"], [1.0, -2.0, 0.5], atol=1e-3)
    seen = []
    res = tg.optim.minimize(lsq, {"w": np.zeros(3), "c": 0.0}, optimizer=tg.optim.sgd(0.1), steps=500,
                            args=(A, B), callback=lambda i, p, l: seen.append(i) or l < 1e-3)
    assert len(res.losses) == len(seen) < 500 and res.losses[-1] < 1e-3


def test_minimize_draws_fresh_samples_every_step_like_an_eager_loop():
    def noisy(params, rs):
        eps = rs.standard_normal(3)
        return np.sum((params - eps) ** 2)
    opt = tg.optim.sgd(0.1)
    rs = np.random.RandomState(0)
    res = tg.optim.minimize(lambda p: noisy(p, rs), np.zeros(3), optimizer=opt, steps=5)
    rs = np.random.RandomState(0)
    p, ref = np.zeros(3), []
    with tg.eager():
        vg = tg.value_and_grad(lambda p: noisy(p, rs))
        for _ in range(5):
            value, g = vg(p)
            p, _ = opt.update(g, (), p)
            ref.append(float(value))
    np.testing.assert_allclose(res.losses, ref, rtol=1e-14)
    np.testing.assert_allclose(res.params, p, rtol=1e-14)
    assert len(set(np.round(res.losses, 12))) == 5


# ---------------------------------------------------------------- check_grads, autograd's spellings

def test_check_grads_autograd_spellings():
    f = lambda x, y: np.sum(np.sin(x) * y)      # noqa: E731
    y = np.array([2.0, -1.0, 0.5])
    tg.check_grads(f, modes=["fwd", "rev"], order=2)(X, y)
    tg.check_grads(f)(X, y)
    tg.check_grads(f, 1)(X, y)
    tg.check_grads(f, (0, 1), ["rev"])(X, y)
    tg.check_grads(f, (X, y), argnum=1, modes=["rev"], order=1)
    wrong = tg.custom_jvp(lambda x: np.sum(np.sin(x)))
    wrong.defjvp(lambda p, t: (np.sum(np.sin(p[0])), np.sum(2 * np.cos(p[0]) * t[0])))
    for spelled in (lambda: tg.check_grads(wrong, modes=["fwd"], order=1)(X),
                    lambda: tg.check_grads(wrong)(X), lambda: tg.check_grads(wrong, (X,))):
        with pytest.raises(AssertionError, match="finite differences"):
            spelled()
    # only argument 1 is perturbed: a wrong derivative in argument 0 goes unnoticed, as in autograd
    g = lambda x, y: wrong(x) + np.sum(y ** 2)    # noqa: E731
    tg.check_grads(g, 1, modes=["fwd"])(X, y)
    with pytest.raises(ValueError, match="out of range"):
        tg.check_grads(g, 2)(X, y)
