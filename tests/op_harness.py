"""Shared machinery for the op tests: hypothesis settings, running a function traced (jit on the
interpreter backend, or eager), and comparing results with NumPy's."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tracegrad as tg

_COMMON = dict(deadline=None, derandomize=True, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much,
                                      HealthCheck.function_scoped_fixture])
VALUES = settings(max_examples=int(os.environ.get("TG_OPS_EXAMPLES", 10)), **_COMMON)
GRADS = settings(max_examples=int(os.environ.get("TG_OPS_GRAD_EXAMPLES", 8)), **_COMMON)
FEW = settings(max_examples=int(os.environ.get("TG_OPS_FEW_EXAMPLES", 4)), **_COMMON)
TWO = settings(max_examples=2, **_COMMON)   # for tests whose inner loops already sweep widely

MODES = ("jit", "eager")

TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5),
       np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10)}


def quiet(fn, *args, **kwargs):
    """Call with NumPy's floating-point warnings silenced (domain edges are deliberate)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def outcome(fn, *args, **kwargs):
    """(result, None) or (None, exception)."""
    try:
        return quiet(fn, *args, **kwargs), None
    except Exception as e:   # noqa: BLE001 (any NumPy error is a legitimate outcome to match)
        return None, e


def builtin_base(exc_type):
    for c in exc_type.__mro__:
        if c.__module__ == "builtins":
            return c
    return Exception


def run_traced(fn, arrays, mode, consts=()):
    """`fn(*arrays)` under `tg.jit` (interpreter backend) or eager mode; the arrays whose index is
    in `consts` are closed over as NumPy constants (`freeze_closure`: closed-over arrays are
    otherwise traced inputs), the others are traced arguments."""
    dyn_idx = [i for i in range(len(arrays)) if i not in consts]

    def f(*dyn):
        full = list(arrays)
        for i, d in zip(dyn_idx, dyn):
            full[i] = d
        return fn(*full)

    staged = tg.jit(f, freeze_closure=True)
    dyn = [arrays[i] for i in dyn_idx]
    if mode == "eager":
        with tg.eager():
            return quiet(staged, *dyn)
    return quiet(staged, *dyn)


def assert_exact(got, want, values=True):
    """Outside transforms: the very same result NumPy gives (type, dtype, shape, values)."""
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want), f"container {type(got).__name__} != {type(want).__name__}"
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_exact(g, w, values)
        return
    assert type(got) is type(want), f"type {type(got).__name__} != NumPy's {type(want).__name__}"
    if isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype, f"dtype {got.dtype} != NumPy's {want.dtype}"
        assert got.shape == want.shape, f"shape {got.shape} != NumPy's {want.shape}"
        if values:
            np.testing.assert_array_equal(got, want)
    elif values:
        assert got == want or (got != got and want != want), f"{got!r} != NumPy's {want!r}"


def assert_close(got, want, values=True, what=""):
    """Traced results: ndarrays (0-d for scalars) with NumPy's dtype and shape, values within a
    dtype-dependent tolerance (exact for ints and bools)."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), \
            f"{what}: got {type(got).__name__} of {len(got) if hasattr(got, '__len__') else '?'}"
        assert type(got) is type(want), f"{what}: container {type(got).__name__} != {type(want).__name__}"
        for g, w in zip(got, want):
            assert_close(g, w, values, what)
        return
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), f"{what}: traced result is a {type(got).__name__}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != NumPy's {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != NumPy's {want.shape}"
    if not values:
        return
    if want.dtype.kind == "f":
        tol = TOL.get(want.dtype, TOL[np.dtype(np.float32)])
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=what, **tol)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def check_error_parity(np_exc, call):
    """NumPy raised `np_exc`: tracegrad must raise the same kind of error (never return)."""
    kind = builtin_base(type(np_exc))
    with pytest.raises(kind):
        call()
