"""Basic indexing of traced values (`x[1:, ::-2, None, ..., 3]`): ints (negative too), slices with
any start/stop/step (negative steps, out-of-range bounds, empty results), None/newaxis and Ellipsis.
Values, shapes and dtypes agree with NumPy; derivatives (a padded scatter) with finite differences.
(Integer-array and mask indexing are tested in tests/test_ops_indexing.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from op_harness import (FEW, MODES, VALUES, assert_close, check_error_parity,
                        outcome, run_traced)  # noqa: F401
from op_specs import REAL, shapes

DTYPES = (np.float32, np.float64, np.int64, np.bool_)


def _bound(n):
    return st.one_of(st.none(), st.integers(-n - 2, n + 2))


@st.composite
def basic_keys(draw, shape):
    """A basic index for `shape`: per axis an int or a slice, plus Nones and maybe an Ellipsis."""
    items = []
    nd = len(shape)
    n_indexed = draw(st.integers(0, nd))
    ellipsis_at = draw(st.one_of(st.none(), st.integers(0, n_indexed)))
    skipped = nd - n_indexed if ellipsis_at is not None else 0
    axes = list(range(n_indexed)) if ellipsis_at is None else (
        list(range(ellipsis_at)) + list(range(ellipsis_at + skipped, nd)))
    for k, ax in enumerate(axes):
        if ellipsis_at is not None and k == ellipsis_at:
            items.append(Ellipsis)
        n = shape[ax]
        if n and draw(st.integers(0, 3)) == 0:
            items.append(draw(st.integers(-n, n - 1)))
        else:
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0)))
            items.append(slice(draw(_bound(n)), draw(_bound(n)), step))
        if draw(st.integers(0, 4)) == 0:
            items.append(None)
    if ellipsis_at is not None and ellipsis_at == len(axes):
        items.append(Ellipsis)
    if draw(st.integers(0, 3)) == 0:
        items.insert(draw(st.integers(0, len(items))), None)
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


def _seed(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


@VALUES
@given(data=st.data())
def test_basic_indexing_matches_numpy(data):
    shape = data.draw(shapes(max_dims=4))
    key = data.draw(basic_keys(shape))
    note(f"x{shape}[{key!r}]")
    rng = _seed(data)
    for dtype in DTYPES:
        x = REAL.draw(rng, shape, dtype)
        want = x[key]
        for mode in MODES:
            assert_close(run_traced(lambda t: t[key], [x], mode), want, what=f"{key!r} {mode}")


@VALUES
@given(data=st.data())
def test_basic_indexing_grads(data):
    shape = data.draw(shapes(max_dims=3, min_side=1))
    key = data.draw(basic_keys(shape))
    note(f"x{shape}[{key!r}]")
    x = REAL.draw(_seed(data), shape, np.float64)
    # (check_grads evaluates finite differences of 0-d inputs on NumPy scalars: tnp.asarray
    # turns those back into 0-d arrays and leaves tracers alone)
    tg.check_grads(lambda t: tnp.asarray(t)[key] * 2.0, (x,), order=2)

    def chain(t):   # indexings compose, and the gradient adds up overlapping reads
        t = tnp.asarray(t)
        return t[key].sum() + t.reshape(-1)[::-1][1:].sum() * t.reshape(-1)[0]
    tg.check_grads(chain, (x,), order=2)


def test_brief_example_key():
    x = np.arange(4 * 5 * 2 * 6, dtype=np.float32).reshape(4, 5, 2, 6)
    key = (slice(1, None), slice(None, None, -2), None, Ellipsis, 3)
    for mode in MODES:
        assert_close(run_traced(lambda t: t[key], [x], mode), x[key])
        g = run_traced(tg.grad(lambda t: t[key].sum()), [x.astype(np.float64)], mode)
        want = np.zeros_like(x, dtype=np.float64)
        want[key] += 1.0
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("key", [5, -6, (0, 0, 0), (slice(None), 7), (Ellipsis, Ellipsis), 1.5,
                                 "a", (0, 9)])
def test_bad_basic_index_raises_like_numpy(key):
    x = np.zeros((5, 3))
    _, err = outcome(lambda: x[key])
    assert err is not None
    for mode in MODES:
        check_error_parity(err, lambda: run_traced(lambda t: t[key], [x], mode))


@FEW
@given(data=st.data())
def test_slices_combined_with_python_scalars_keep_dtype(data):
    """Slicing then combining with Python scalars keeps float32 (NEP 50)."""
    shape = data.draw(shapes(min_dims=1, min_side=1))
    key = data.draw(basic_keys(shape))
    x = REAL.draw(_seed(data), shape, np.float32)
    want = x[key] * 0.5 + 1
    for mode in MODES:
        assert_close(run_traced(lambda t: t[key] * 0.5 + 1, [x], mode), want)
