"""Integer-array and boolean-mask indexing, take, take_along_axis and tnp.at updates."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from _opcheck import agree, assert_same, grads




rng = np.random.default_rng(0)
X = rng.standard_normal((4, 5, 3))

KEYS = [
    [0, 0, 2],                                   # list with repeats
    (slice(1, None), [1, 3]),                    # x[1:, idx]
    ([0, 1], [1, 2]),                            # two arrays, adjacent
    (Ellipsis, [0, -1]),
    ([[0], [2]], [1, 3]),                        # broadcasting index arrays
    (slice(None), [0, 1], None),                 # new axis after
    ([0, 2], slice(None), [1, 2]),               # separated by a slice: batch dims go first
    (0, slice(None), [1, 2]),                    # int + array separated: advanced, batch first
    (slice(None, None, -1), [3, 1], 1),          # negative step, int adjacent to array
    (np.array([1, -1]),),
    ([2, 0], None, slice(1, 4, 2), [0, 0]),      # None between: non-adjacent
    ([],),
    (None, [1, 1], Ellipsis, slice(None, None, -2)),
]


@pytest.mark.parametrize("key", KEYS, ids=[str(i) for i in range(len(KEYS))])
def test_integer_array_indexing_matches_numpy(key):
    agree(lambda x: x[key], X, reference=lambda x: np.asarray(x)[key])
    if np.asarray(X)[key].size:
        grads(lambda x: x[key], X)


def _key_strategy(shape):
    """Random NumPy keys over `shape`: ints, slices (any step), int lists, None, one Ellipsis."""
    def entry(d):
        return st.one_of(
            st.integers(-d, d - 1) if d else st.just(slice(None)),
            st.builds(slice, st.one_of(st.none(), st.integers(-d - 1, d + 1)),
                      st.one_of(st.none(), st.integers(-d - 1, d + 1)),
                      st.one_of(st.none(), st.sampled_from([-2, -1, 1, 2]))),
            st.lists(st.integers(-d, d - 1), min_size=0, max_size=3) if d else st.just([]),
        )
    return st.tuples(*[entry(d) for d in shape]).flatmap(
        lambda t: st.tuples(st.integers(0, len(t)), st.integers(0, len(t)), st.booleans()).map(
            lambda p: _decorate(list(t), *p)))


def _decorate(entries, none_at, ell_at, use_ell):
    if use_ell and entries:
        entries = entries[:ell_at] + [Ellipsis] + entries[ell_at + 1:] if ell_at < len(entries) \
            else entries + [Ellipsis]
    entries.insert(min(none_at, len(entries)), None)
    return tuple(entries)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=3).flatmap(
    lambda s: st.tuples(st.just(tuple(s)), _key_strategy(s))))
def test_random_keys_value_vjp_jvp(shape_key):
    shape, key = shape_key
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 0.5
    try:
        want = x[key]
    except IndexError:
        with pytest.raises(IndexError):
            tg.jit(lambda x: x[key])(x)
        return
    want = np.asarray(want)
    assert_same(tg.jit(lambda x: x[key])(x), want, what=f"key {key!r}")
    # the VJP is a scatter-add of the cotangent, exactly np.add.at on the same key
    ct = np.arange(want.size, dtype=np.float64).reshape(want.shape) + 1.0
    expected = np.zeros_like(x)
    np.add.at(expected, key, ct)
    _, pullback = tg.vjp(lambda x: x[key], x)
    np.testing.assert_array_equal(pullback(ct)[0], expected)
    t = -x
    np.testing.assert_array_equal(tg.jvp(lambda x: x[key], (x,), (t,))[1], t[key])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=3).flatmap(
    lambda s: st.tuples(st.just(tuple(s)), _key_strategy(s))))
def test_random_keys_at_updates(shape_key):
    shape, key = shape_key
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) * 0.5 - 1.0
    try:
        out_shape = x[key].shape
    except IndexError:
        return
    v = np.arange(np.prod(out_shape), dtype=np.float64).reshape(out_shape) + 2.0
    for mode in ("set", "add", "multiply"):
        got = tg.jit(lambda x, v: getattr(tnp.at(x)[key], mode)(v))(x, v)
        np.testing.assert_array_equal(got, _numpy_update(x, key, v, mode), err_msg=f"{mode} {key!r}")


def test_traced_integer_indices_and_gradient():
    idx = np.array([[2, 0], [3, 3]])
    f = lambda x, i: np.sum(np.sin(x[1:, i]) * x[0, i])
    agree(lambda x, i: x[1:, i], X, idx)
    grads(f, X, idx)
    g = tg.grad(lambda x, i: np.sum(x[i]))(X, np.array([0, 0, 3]))
    want = np.zeros_like(X)
    want[0] += 2
    want[3] += 1
    np.testing.assert_array_equal(g, want)


def test_traced_index_array_of_int32_and_list_of_tracers():
    f = lambda x, i, j: x[[i, j, i]]
    out = tg.jit(f)(X, np.int32(3), np.int32(-1))
    np.testing.assert_array_equal(out, X[[3, -1, 3]])


def test_out_of_bounds_index_raises_index_error():
    f = lambda x, i: x[i]
    with tg.eager():
        with pytest.raises(IndexError, match="out of bounds"):
            tg.jit(f)(X, np.array([1, 4]))
        with pytest.raises(IndexError, match="out of bounds"):
            tg.grad(lambda x, i: np.sum(x[:, i]))(X, np.array([-6]))
    with pytest.raises(IndexError, match="out of bounds"):       # interpreter runs the same check
        tg.jit(f)(X, np.array([7]))
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 0 with size 4"):
        tg.jit(lambda x: x[[0, 4]])(X)                            # constant: caught while tracing
    with pytest.raises(IndexError):
        tg.jit(lambda x: tnp.take(x, 60))(X)
    with pytest.raises(IndexError, match="integer"):
        tg.jit(lambda x: x[np.array([0.5])])(X)
    with pytest.raises(IndexError, match="too many indices"):
        tg.jit(lambda x: x[0, 0, [0], 0])(X)


def test_boolean_mask_eager_and_constant_masks():
    x = rng.standard_normal((3, 4))
    f = lambda x: np.sum(x[x > 0] ** 2)
    with tg.eager():
        np.testing.assert_allclose(tg.jit(f)(x), np.sum(x[x > 0] ** 2))
        np.testing.assert_allclose(tg.grad(f)(x), np.where(x > 0, 2 * x, 0))
        assert_same(tg.jit(lambda x: x[x[:, 0] > 0, 1:])(x), x[x[:, 0] > 0, 1:])
    mask = np.array([True, False, True])
    agree(lambda x: x[mask], x, reference=lambda x: x[mask])
    agree(lambda x: x[[True, False, True], 2], x, reference=lambda x: x[[True, False, True], 2])
    grads(lambda x: x[:, np.array([False, True, True, False])], x)


def test_boolean_mask_under_jit_is_a_clear_error():
    with pytest.raises(tg.TracerError, match="tnp.where"):
        tg.jit(lambda x: np.sum(x[x > 0]))(X)
    with pytest.raises(tg.TracerError, match="tnp.where"):
        tg.jit(tg.grad(lambda x: np.sum(x[x > 0])))(X)
    with pytest.warns(tg.EagerFallbackWarning, match="tnp.where"):    # implicit compile: eager
        g = tg.grad(lambda x: np.sum(x[x > 0]))(X)
    np.testing.assert_array_equal(g, (X > 0).astype(float))


# ---------------------------------------------------------------- take, take_along_axis

@pytest.mark.parametrize("ns", [np, tnp], ids=["np", "tnp"])
@pytest.mark.parametrize("args", [
    dict(indices=[4, 0, 4]), dict(indices=[[1, 2], [0, 0]], axis=1), dict(indices=2, axis=-1),
    dict(indices=[-1, 5], axis=1, mode="wrap"), dict(indices=[-3, 9], axis=0, mode="clip"),
    dict(indices=np.array([], dtype=np.int64), axis=2),
])
def test_take(ns, args):
    f = lambda x: ns.take(x, **args)
    agree(f, X, reference=lambda x: np.take(x, **args))
    if np.take(X, **args).size:
        grads(f, X)


def test_take_with_traced_indices_and_modes():
    for mode in ("raise", "wrap", "clip"):
        idx = np.array([0, 2, 1]) if mode == "raise" else np.array([-7, 2, 6])
        agree(lambda x, i: tnp.take(x, i, axis=1, mode=mode), X, idx,
              reference=lambda x, i: np.take(x, i, axis=1, mode=mode))


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_take_along_axis(axis):
    x = rng.standard_normal((3, 4))
    idx = np.argsort(x, axis=axis)
    if axis is None:
        idx = idx[:5]
    f = lambda x: np.take_along_axis(x, idx, axis=axis)
    agree(f, x, reference=lambda x: np.take_along_axis(x, idx, axis=axis))
    grads(f, x)
    # broadcasting indices and traced indices
    bidx = np.array([[0], [2], [1]]) if axis in (1, -1) else np.array([[0, 2, 1, 1]])
    if axis is not None:
        agree(lambda x, i: tnp.take_along_axis(x, i, axis), x, bidx,
              reference=lambda x, i: np.take_along_axis(x, i, axis))


def test_take_along_axis_errors():
    x = np.ones((2, 3))
    with pytest.raises(ValueError):
        tg.jit(lambda x: tnp.take_along_axis(x, np.zeros(3, int), axis=0))(x)
    with pytest.raises(IndexError):
        tg.jit(lambda x: tnp.take_along_axis(x, np.full((2, 1), 3), axis=1))(x)
    with pytest.raises(np.exceptions.AxisError):
        tg.jit(lambda x: tnp.take_along_axis(x, np.zeros((2, 1), int), axis=2))(x)


# ---------------------------------------------------------------- tnp.at

AT_KEYS = [
    (1, [0, 0, 4]),                     # repeated positions
    (slice(1, None), [2, 3]),
    ([3, 0, 3],),
    (Ellipsis, 1),
    (slice(None, None, -2), [1, 1], 2),
    ([[0], [1]], [1, 2], slice(0, 2)),
]


def _numpy_update(x, key, v, mode):
    y = x.copy()
    if mode == "set":
        y[key] = v              # NumPy: the last of repeated writes wins
    elif mode == "add":
        np.add.at(y, key, v)
    else:
        np.multiply.at(y, key, v)
    return y


@pytest.mark.parametrize("mode", ["set", "add", "multiply"])
@pytest.mark.parametrize("key", AT_KEYS, ids=[str(i) for i in range(len(AT_KEYS))])
def test_at_updates_match_numpy_and_differentiate(mode, key):
    v = rng.standard_normal(X[key].shape) + 2.0
    f = lambda x, v: getattr(tnp.at(x)[key], mode)(v)
    want = _numpy_update(X, key, v, mode)
    got = agree(f, X, v)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    grads(f, X, v)
    assert X[key].shape == tnp.at(X)[key].get().shape


def test_at_multiply_gradients_exact_at_zero_updates():
    x = rng.standard_normal(5)
    key = ([1, 1, 1, 3, 3, 0],)
    for v in ([0.0, 2.0, 3.0, 0.0, 4.0, 0.0], [0.0, 0.0, 3.0, 0.0, 0.0, 1.5], [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]):
        v = np.array(v)
        f = lambda x, v: tnp.at(x)[key].multiply(v)
        np.testing.assert_allclose(f(x, v), _numpy_update(x, key, v, "mul"))
        grads(f, x, v, order=2)


def test_at_set_scalar_broadcast_divide_get_and_no_mutation():
    x = X.copy()
    f = lambda x, s: tnp.at(x)[:, [1, 3], 0].set(s)
    out = agree(f, x, 2.5)
    want = x.copy()
    want[:, [1, 3], 0] = 2.5
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(x, X)
    grads(f, x, 2.5)
    g = lambda x, v: tnp.at(x)[2, [0, 0], 1].divide(v)
    v = np.array([2.0, 4.0])
    want = x.copy()
    want[2, 0, 1] /= 8.0
    np.testing.assert_allclose(agree(g, x, v), want)
    grads(g, x, v)
    assert_same(tg.jit(lambda x: tnp.at(x)[[0, 0, 1]].get())(x), x[[0, 0, 1]])


def test_at_with_traced_indices_set_last_wins_and_gradient():
    x = np.zeros(4)
    f = lambda x, i, v: tnp.at(x)[i].set(v)
    i, v = np.array([2, 0, 2]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tg.jit(f)(x, i, v), [2.0, 0.0, 3.0, 0.0])
    _, pullback = tg.vjp(lambda x, v: f(x, i, v), x, v)
    gx, gv = pullback(np.array([10.0, 20.0, 30.0, 40.0]))
    np.testing.assert_array_equal(gx, [0.0, 20.0, 0.0, 40.0])
    np.testing.assert_array_equal(gv, [0.0, 10.0, 30.0])   # the overwritten update gets nothing
    grads(lambda x, v: f(x, i, v), x, v)


def test_at_int_array_and_bool_mask_eager():
    a = np.arange(6)
    out = tg.jit(lambda a: tnp.at(a)[[1, 1, 4]].add(3))(a)
    want = a.copy()
    np.add.at(want, [1, 1, 4], 3)
    assert_same(out, want)
    x = rng.standard_normal(6)
    with tg.eager():
        got = tg.jit(lambda x: tnp.at(x)[x < 0].set(0.0))(x)
    np.testing.assert_array_equal(got, np.maximum(x, 0))
    with pytest.raises(tg.TracerError, match="tnp.where"):
        tg.jit(lambda x: tnp.at(x)[x < 0].set(0.0))(x)
