"""Tier-1 op tests, driven by the spec table in tests/op_specs.py.

For every row: (a) outside transforms `tnp.f(ndarray...)` is exactly `np.f(...)`; (b) traced (jit on
the interpreter backend, and eager), both as `tnp.f` and as plain `np.f` on traced values, the result
has NumPy's shape and dtype and values within tolerance, for float32/float64 and for int/bool inputs
where NumPy accepts them (and an error where NumPy raises one); (c) derivatives of the
differentiable ones agree with finite differences, first and second order, forward and reverse
mode, in float64; (d) "no grad" ops give zero gradients and never crash.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from op_harness import (FEW, GRADS, MODES, TWO, VALUES, assert_close, assert_exact, check_error_parity,
                        outcome, quiet, run_traced)  # noqa: F401
from op_specs import ALL_DTYPES, BY_NAME, SPECS, TIER1, specs

# NumPy never dispatches these (or some of their arguments, _NOT_DISPATCHED below) to
# __array_function__: written `np.NAME(...)` they trace because tracegrad.numpy.plain swaps the
# module attribute while tracing, so the spelling is resolved at call time here (the spec's
# function object was captured before any trace: NumPy's own)
_NO_NP_DISPATCH = {"asarray", "array", "full"}


def _np_spelling(spec):
    if spec.name in _NO_NP_DISPATCH or spec.name in _NOT_DISPATCHED:
        return lambda *a, **k: getattr(np, spec.name)(*a, **k)
    return spec.np_fn


def _ids(xs):
    return [getattr(x, "name", str(x)) for x in xs]


def _seed(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


# ---------------------------------------------------------------- the table itself

def test_table_covers_every_exported_function():
    """Every function of the `tracegrad.numpy` namespace registered through `numpy_function` has a
    row (submodules such as `tracegrad.numpy.linalg` have their own test files)."""
    exported = {n for n in dir(tnp) if hasattr(getattr(tnp, n), "_tracegrad_impl")}
    missing = sorted(exported - set(BY_NAME))
    assert not missing, f"tracegrad.numpy functions with no row in tests/op_specs.py: {missing}"
    stale = sorted(set(BY_NAME) - exported)
    assert not stale, f"rows in tests/op_specs.py for names tracegrad.numpy does not export: {stale}"


def test_table_covers_tier1():
    missing = sorted(set(TIER1) - set(BY_NAME))
    assert not missing, f"tier-1 functions with no row: {missing}"


def test_namespace_has_no_stray_modules():
    # `from .elementwise import *` must not leak helpers (np, ops, math, ...) into tracegrad.numpy
    for name in ("np", "ops", "P", "math", "builtins", "numpy_function", "annotations"):
        assert not hasattr(tnp, name), f"tracegrad.numpy.{name} leaked from an implementation module"


# ---------------------------------------------------------------- (a) outside transforms

@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
@VALUES
@given(data=st.data())
def test_outside_transforms_is_numpy(spec, data):
    case = spec.draw(data)
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    rng = _seed(data)
    for dtype in spec.dtypes:
        arrays = case.arrays(rng, dtype)
        want, err = outcome(case.invoke, spec.np_fn, arrays)
        if err is not None:
            check_error_parity(err, lambda: quiet(case.invoke, spec.tnp_fn, arrays))
            continue
        got = quiet(case.invoke, spec.tnp_fn, arrays)
        assert_exact(got, want, values=spec.name != "empty_like")


# ---------------------------------------------------------------- (b) traced values

def _compare(spec, case, arrays, got, want, what):
    if spec.check is not None:
        spec.check(got, want, arrays, case)
    else:
        assert_close(got, want, values=spec.name != "empty_like", what=what)


_TRACED = [s for s in SPECS if s.kind != "static"]


@pytest.mark.parametrize("spec", _TRACED, ids=_ids(_TRACED))
@VALUES
@given(data=st.data())
def test_traced_matches_numpy(spec, data):
    case = spec.draw(data)
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    rng = _seed(data)
    fns = [("tnp", spec.tnp_fn), ("np", _np_spelling(spec))]
    for dtype in spec.dtypes:
        arrays = case.arrays(rng, dtype)
        want, err = outcome(case.invoke, spec.np_fn, arrays)
        for label, fn in fns:
            for mode in MODES:
                call = lambda: run_traced(lambda *a: case.invoke(fn, a), arrays, mode)
                what = f"{label}.{spec.name} {mode} {np.dtype(dtype).name} {case.kwargs}"
                if err is not None:
                    check_error_parity(err, call)
                    continue
                _compare(spec, case, arrays, call(), want, what)


_MULTI = [s for s in SPECS if s.kind not in ("creation", "static")]
# arguments NumPy does not dispatch on (by case): np.pad's constant_values, np.select's default
_NOT_DISPATCHED = {"pad": lambda n: {1}, "select": lambda n: {n - 1} if n % 2 else set()}


@pytest.mark.parametrize("spec", _MULTI, ids=_ids(_MULTI))
@FEW
@given(data=st.data())
def test_traced_with_constant_operands(spec, data):
    """One operand traced, the others NumPy constants closed over (also: `ndarray OP tracer`)."""
    case = spec.draw(data)
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    rng = _seed(data)
    n = len(case.shapes)
    if n < 2:
        return
    for dtype in (np.float32, np.float64, np.int64):
        arrays = case.arrays(rng, dtype)
        want, err = outcome(case.invoke, spec.np_fn, arrays)
        for fn in (spec.tnp_fn, _np_spelling(spec)):
            for traced in range(n):
                consts = tuple(i for i in range(n) if i != traced)
                call = lambda: run_traced(lambda *a: case.invoke(fn, a), arrays, "jit", consts)
                if fn is not spec.tnp_fn and traced in _NOT_DISPATCHED.get(spec.name, lambda n: ())(n):
                    # a reference taken before tracing is NumPy's own function: it converts this
                    # argument with np.asarray, which must be an error, never a silent constant
                    with pytest.raises(Exception):
                        run_traced(lambda *a: case.invoke(spec.np_fn, a), arrays, "jit", consts)
                if err is not None:
                    check_error_parity(err, call)
                else:
                    _compare(spec, case, arrays, call(), want, f"{spec.name} traced arg {traced} {dtype}")


_PAIRS = [(np.float32, np.float64), (np.int32, np.float32), (np.int64, np.float32),
          (np.bool_, np.float32), (np.int32, np.int64), (np.bool_, np.int32), (np.int64, np.float64),
          (np.int32, np.float64), (np.bool_, np.float64)]
_BINARY = specs("binary")


@pytest.mark.parametrize("spec", _BINARY, ids=_ids(_BINARY))
@FEW
@given(data=st.data())
def test_mixed_dtype_promotion(spec, data):
    case = spec.draw(data)
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    rng = _seed(data)
    for a, b in _PAIRS:
        for da, db in ((a, b), (b, a)):
            arrays = case.arrays(rng, np.float64)
            dts = [da, db, db][:len(arrays)]
            arrays = [x if d.fixed is not None else
                      d.draw(rng, np.shape(x), dt) for x, d, dt in zip(arrays, case.domains, dts)]
            want, err = outcome(case.invoke, spec.np_fn, arrays)
            call = lambda: run_traced(lambda *xs: case.invoke(spec.tnp_fn, xs), arrays, "jit")
            if err is not None:
                check_error_parity(err, call)
            else:
                assert_close(call(), want, what=f"{spec.name}({np.dtype(da).name}, {np.dtype(db).name})")


_SCALARS = [0.01, 2, -3, 0.5, True, 2.5]


@pytest.mark.parametrize("spec", [s for s in _BINARY if s.name != "where"],
                         ids=_ids([s for s in _BINARY if s.name != "where"]))
@TWO
@given(data=st.data())
def test_python_scalar_operands_nep50(spec, data):
    """`f32_array * 0.01` stays float32: Python scalars are weak, whether they are constants in the
    traced function or arguments of the compiled function."""
    shape = data.draw(st.sampled_from([(), (3,), (2, 3)]))
    rng = _seed(data)
    dx, dy = BY_NAME[spec.name].draw(data).domains[:2]
    for dtype in ALL_DTYPES:
        for scalar in _SCALARS:
            for scalar_first in (False, True):
                arr = (dy if scalar_first else dx).draw(rng, shape, dtype)
                order = (lambda s, a: (s, a)) if scalar_first else (lambda s, a: (a, s))
                want, err = outcome(spec.np_fn, *order(scalar, arr))
                closure = lambda: run_traced(lambda a: spec.tnp_fn(*order(scalar, a)), [arr], "jit")
                weak_arg = lambda: run_traced(lambda a, s: spec.tnp_fn(*order(s, a)),
                                              [arr, scalar], "jit")
                eager_arg = lambda: run_traced(lambda a, s: spec.tnp_fn(*order(s, a)),
                                               [arr, scalar], "eager")
                what = f"{spec.name} {np.dtype(dtype).name} with {scalar!r} first={scalar_first}"
                for call in (closure, weak_arg, eager_arg):
                    if err is not None:
                        check_error_parity(err, call)
                    else:
                        assert_close(call(), want, what=what)


# f(array, s) with s a Python scalar: Python arithmetic on s keeps it a Python scalar (weak), a
# NumPy function of it is a NumPy scalar (strong), exactly as when f runs on plain NumPy
_WEAK_CHAINS = {
    "a * (s * 2)": lambda a, s: a * (s * 2),
    "a * -s": lambda a, s: a * -s,
    "a * abs(s)": lambda a, s: a * abs(s),
    "a * (2 ** s)": lambda a, s: a * (2 ** s),
    "a * (s > 0)": lambda a, s: a * (s > 0),
    "a * divmod(s, 2)[1]": lambda a, s: a * divmod(s, 2)[1],
    "a * (s / 4 + 1)": lambda a, s: a * (s / 4 + 1),
    "a * np.exp(s)": lambda a, s: a * np.exp(s),
    "a * tnp.exp(s)": lambda a, s: a * tnp.exp(s),
    "a * np.square(s)": lambda a, s: a * np.square(s),
    "a + np.sum(s)": lambda a, s: a + np.sum(s),
    "a * tnp.maximum(s, 1)": lambda a, s: a * tnp.maximum(s, 1),
    "a * np.multiply(s, 2)": lambda a, s: a * np.multiply(s, 2),
}


@pytest.mark.parametrize("expr", list(_WEAK_CHAINS))
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("s", [3, 0.5])
def test_python_scalar_arguments_promote_like_python_scalars(expr, dtype, s):
    f = _WEAK_CHAINS[expr]
    a = np.arange(1, 4).astype(dtype)
    want, err = outcome(f, a, s)
    for mode in MODES:
        call = lambda: run_traced(f, [a, s], mode)
        if err is not None:
            check_error_parity(err, call)
        else:
            assert_close(call(), want, what=f"{expr} {mode}")


# ---------------------------------------------------------------- special values

_SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, np.inf, -np.inf, np.nan, 1e30, -1e30,
                     1e-30, 7.25])
_ELEMENTWISE = [s for s in SPECS if s.kind in ("unary", "binary") and s.name not in
                ("clip", "where", "nan_to_num")]


@pytest.mark.parametrize("spec", _ELEMENTWISE, ids=_ids(_ELEMENTWISE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(spec, dtype):
    """inf, nan, signed zeros, huge and tiny values: the same results as NumPy."""
    x = _SPECIAL.astype(dtype)
    args = [x] if spec.kind == "unary" else [x[:, None], x[None, :]]
    if spec.name in ("round", "around"):
        fns = [lambda f, a: f(a, 2), lambda f, a: f(a, -1)]
    else:
        fns = [lambda f, *a: f(*a)]
    for call in fns:
        want, err = outcome(call, spec.np_fn, *args)
        for mode in MODES:
            got = lambda: run_traced(lambda *a: call(spec.tnp_fn, *a), args, mode)
            if err is not None:
                check_error_parity(err, got)
            else:
                assert_close(got(), want, what=f"{spec.name} {mode}")


def test_special_values_clip_where_nan_to_num():
    x = _SPECIAL
    for kw in ({}, {"nan": 1.5}, {"posinf": 7.0, "neginf": -7.0}):
        assert_close(run_traced(lambda a: tnp.nan_to_num(a, **kw), [x], "jit"), np.nan_to_num(x, **kw))
    assert_close(run_traced(lambda a: tnp.clip(a, -1, 2), [x], "jit"), np.clip(x, -1, 2))
    assert_close(run_traced(lambda a: tnp.where(a > 0, a, -a), [x], "eager"),
                 np.where(x > 0, x, -x))


# ---------------------------------------------------------------- (c) derivatives

_DIFF = [s for s in SPECS if s.grad and s.kind != "static"]


@pytest.mark.parametrize("spec", _DIFF, ids=_ids(_DIFF))
@GRADS
@given(data=st.data())
def test_grads_match_finite_differences(spec, data):
    case = spec.draw(data, min_side=1).for_grad()
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    arrays = case.arrays(_seed(data), np.float64)
    _, err = outcome(case.invoke, spec.np_fn, arrays)
    if err is not None:   # an invalid call for NumPy: tracegrad raises the same kind of error
        check_error_parity(err, lambda: run_traced(spec.grad_fn(case), arrays, "jit"))
        return
    quiet(tg.check_grads, spec.grad_fn(case), tuple(arrays), order=2, modes=("fwd", "rev"))
    if spec.name not in _NO_NP_DISPATCH and spec.grad_call is None:
        # plain `np.f(tracer)` records the same derivative
        quiet(tg.check_grads, lambda *a: case.invoke(spec.np_fn, a), tuple(arrays), order=1, modes="rev")


@pytest.mark.parametrize("spec", _DIFF, ids=_ids(_DIFF))
@FEW
@given(data=st.data())
def test_float32_gradients_keep_float32(spec, data):
    """Gradients have their input's shape and dtype: float32 in, float32 gradient (close to the
    float64 one), in reverse mode (grad) and forward mode (jvp)."""
    case = spec.draw(data, min_side=1)
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    arrays = case.arrays(_seed(data), np.float32)
    fl = [i for i, a in enumerate(arrays) if a.dtype == np.float32]
    _, err = outcome(case.invoke, spec.np_fn, arrays)
    if err is not None or not fl:
        return

    def loss(*xs):
        full = list(arrays)
        for i, x in zip(fl, xs):
            full[i] = x
        leaves = tg.tree_leaves(spec.grad_fn(case)(*full))
        return sum(tnp.sum(tnp.asarray(leaf, tnp.float32)) for leaf in leaves)

    x32 = [arrays[i] for i in fl]
    x64 = [x.astype(np.float64) for x in x32]
    argnums = tuple(range(len(fl)))
    for mode in MODES:
        g32 = run_traced(tg.grad(loss, argnums=argnums), x32, mode)
        g64 = run_traced(tg.grad(loss, argnums=argnums), x64, mode)
        for g, g_ref, x in zip(g32, g64, x32):
            assert g.dtype == np.float32 and g.shape == x.shape, f"{g.dtype}{g.shape} for {x.dtype}{x.shape}"
            np.testing.assert_allclose(g, g_ref, rtol=2e-3, atol=2e-3)
        _, t = run_traced(lambda *xs: tg.jvp(loss, tuple(xs), tuple(np.ones_like(x) for x in xs)), x32, mode)
        assert t.dtype == np.float32


_DIFF_EMPTY = [s for s in _DIFF if s.kind in ("unary", "binary", "product", "shape", "scan")
               or s.name in ("sum", "prod")]


@pytest.mark.parametrize("spec", _DIFF_EMPTY, ids=_ids(_DIFF_EMPTY))
@FEW
@given(data=st.data())
def test_grads_with_size_zero_axes(spec, data):
    """Shapes with size-0 axes (and size-1, 0-d): derivatives are empty or zero, never a crash."""
    case = spec.draw(data, min_side=0).for_grad()
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    arrays = case.arrays(_seed(data), np.float64)
    _, err = outcome(case.invoke, spec.np_fn, arrays)
    if err is not None:   # an invalid call for NumPy (e.g. a reduction without identity): same error
        check_error_parity(err, lambda: run_traced(spec.grad_fn(case), arrays, "jit"))
        return
    quiet(tg.check_grads, spec.grad_fn(case), tuple(arrays), order=1, modes=("fwd", "rev"))


# ---------------------------------------------------------------- (d) no-grad ops

_NODIFF = [s for s in SPECS if not s.grad and s.kind != "static"]


@pytest.mark.parametrize("spec", _NODIFF, ids=_ids(_NODIFF))
@FEW
@given(data=st.data())
def test_nograd_ops_have_zero_gradient(spec, data):
    case = spec.draw(data, min_side=1)
    note(f"case: shapes={case.shapes} domains={case.domains} kwargs={case.kwargs}")
    rng = _seed(data)
    arrays = case.arrays(rng, np.float64)
    fl = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]

    def full(xs):
        out = list(arrays)
        for i, x in zip(fl, xs):
            out[i] = x
        return out

    def loss(*xs):
        return tnp.sum(tnp.asarray(case.invoke(spec.tnp_fn, full(xs)), tnp.float64))

    floats = [arrays[i] for i in fl]
    want, err = outcome(case.invoke, spec.np_fn, arrays)
    if err is not None:   # e.g. bitwise ops on floats: the same error, also under grad
        check_error_parity(err, lambda: run_traced(tg.grad(loss), floats, "jit"))
        return
    for mode in MODES:
        g = run_traced(lambda *xs: tg.grad(loss, argnums=tuple(range(len(fl))))(*xs), floats, mode)
        for gi, x in zip(g, floats):
            assert gi.shape == x.shape and gi.dtype == x.dtype
            np.testing.assert_array_equal(gi, np.zeros_like(x))
        tangents = tuple(rng.standard_normal(x.shape) for x in floats)
        _, t = run_traced(lambda *xs: tg.jvp(loss, tuple(xs), tangents), floats, mode)
        assert t == 0.0
    if spec.float_out and spec.kind == "unary":
        # d/dx sum(f(x) * x) = f(x) exactly: f contributes no derivative (and no NaN)
        x = floats[0]
        g = run_traced(tg.grad(lambda x: tnp.sum(case.invoke(spec.tnp_fn, [x]) * x)), [x], "jit")
        np.testing.assert_array_equal(g, quiet(case.invoke, spec.np_fn, [x]))


def test_grad_wrt_int_input_is_type_error():
    with pytest.raises(TypeError):
        tg.grad(lambda x: tnp.sum(tnp.floor_divide(x, 2) * 1.0))(np.arange(3))
