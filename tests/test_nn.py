"""tg.nn: values against NumPy/SciPy references, derivatives against finite differences (first and
second order, float64), numerical stability at logits of +-1000, JAX's conventions, dtypes."""
import numpy as np
import pytest
import scipy.special as sps

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import nn




RNG = np.random.default_rng(1234)
X = RNG.standard_normal((3, 4))          # float64, no exact zeros (relu's kink)
Y = RNG.standard_normal((3, 4))
P = sps.softmax(RNG.standard_normal((3, 4)), axis=-1)   # a label distribution per row


def gelu_exact_ref(x):
    return 0.5 * x * (1 + sps.erf(x / np.sqrt(2)))


def gelu_tanh_ref(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


# (name, tg function of float arrays, reference, args)
CASES = [
    ("relu", nn.relu, lambda x: np.maximum(x, 0), (X,)),
    ("sigmoid", nn.sigmoid, sps.expit, (X,)),
    ("softplus", nn.softplus, lambda x: np.logaddexp(x, 0), (X,)),
    ("gelu_tanh", nn.gelu, gelu_tanh_ref, (X,)),
    ("gelu_exact", lambda x: nn.gelu(x, approximate=False), gelu_exact_ref, (X,)),
    ("softmax", nn.softmax, lambda x: sps.softmax(x, axis=-1), (X,)),
    ("softmax_axis0", lambda x: nn.softmax(x, axis=0), lambda x: sps.softmax(x, axis=0), (X,)),
    ("softmax_all", lambda x: nn.softmax(x, axis=None), lambda x: sps.softmax(x, axis=None), (X,)),
    ("log_softmax", nn.log_softmax, lambda x: sps.log_softmax(x, axis=-1), (X,)),
    ("log_softmax_axis0", lambda x: nn.log_softmax(x, axis=0),
     lambda x: sps.log_softmax(x, axis=0), (X,)),
    ("logsumexp", nn.logsumexp, sps.logsumexp, (X,)),
    ("logsumexp_axis1", lambda x: nn.logsumexp(x, axis=1), lambda x: sps.logsumexp(x, axis=1), (X,)),
    ("logsumexp_keepdims", lambda x: nn.logsumexp(x, axis=(0,), keepdims=True),
     lambda x: sps.logsumexp(x, axis=0, keepdims=True), (X,)),
    ("logsumexp_b", lambda x, b: nn.logsumexp(x, axis=1, b=b),
     lambda x, b: sps.logsumexp(x, axis=1, b=b), (X, np.abs(Y) + 0.1)),
    ("mse", nn.mse, lambda p, t: np.mean((p - t) ** 2), (X, Y)),
    ("softmax_cross_entropy", nn.softmax_cross_entropy,
     lambda z, p: np.mean(-np.sum(p * sps.log_softmax(z, axis=-1), axis=-1)), (X, P)),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,fun,ref,args", CASES, ids=IDS)
def test_values_match_reference(name, fun, ref, args):
    want = ref(*args)
    np.testing.assert_allclose(fun(*args), want, rtol=1e-12, atol=1e-14)     # plain NumPy
    got = tg.jit(fun)(*args)                                                   # traced
    assert np.asarray(got).shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    with tg.eager():
        np.testing.assert_allclose(tg.jit(fun)(*args), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,fun,ref,args", CASES, ids=IDS)
def test_derivatives_first_and_second_order(name, fun, ref, args):
    tg.check_grads(fun, args, order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name,fun,ref,args", CASES, ids=IDS)
def test_derivatives_in_eager_mode(name, fun, ref, args):
    with tg.eager():
        tg.check_grads(fun, args, order=1, modes=("rev",))


def test_tnp_logsumexp_is_scipy_style():
    assert tnp.logsumexp is nn.logsumexp
    b = np.array([[1.0, -2.0, 0.5, 1.0]] * 3)
    out, sign = tnp.logsumexp(X, axis=1, b=b, return_sign=True)
    want, want_sign = sps.logsumexp(X, axis=1, b=b, return_sign=True)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_array_equal(sign, want_sign)
    out, sign = tg.jit(lambda x: tnp.logsumexp(x, axis=1, b=b, return_sign=True))(X)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_array_equal(sign, want_sign)


# ---------------------------------------------------------------- conventions at kinks

def test_relu_gradient_at_zero_is_zero():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(tg.grad(lambda x: nn.relu(x).sum())(x), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(tg.jvp(nn.relu, (x,), (np.ones(3),))[1], [0.0, 0.0, 1.0])
    with tg.eager():
        np.testing.assert_array_equal(tg.grad(lambda x: nn.relu(x).sum())(x), [0.0, 0.0, 1.0])


def test_smooth_functions_have_exact_derivatives_at_zero():
    # softplus and sigmoid are built from branches; at the branch point the derivative must be
    # the true one (a naive max(x,0) + log1p(exp(-|x|)) gives 0 for softplus'(0))
    zero = np.zeros(1)
    np.testing.assert_allclose(tg.grad(lambda x: nn.softplus(x).sum())(zero), [0.5], rtol=1e-15)
    np.testing.assert_allclose(tg.grad(lambda x: nn.sigmoid(x).sum())(zero), [0.25], rtol=1e-15)
    np.testing.assert_allclose(tg.hessian(lambda x: nn.softplus(x).sum())(zero), [[0.25]], rtol=1e-15)
    np.testing.assert_allclose(tg.grad(lambda x: nn.gelu(x).sum())(zero), [0.5], rtol=1e-15)
    np.testing.assert_allclose(tg.grad(lambda x: nn.gelu(x, approximate=False).sum())(zero), [0.5],
                               rtol=1e-15)


# ---------------------------------------------------------------- stability at +-1000

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_stable_at_large_logits(dtype):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], dtype)
    labels = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype)
    sm = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # the NumPy impl itself must not overflow or produce NaN either (underflow to 0 is expected)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(tg.jit(nn.softmax)(z), sm)
        lsm = tg.jit(nn.log_softmax)(z)
        np.testing.assert_allclose(lsm, [[0.0, -2000.0, -1000.0], [-2000.0, -2000.0, 0.0]])
        np.testing.assert_allclose(tg.jit(lambda z: nn.logsumexp(z, axis=1))(z), [1000.0, 1000.0])
        loss, g = tg.value_and_grad(nn.softmax_cross_entropy)(z, labels)
        np.testing.assert_allclose(loss, 1000.0)      # (2000 + 0) / 2
        # d/dz mean(-sum(p * log_softmax(z))) = (softmax(z) - p) / batch
        np.testing.assert_allclose(g, (sm - labels) / 2, atol=1e-7)
        g = tg.grad(lambda z: nn.logsumexp(z, axis=1).sum())(z)
        np.testing.assert_allclose(g, sm)
        g = tg.grad(lambda z: (nn.softmax(z) * np.arange(3.0, dtype=dtype)).sum())(z)
        assert np.all(np.isfinite(g))
        g = tg.grad(lambda z: nn.log_softmax(z)[:, 0].sum())(z)
        np.testing.assert_allclose(g, [[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]], atol=1e-7)
        h = tg.hessian(lambda v: nn.logsumexp(v))(z[0])
        assert np.all(np.isfinite(h))
    for out in (g, h, lsm):
        assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_stable_at_large_inputs(dtype):
    x = np.array([1000.0, -1000.0], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(tg.jit(nn.sigmoid)(x), [1.0, 0.0])
        np.testing.assert_array_equal(tg.jit(nn.softplus)(x), [1000.0, 0.0])
        np.testing.assert_array_equal(tg.grad(lambda x: nn.sigmoid(x).sum())(x), [0.0, 0.0])
        np.testing.assert_array_equal(tg.grad(lambda x: nn.softplus(x).sum())(x), [1.0, 0.0])
        np.testing.assert_array_equal(tg.grad(lambda x: nn.relu(x).sum())(x), [1.0, 0.0])
        for approx in (True, False):
            np.testing.assert_array_equal(tg.jit(lambda x: nn.gelu(x, approx))(x), [1000.0, 0.0])
            g = tg.grad(lambda x: nn.gelu(x, approx).sum())(x)
            np.testing.assert_array_equal(g, [1.0, 0.0])
        h = tg.hessian(lambda x: nn.softplus(x).sum())(x)
        np.testing.assert_array_equal(h, np.zeros((2, 2)))


def test_logsumexp_of_all_minus_inf_is_minus_inf():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with np.errstate(over="raise", invalid="raise", divide="ignore"):   # log(0) = -inf is the answer
        np.testing.assert_array_equal(tg.jit(lambda x: nn.logsumexp(x, axis=1))(x), [-np.inf, 0.0])


def test_stable_in_eager_mode_with_anomaly_detection():
    z = np.array([[1000.0, -1000.0, 0.5]])
    labels = np.array([[0.0, 0.0, 1.0]])
    with tg.eager(), tg.detect_anomaly():
        g = tg.grad(nn.softmax_cross_entropy)(z, labels)
        g2 = tg.grad(lambda x: (nn.softplus(x) + nn.sigmoid(x) + nn.gelu(x)).sum())(z)
    np.testing.assert_allclose(g, [[1.0, 0.0, -1.0]], atol=1e-12)
    assert np.all(np.isfinite(g2))


# ---------------------------------------------------------------- one_hot

def test_one_hot_follows_jax_defaults():
    got = nn.one_hot(np.array([0, 2, -1, 3]), 3)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    got = nn.one_hot(np.array([[1, 0]]), 2, dtype=np.float64, axis=0)
    assert got.dtype == np.float64 and got.shape == (2, 1, 2)
    np.testing.assert_array_equal(got[:, 0, :], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(nn.one_hot(2, 4), [0, 0, 1, 0])
    np.testing.assert_array_equal(nn.one_hot([1, 0], 2), [[0, 1], [1, 0]])


def test_one_hot_of_traced_labels_inside_a_loss():
    labels = np.array([2, 0], np.int32)
    z = X[:2, :3]

    def loss(z, labels):
        return nn.softmax_cross_entropy(z, nn.one_hot(labels, 3))
    np.testing.assert_array_equal(tg.jit(lambda l: nn.one_hot(l, 3))(labels), [[0, 0, 1], [1, 0, 0]])
    want = np.mean(-sps.log_softmax(z, axis=-1)[[0, 1], [2, 0]])
    np.testing.assert_allclose(tg.jit(loss)(z, labels), want, rtol=1e-12)
    g = tg.grad(loss)(z, labels)
    np.testing.assert_allclose(g, (sps.softmax(z, axis=-1) - np.eye(3)[[2, 0]]) / 2, rtol=1e-12)
    assert g.dtype == np.float64       # float32 one-hot labels do not narrow float64 logits


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("name,fun,ref,args", CASES, ids=IDS)
def test_float32_stays_float32(name, fun, ref, args):
    args32 = tuple(a.astype(np.float32) for a in args)
    out = tg.jit(fun)(*args32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref(*args), rtol=2e-5, atol=2e-6)
    g = tg.grad(lambda *a: tnp.sum(fun(*a)))(*args32)
    assert g.dtype == np.float32
    assert "f64" not in tg.make_ir(tg.grad(lambda *a: tnp.sum(fun(*a))))(*args32).__str__()


def test_integer_inputs_compute_in_float64_like_numpy():
    x = np.array([-2, 0, 3])
    np.testing.assert_allclose(nn.sigmoid(x), sps.expit(x))
    np.testing.assert_allclose(nn.softmax(x), sps.softmax(x))
    np.testing.assert_array_equal(nn.relu(x), [0, 0, 3])
    assert nn.relu(x).dtype == x.dtype


@pytest.mark.compiled
def test_compiled_backend_agrees():
    def f(z, labels):
        h = nn.gelu(z) + nn.gelu(z, approximate=False) + nn.softplus(z) + nn.sigmoid(z) + nn.relu(z)
        return nn.softmax_cross_entropy(h + z, labels) + nn.logsumexp(z) + nn.mse(nn.softmax(z), labels)

    z = np.array([[1000.0, -1000.0, 0.5], [0.2, -0.3, 0.1]])
    labels = nn.one_hot(np.array([2, 0]), 3, dtype=np.float64)
    compiled = tg.jit(tg.value_and_grad(f))
    value, g = compiled(z, labels)
    assert compiled.source(z, labels)          # really compiled by the Numba backend
    with tg.eager():
        value_e, g_e = tg.value_and_grad(f)(z, labels)
    np.testing.assert_allclose(value, value_e, rtol=1e-12)
    np.testing.assert_allclose(g, g_e, rtol=1e-12, atol=1e-14)
    assert np.all(np.isfinite(g))
