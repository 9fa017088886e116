"""Slices with traced bounds of static length, `x[i * bs:(i + 1) * bs]`: values against NumPy on
every axis and with steps, derivatives against central differences (first and second order), eager
mode, vmap over the index, `tnp.at` updates through such a slice, the run-time IndexError when NumPy
would select another number of elements (interpreter, eager and compiled code), and the TracerError
for a slice whose length depends on a traced value."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

RNG = np.random.default_rng(7)
X2 = RNG.standard_normal((12, 5))
X3 = RNG.standard_normal((4, 6, 7))
TRAIN = RNG.standard_normal((20, 3))          # a closed-over data set, minibatched by a traced index
BS = 4
N = 3

# (name, function of (x, i), x, values of i that keep every bound within the axis)
PATTERNS = [
    ("minibatch", lambda x, i: x[i * BS:(i + 1) * BS], X2, (0, 1, 2)),
    ("plus_const", lambda x, i: x[i:i + 3], X2, (0, 4, 9)),
    ("python_int_length", lambda x, s: x[s:s + N], X2, (0, 5, 9)),
    ("affine_offset", lambda x, k: x[k * 4 + 1:k * 4 + 5], X2, (0, 1)),
    ("subtraction", lambda x, i: x[(i + 2) - 2:i - (-2)], X2, (0, 10)),
    ("axis1", lambda x, i: x[:, i:i + 2], X2, (0, 2, 3)),
    ("axis2_ellipsis", lambda x, i: x[..., 2 * i:2 * i + 3], X3, (0, 1, 2)),
    ("middle_axis_with_int_and_none", lambda x, i: x[1, None, i + 1:i + 4, ::2], X3, (0, 2)),
    ("two_traced_slices", lambda x, i: x[i:i + 2, 3 - i:5 - i], X3, (0, 1)),
    ("negative_bounds", lambda x, i: x[i - 3:i], X2, (-1, -5, -9)),
    ("step2", lambda x, i: x[i:i + 5:2], X2, (0, 3, 7)),
    ("reversed", lambda x, i: x[i + 3:i:-1], X2, (0, 4, 8)),
    ("negative_step2", lambda x, i: x[i + 6:i:-2, 1:3], X2, (0, 5)),
    ("traced_int_and_slice", lambda x, i: x[i, i:i + 2], X2, (0, 3)),
    ("slice_then_index_array", lambda x, i: x[i:i + 2, [4, 0, 4]], X2, (0, 10)),
]


@pytest.mark.parametrize("name,fn,x,values", PATTERNS, ids=[p[0] for p in PATTERNS])
def test_values_match_numpy_under_jit(name, fn, x, values):
    f = tg.jit(fn)
    for i in values:
        want = fn(x, i)
        got = f(x, i)
        assert got.shape == want.shape and got.dtype == want.dtype, (name, i)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} i={i}")
    ir = str(tg.make_ir(fn)(x, values[0]))
    assert "slice_start" in ir and "gather" in ir, ir


def test_index_dtypes_and_integer_arrays():
    xi = np.arange(30).reshape(10, 3)
    f = tg.jit(lambda x, i: x[i * 2:i * 2 + 4])
    for i in (np.int32(3), np.int64(1), np.uint8(2), 0):
        np.testing.assert_array_equal(f(xi, i), xi[i * 2:i * 2 + 4])
    assert f(xi, np.int32(3)).dtype == xi.dtype
    # a bound converted between integer types, and one read from a traced int array
    g = tg.jit(lambda x, a: x[a[0].astype(np.int64):a[0] + 2])
    np.testing.assert_array_equal(g(xi, np.array([5, 0], np.int32)), xi[5:7])


def test_closed_over_numpy_data_is_minibatched():
    def objective(params, i):
        batch = TRAIN[i * BS:(i + 1) * BS]
        return np.sum(np.tanh(batch @ params) ** 2)

    params = RNG.standard_normal(3)
    for i in (0, 2, 4):
        want = objective(params, i)
        np.testing.assert_allclose(tg.jit(objective)(params, i), want, rtol=1e-12)
    g = tg.jit(tg.grad(objective))(params, 3)
    np.testing.assert_allclose(g, _fd_grad(lambda p: objective(p, 3), params), rtol=1e-6, atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tg.EagerFallbackWarning)    # compiled, not run eagerly
        np.testing.assert_allclose(tg.grad(objective)(params, 1), tg.jit(tg.grad(objective))(params, 1))


def _epochs(x, w):
    """Minibatches read inside loop bodies: the loop index is traced."""
    def body(i, acc):
        j = i % 3
        return acc + np.sum(np.tanh(x[j * 4:(j + 1) * 4]) * w)

    def step(c, i):
        return c + np.sum(x[i:i + 2] ** 2), x[i + 1:i + 3, ::-1]
    total, windows = tg.scan(step, 0.0, np.arange(5))
    return tg.fori_loop(0, 5, body, total), windows


def _epochs_np(x, w):
    acc = sum(np.sum(x[i:i + 2] ** 2) for i in range(5))
    for i in range(5):
        j = i % 3
        acc += np.sum(np.tanh(x[j * 4:(j + 1) * 4]) * w)
    return acc, np.stack([x[i + 1:i + 3, ::-1] for i in range(5)])


def test_inside_loop_bodies():
    x, w = RNG.standard_normal((12, 5)), RNG.standard_normal(5)
    got, want = tg.jit(_epochs)(x, w), _epochs_np(x, w)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(tg.jit(tg.grad(lambda x: _epochs(x, w)[0]))(x),
                               _fd_grad(lambda x: _epochs_np(x, w)[0], x), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- derivatives

def _fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


W = RNG.standard_normal((3, 4))


def _loss(x, i):
    return np.sum(np.sin(x[2 * i:2 * i + 3, 1:]) * W) + np.sum(x[:, i + 1:i + 3] ** 3)


def _loss_np(x, i):
    return np.sum(np.sin(x[2 * i:2 * i + 3, 1:]) * W) + np.sum(x[:, i + 1:i + 3] ** 3)


@pytest.mark.parametrize("i", [0, 2])
def test_gradient_against_central_differences(i):
    x = RNG.standard_normal((8, 5))
    want = _fd_grad(lambda x: _loss_np(x, i), x)
    np.testing.assert_allclose(tg.grad(_loss)(x, i), want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tg.jit(tg.grad(_loss))(x, i), want, rtol=1e-6, atol=1e-8)
    tg.check_grads(lambda x: _loss(x, i), (x,), order=2)      # forward and reverse, to order 2


def test_second_order_against_central_differences():
    def f(x, i):
        return np.sum(x[i:i + 3] ** 3 * x[i + 1:i + 4])

    x = RNG.standard_normal(7)
    i = 2
    h = tg.jit(tg.hessian(f))(x, i)
    want = np.stack([_fd_grad(lambda x: tg.grad(f)(x, i)[k], x) for k in range(x.size)])
    np.testing.assert_allclose(h, want, rtol=1e-6, atol=1e-7)
    # the slab's cotangent lands only where the slice reads
    assert not np.any(h[:i]) and not np.any(h[i + 4:])


def test_eager_mode_gives_the_same_values_and_gradients():
    x = RNG.standard_normal((8, 5))
    f = lambda x, i: x[i:i + 3, i - 4:i - 2]        # noqa: E731
    with tg.eager():
        got = tg.jit(f)(x, 4)
        g = tg.grad(_loss)(x, 1)
        # eager mode knows the bounds: NumPy's own semantics, whatever the length
        for i in (3, 7):
            np.testing.assert_array_equal(tg.jit(f)(x, i), f(x, i))
    np.testing.assert_array_equal(got, f(x, 4))
    np.testing.assert_array_equal(got, tg.jit(f)(x, 4))
    np.testing.assert_allclose(g, tg.grad(_loss)(x, 1), rtol=1e-12)


def test_vmap_over_the_index():
    f = lambda x, i: x[i:i + 3] * 2.0       # noqa: E731
    idx = np.array([0, 4, 9])
    want = np.stack([f(X2, i) for i in idx])
    np.testing.assert_array_equal(tg.vmap(f, in_axes=(None, 0))(X2, idx), want)
    np.testing.assert_array_equal(tg.jit(tg.vmap(f, in_axes=(None, 0)))(X2, idx), want)
    with tg.eager():
        np.testing.assert_array_equal(tg.vmap(f, in_axes=(None, 0))(X2, idx), want)
    # per-example gradients with a per-example window
    xs = RNG.standard_normal((3, 12, 5))
    g = tg.vmap(tg.grad(_loss), in_axes=(0, 0))(xs[:, :8], np.array([0, 1, 2]))
    for k in range(3):
        np.testing.assert_allclose(g[k], tg.grad(_loss)(xs[k, :8], k), rtol=1e-12)
    with pytest.raises(IndexError, match="slice 10:13 of axis 0 with size 12"):
        tg.vmap(f, in_axes=(None, 0))(X2, np.array([0, 10]))


def test_at_updates_through_a_traced_slice():
    x = RNG.standard_normal((8, 5))

    def upd(x, i):
        y = tnp.at(x)[i:i + 2, 1].set(-1.0)
        y = tnp.at(y)[:, i + 1:i + 3].add(x[:, :2])
        return tnp.at(y)[i + 4:i + 6].multiply(x[i:i + 2])

    def upd_np(x, i):
        y = x.copy()
        y[i:i + 2, 1] = -1.0
        y[:, i + 1:i + 3] += x[:, :2]
        y[i + 4:i + 6] *= x[i:i + 2]
        return y

    for i in (0, 2):
        np.testing.assert_allclose(tg.jit(upd)(x, i), upd_np(x, i), rtol=1e-15)
    np.testing.assert_array_equal(tg.jit(lambda x, i: tnp.at(x)[i:i + 2].get())(x, 3), x[3:5])
    w = RNG.standard_normal((8, 5))
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(upd(x, 2) * w))(x),
                               _fd_grad(lambda x: np.sum(upd_np(x, 2) * w), x), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- errors

def _line_of(fn) -> str:
    return f"test_dynamic_slice.py:{fn.__code__.co_firstlineno}"


def bad_start_stop(x, i):
    return x[i:i + 3]


@pytest.mark.parametrize("i,selected", [(10, 2), (12, 0), (13, 0), (-2, 0), (-1, 0), (-14, 1)])
def test_out_of_range_raises_index_error_at_run_time(i, selected):
    f = tg.jit(bad_start_stop)
    np.testing.assert_array_equal(f(X2, 9), X2[9:12])        # traced once, checked at every call
    assert len(X2[i:i + 3]) == selected
    line = f"test_dynamic_slice.py:{bad_start_stop.__code__.co_firstlineno + 1}"
    msg = rf"slice {i}:{i + 3} of axis 0 with size 12 selects {selected} elements, .*static length 3"
    with pytest.raises(IndexError, match=msg) as err:
        f(X2, i)
    assert line in str(err.value)
    with pytest.raises(IndexError, match=msg):                    # and under differentiation
        tg.grad(lambda x, i: np.sum(bad_start_stop(x, i)))(X2, i)


def test_out_of_range_with_negative_step_and_axis():
    f = tg.jit(lambda x, i: x[:, i + 2:i:-1])
    np.testing.assert_array_equal(f(X2, 2), X2[:, 4:2:-1])
    with pytest.raises(IndexError, match=r"slice 5:3:-1 of axis 1 with size 5 selects 1 elements"):
        f(X2, 3)


def test_length_depending_on_a_traced_value_is_a_tracer_error():
    cases = [lambda x, i: x[:i], lambda x, i: x[i:], lambda x, i: x[i:2 * i],
             lambda x, i: x[i:i * i + 1], lambda x, i: x[1:i + 2]]
    for fn in cases:
        with pytest.raises(tg.TracerError, match=r"depends on a traced value.*x\[i:i \+ n\].*static_argnums"
                           r".*tg\.eager\(\)") as err:
            tg.jit(fn)(X2, 3)
        assert _line_of(fn) in str(err.value)
    with pytest.raises(tg.TracerError, match="depends on a traced value"):
        tg.jit(lambda x, i, j: x[i:j])(X2, 3, 6)
    with pytest.raises(tg.TracerError, match="step"):
        tg.jit(lambda x, i: x[0:4:i])(X2, 2)
    # static_argnums and eager mode both take any slice
    np.testing.assert_array_equal(tg.jit(lambda x, i: x[:i], static_argnums=1)(X2, 3), X2[:3])
    with tg.eager():
        np.testing.assert_array_equal(tg.jit(lambda x, i: x[:i])(X2, 3), X2[:3])


def test_implicit_compilation_falls_back_to_eager_for_a_traced_length():
    with pytest.warns(tg.EagerFallbackWarning, match="depends on a traced value"):
        g = tg.grad(lambda x, i: np.sum(x[:i] ** 2))(X2, 4)
    want = np.zeros_like(X2)
    want[:4] = 2 * X2[:4]
    np.testing.assert_allclose(g, want)


def test_bounds_of_the_wrong_kind():
    with pytest.raises(TypeError, match="slice indices must be integers"):
        tg.jit(lambda x, t: x[t:t + 1.0])(X2, 1.0)
    with pytest.raises(TypeError, match="integer scalar"):
        tg.jit(lambda x, a: x[a:a + 2])(X2, np.array([1, 2]))


# ---------------------------------------------------------------- compiled code

def _compiled_patterns(x2, x3, i, j, k):
    return (x2[:, j:j + 2], x2[i * BS:(i + 1) * BS], x3[..., 2 * k:2 * k + 3], x2[j - 12:j - 9],
            x2[j + 3:j:-1], TRAIN[i * BS:(i + 1) * BS], _epochs(x2, x2[0])[0], tg.grad(_loss)(x2[:8], k))


@pytest.mark.compiled
def test_compiled_values_gradients_and_run_time_error():
    f = tg.jit(_compiled_patterns)
    for i, j, k in ((0, 0, 0), (2, 3, 2), (1, 1, 1)):
        got = f(X2, X3, i, j, k)
        want = (X2[:, j:j + 2], X2[i * BS:(i + 1) * BS], X3[..., 2 * k:2 * k + 3], X2[j - 12:j - 9],
                X2[j + 3:j:-1], TRAIN[i * BS:(i + 1) * BS], _epochs_np(X2, X2[0])[0],
                _fd_grad(lambda x: _loss_np(x, k), X2[:8]))
        for g, w in zip(got[:-2], want[:-2]):
            assert g.shape == w.shape
            np.testing.assert_array_equal(g, w)
        np.testing.assert_allclose(got[-2], want[-2], rtol=1e-12)
        np.testing.assert_allclose(got[-1], want[-1], rtol=1e-6, atol=1e-8)
    assert f.cache_info().entries[0].tier == "native"
    with pytest.raises(IndexError) as compiled:
        f(X2, X3, 0, 4, 0)                      # x2[:, 4:6] on 5 columns
    with pytest.raises(IndexError) as interpreted:
        tg.jit(_compiled_patterns, compile="never")(X2, X3, 0, 4, 0)
    assert str(compiled.value) == str(interpreted.value)
    assert str(compiled.value).startswith("slice 4:6 of axis 1 with size 5 selects 1 elements")
    assert f"test_dynamic_slice.py:{_compiled_patterns.__code__.co_firstlineno + 1}" in str(compiled.value)
