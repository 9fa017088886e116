"""Array creation inside traced functions: zeros/ones/full/empty/eye/identity/arange/linspace are
NumPy constants (the same objects as NumPy's), the *_like functions of traced values are constants
of the traced value's shape and dtype, and combining them with traced values promotes as NumPy does."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from op_harness import FEW, MODES, VALUES, assert_close, run_traced  # noqa: F401
from op_specs import REAL, shapes

DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_)


def _seed(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


CONSTRUCTOR_CALLS = {
    "zeros": ((2, 3),), "ones": ((3,),), "empty": ((0, 2),), "eye": (3,), "identity": (2,),
    "arange": (1, 7, 2), "linspace": (0.0, 1.0, 5),
}


def test_constructors_are_numpys():
    """NumPy's own constructors, or registered wrappers that return exactly NumPy's result
    outside transforms (e.g. linspace, which also takes traced endpoints)."""
    for name, args in CONSTRUCTOR_CALLS.items():
        fn = getattr(tnp, name)
        if fn is not getattr(np, name):
            assert hasattr(fn, "_tracegrad_impl"), f"tnp.{name} is neither NumPy's nor registered"
        got, want = fn(*args), getattr(np, name)(*args)
        assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape
        if name != "empty":
            np.testing.assert_array_equal(got, want)
    for name in ("float32", "float64", "int32", "int64", "bool_", "inf", "nan", "pi", "e", "newaxis"):
        v = getattr(tnp, name)
        assert v is getattr(np, name) or (isinstance(v, float) and np.isnan(v) and np.isnan(getattr(np, name)))


# f(x) builds a constant and combines it with the traced x; the same f runs on plain NumPy
CONSTANT_USES = {
    "zeros": lambda x: x + tnp.zeros(x.shape),
    "zeros(f32)": lambda x: x + tnp.zeros(x.shape, dtype=tnp.float32),
    "ones(int)": lambda x: x * tnp.ones(x.shape, dtype=int),
    "full": lambda x: x - tnp.full(x.shape, 0.25),
    "full(int)": lambda x: x - tnp.full(x.shape, 2),
    "empty": lambda x: tnp.empty(x.shape).shape == x.shape and x,
    "zeros_like": lambda x: x + tnp.zeros_like(x),
    "ones_like": lambda x: x * tnp.ones_like(x),
    "ones_like(f64)": lambda x: x * tnp.ones_like(x, dtype=tnp.float64),
    "full_like": lambda x: tnp.full_like(x, 3) + x,
    "full_like(0.5)": lambda x: tnp.full_like(x, 0.5, dtype=float) * x,
    "empty_like": lambda x: tnp.empty_like(x).shape == x.shape and x,
    "np.zeros_like": lambda x: np.zeros_like(x) + x,
    "np.ones_like(shape)": lambda x: np.ones_like(x, shape=(2,) + x.shape) * x,
    "np.full_like": lambda x: np.full_like(x, 7) * x,
    "arange": lambda x: x.reshape(-1) * tnp.arange(x.size),
    "arange(f32)": lambda x: x.reshape(-1) + tnp.arange(x.size, dtype=np.float32),
    "arange(start,stop,step)": lambda x: x.reshape(-1) + tnp.arange(1.0, 1.0 + 0.5 * x.size, 0.5)[:x.size],
    "eye": lambda x: tnp.eye(x.size) @ x.reshape(-1),
    "eye(k)": lambda x: tnp.eye(x.size, k=1, dtype=np.float32) @ x.reshape(-1),
    "identity": lambda x: x.reshape(-1) @ tnp.identity(x.size, dtype=int),
    "linspace": lambda x: x.reshape(-1) * tnp.linspace(0, 1, x.size),
    "linspace(f32)": lambda x: x.reshape(-1) * tnp.linspace(0, 1, x.size, dtype=np.float32),
    "zeros(shape of 0)": lambda x: tnp.concatenate([x.reshape(-1), tnp.zeros(0)]),
}


@pytest.mark.parametrize("name", list(CONSTANT_USES))
@VALUES
@given(data=st.data())
def test_constants_inside_traced_functions(name, data):
    fn = CONSTANT_USES[name]
    shape = data.draw(shapes(max_dims=3))
    note(f"shape {shape}")
    rng = _seed(data)
    for dtype in DTYPES:
        x = REAL.draw(rng, shape, dtype)
        try:
            want = fn(x)
        except TypeError:
            continue   # e.g. bool - bool: the traced version is tested by the op table
        for mode in MODES:
            assert_close(run_traced(fn, [x], mode), want, what=f"{name} {mode} {np.dtype(dtype).name}")
        if np.dtype(dtype).kind == "f" and np.result_type(want) == np.float64 and name not in (
                "empty", "empty_like"):
            tg.check_grads(fn, (x.astype(np.float64),), order=1)


@FEW
@given(data=st.data())
def test_like_constants_carry_no_gradient(data):
    shape = data.draw(shapes(min_side=1))
    x = REAL.draw(_seed(data), shape, np.float64)
    for fn in (tnp.zeros_like, tnp.ones_like, lambda t: tnp.full_like(t, 2.0), tnp.empty_like):
        for mode in MODES:
            g = run_traced(tg.grad(lambda t: tnp.sum(fn(t) * 0 + fn(t))), [x], mode)
            np.testing.assert_array_equal(g, np.zeros_like(x))


def test_full_with_traced_fill_value():
    for mode in MODES:
        out = run_traced(lambda v: tnp.full((2, 3), v), [np.float32(1.5)], mode)
        assert_close(out, np.full((2, 3), np.float32(1.5)))
        g = run_traced(tg.grad(lambda v: tnp.sum(tnp.full((2, 3), v) * 2.0)), [np.float64(1.5)], mode)
        np.testing.assert_allclose(g, 12.0)
        out = run_traced(lambda v: tnp.full_like(np.zeros((2, 2), np.float32), v), [np.float64(0.5)], mode)
        assert_close(out, np.full((2, 2), 0.5, np.float32))


def test_asarray_of_list_of_tracers_stacks():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for mode in MODES:
        assert_close(run_traced(lambda x, y: tnp.asarray([x, y]), [a, b], mode), np.asarray([a, b]))
        assert_close(run_traced(lambda x, y: tnp.array([[x, y], [y, x]], dtype=np.float32), [a, b], mode),
                     np.array([[a, b], [b, a]], dtype=np.float32))
        assert_close(run_traced(lambda x: tnp.array(x, ndmin=3), [a], mode), np.array(a, ndmin=3))
        # Python scalars and tracers mixed in a list promote like NumPy's list of scalars would
        assert_close(run_traced(lambda x: tnp.asarray([x[0], 2.5, x[1]]), [a.astype(np.float32)], mode),
                     np.asarray([np.float32(1.0), 2.5, np.float32(2.0)]))
    tg.check_grads(lambda x, y: tnp.asarray([x, y * 2.0, x * y]), (a, b), order=2)


def test_np_asarray_and_np_full_of_tracer_trace():
    # NumPy's np.asarray / np.full never dispatch on these arguments: tracegrad.numpy.plain swaps
    # them while tracing (tests/test_plain_numpy.py covers the whole list)
    np.testing.assert_allclose(tg.jit(lambda t: np.asarray(t) + 1)(np.ones(3)), 2 * np.ones(3))
    for mode in MODES:
        assert_close(run_traced(lambda v: np.full((2,), v), [np.float64(1.5)], mode), np.full((2,), 1.5))
