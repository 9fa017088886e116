"""grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian, stop_gradient and their nesting."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp




rng = np.random.default_rng(0)


def mlp_loss(params, x, y):
    h = np.tanh(x @ params["w1"] + params["b1"])
    out = h @ params["w2"] + params["b2"]
    return np.mean((out - y) ** 2)


def test_grad_matches_finite_differences_over_pytree():
    params = {"w1": rng.standard_normal((4, 5)), "b1": np.zeros(5),
              "w2": rng.standard_normal((5, 1)), "b2": np.zeros(1)}
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 1))
    g = tg.grad(mlp_loss)(params, x, y)
    assert set(g) == set(params) and all(g[k].shape == params[k].shape for k in g)
    tg.check_grads(mlp_loss, (params, x, y), order=2)


def test_outputs_are_ndarrays_with_dtype_preserved():
    x = np.ones(3, np.float32)
    v, g = tg.value_and_grad(lambda x: np.sum(np.sin(x) * 0.5))(x)
    assert isinstance(v, np.ndarray) and v.shape == () and v.dtype == np.float32
    assert isinstance(g, np.ndarray) and g.dtype == np.float32


def test_argnums_tuple_and_has_aux():
    f = lambda a, b, c: (np.sum(a * b * c), {"double": a * 2})
    (val, aux), (ga, gc) = tg.value_and_grad(f, argnums=(0, 2), has_aux=True)(1.0, 2.0, 3.0)
    assert val == 6.0 and aux["double"] == 2.0 and ga == 6.0 and gc == 2.0
    g, aux = tg.grad(f, has_aux=True)(1.0, 2.0, 3.0)
    assert g == 6.0 and aux["double"] == 2.0


def test_grad_as_decorator_and_negative_argnums():
    @tg.grad
    def f(x):
        return x ** 3
    assert f(2.0) == 12.0
    assert tg.grad(lambda x, y: x * y ** 2, argnums=-1)(3.0, 2.0) == 12.0


def test_third_order_and_mixed_nesting():
    f = lambda x: np.sin(x) * x
    d3 = tg.grad(tg.grad(tg.grad(f)))(0.7)
    x = 0.7
    expected = -3 * np.sin(x) - x * np.cos(x)
    np.testing.assert_allclose(d3, expected, rtol=1e-12)
    h = tg.jacfwd(tg.jacrev(lambda v: np.sum(np.sin(v) * v[::-1])))(np.array([0.3, 0.5, 0.9]))
    h2 = tg.jacrev(tg.jacfwd(lambda v: np.sum(np.sin(v) * v[::-1])))(np.array([0.3, 0.5, 0.9]))
    h3 = tg.hessian(lambda v: np.sum(np.sin(v) * v[::-1]))(np.array([0.3, 0.5, 0.9]))
    np.testing.assert_allclose(h, h2, atol=1e-12)
    np.testing.assert_allclose(h, h3, atol=1e-12)
    np.testing.assert_allclose(h, h.T, atol=1e-12)


def test_jacobians_shape_out_plus_in():
    f = lambda x: np.tanh(x @ np.ones((3, 2)))
    x = rng.standard_normal((4, 3))
    jr, jf = tg.jacrev(f)(x), tg.jacfwd(f)(x)
    assert jr.shape == (4, 2, 4, 3)
    np.testing.assert_allclose(jr, jf, atol=1e-12)
    eps = 1e-6
    num = np.zeros((4, 2, 4, 3))
    for idx in np.ndindex(4, 3):
        d = np.zeros_like(x)
        d[idx] = eps
        num[(...,) + idx] = (f(x + d) - f(x - d)) / (2 * eps)
    np.testing.assert_allclose(jr, num, atol=1e-7)


def test_vjp_and_jvp_agree():
    f = lambda x, y: np.sin(x) * y
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    out, pull = tg.vjp(f, x, y)
    ct = rng.standard_normal(3)
    gx, gy = pull(ct)
    tx, ty = rng.standard_normal(3), rng.standard_normal(3)
    out2, t_out = tg.jvp(f, (x, y), (tx, ty))
    np.testing.assert_allclose(out, out2)
    np.testing.assert_allclose(np.dot(gx, tx) + np.dot(gy, ty), np.dot(ct, t_out), rtol=1e-12)
    out3, pull3, aux = tg.vjp(lambda x: (x * 2, x + 1), x, has_aux=True)
    np.testing.assert_allclose(aux, x + 1)
    np.testing.assert_allclose(pull3(np.ones(3))[0], 2 * np.ones(3))


def test_closure_over_outer_traced_value_no_perturbation_confusion():
    f = lambda x: tg.grad(lambda y: x * y)(1.0)
    assert tg.grad(f)(2.0) == 1.0
    g = lambda x: x * tg.grad(lambda y: x + y)(x)
    assert tg.grad(g)(3.0) == 1.0


def test_stop_gradient():
    f = lambda x: np.sum(x * tg.stop_gradient(x))
    np.testing.assert_allclose(tg.grad(f)(np.array([1.0, 2.0])), [1.0, 2.0])
    tree = tg.stop_gradient({"a": np.ones(2)})
    assert isinstance(tree["a"], np.ndarray)


def test_gradient_of_unused_argument_is_zero():
    g = tg.grad(lambda x, y: np.sum(x), argnums=(0, 1))(np.ones(2), np.ones((2, 2)))
    np.testing.assert_array_equal(g[1], np.zeros((2, 2)))


def test_jit_static_argnums_and_kwargs():
    calls = []

    def f(x, n, scale=1.0):
        calls.append(n)
        return x * n * scale
    jf = tg.jit(f, static_argnums=1)
    np.testing.assert_allclose(jf(np.ones(2), 3), [3, 3])
    np.testing.assert_allclose(jf(np.ones(2), 3, scale=2.0), [6, 6])
    np.testing.assert_allclose(jf(np.ones(2), 4), [4, 4])
    info = jf.cache_info()
    assert info.misses == 3 and info.reasons[0] == "first call"
    assert any("n: static value 3 -> 4" in r for r in info.reasons)


def test_cache_info_reasons():
    jf = tg.jit(lambda x, y: x * y)
    jf(np.ones(3), 1.0)
    jf(np.ones(3), 2.0)
    jf(np.ones(4), 2.0)
    jf(np.ones(4, np.float32), 2.0)
    info = jf.cache_info()
    assert (info.hits, info.misses) == (1, 3)
    assert info.reasons == ["first call", "x: shape (3,) -> (4,)", "x: dtype float64 -> float32"]


def test_python_scalar_args_are_weakly_typed():
    step = tg.jit(lambda p, lr: p - lr * p)
    out = step(np.ones(3, np.float32), 0.1)
    assert out.dtype == np.float32


def test_cf_ir_shows_forward_and_backward():
    vg = tg.jit(tg.value_and_grad(lambda x: np.sum(np.tanh(x))))
    text = vg.ir(np.ones(3))
    assert "tanh" in text and "bwd" in text


def test_jit_of_grad_inside_jit():
    inner = tg.grad(lambda x: np.sum(x ** 2))
    outer = tg.jit(lambda x: inner(x) * 3)
    np.testing.assert_allclose(outer(np.array([1.0, 2.0])), [6.0, 12.0])


def test_custom_pytree_node_gradients_keep_type():
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b
    tg.register_pytree_node(Pair, lambda p: ([p.a, p.b], None), lambda _, c: Pair(*c))
    g = tg.grad(lambda p: np.sum(p.a * p.b))(Pair(np.ones(2) * 3, np.ones(2) * 5))
    assert isinstance(g, Pair)
    np.testing.assert_allclose(g.a, [5, 5])
    np.testing.assert_allclose(g.b, [3, 3])
