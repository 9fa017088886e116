"""Tracer attributes, methods and operators behave like ndarray's (values, dtypes, shapes), traced
under jit (interpreter backend) and eager mode, with derivatives checked where they exist."""
from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.trace import Tracer
from op_harness import (FEW, MODES, VALUES, assert_close, check_error_parity,
                        outcome, run_traced)  # noqa: F401
from op_specs import KINK_A, NONZERO, REAL, broadcast_pair, shapes

DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_)


def _seed(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


# ---------------------------------------------------------------- static attributes

def test_static_attributes_inside_trace():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    seen = {}

    def f(t):
        seen.update(shape=t.shape, ndim=t.ndim, size=t.size, dtype=t.dtype, len=len(t),
                    T=t.T.shape, mT=t.mT.shape, np_shape=np.shape(t), np_ndim=np.ndim(t),
                    np_size=np.size(t), tnp_shape=tnp.shape(t), tnp_ndim=tnp.ndim(t),
                    tnp_size=tnp.size(t), size_axis=tnp.size(t, 1))
        return t.T
    for mode in MODES:
        seen.clear()
        out = run_traced(f, [x], mode)
        assert_close(out, x.T)
        assert seen == dict(shape=(2, 3, 4), ndim=3, size=24, dtype=np.dtype(np.float32), len=2,
                            T=(4, 3, 2), mT=(2, 4, 3), np_shape=(2, 3, 4), np_ndim=3, np_size=24,
                            tnp_shape=(2, 3, 4), tnp_ndim=3, tnp_size=24, size_axis=3)
        for v in seen.values():
            assert not isinstance(v, Tracer)


def test_len_of_0d_is_type_error():
    with pytest.raises(TypeError):
        tg.jit(lambda t: len(t) * t)(np.float64(1.0))


# ---------------------------------------------------------------- methods

# (method call on the array, shapes it needs, differentiable)
METHODS = {
    "T": (lambda a: a.T, 0, True),
    "mT": (lambda a: a.mT, 2, True),
    "reshape(-1)": (lambda a: a.reshape(-1), 0, True),
    "reshape(tuple)": (lambda a: a.reshape((a.size,)), 0, True),
    "reshape(*ints)": (lambda a: a.reshape(1, a.size, 1), 0, True),
    "ravel": (lambda a: a.ravel(), 0, True),
    "flatten": (lambda a: a.flatten(), 0, True),
    "squeeze": (lambda a: a.squeeze(), 0, True),
    "transpose()": (lambda a: a.transpose(), 0, True),
    "transpose(*axes)": (lambda a: a.transpose(*range(a.ndim)[::-1]), 0, True),
    "transpose(tuple)": (lambda a: a.transpose(tuple(range(a.ndim))), 0, True),
    "swapaxes": (lambda a: a.swapaxes(0, -1), 1, True),
    "astype(f32)": (lambda a: a.astype(np.float32), 0, False),
    "astype(f64)": (lambda a: a.astype(np.float64), 0, True),
    "astype(int)": (lambda a: a.astype(np.int64), 0, False),
    "astype(bool)": (lambda a: a.astype(bool), 0, False),
    "sum()": (lambda a: a.sum(), 0, True),
    "sum(axis,keepdims)": (lambda a: a.sum(axis=-1, keepdims=True), 1, True),
    "sum(0)": (lambda a: a.sum(0), 1, True),
    "mean()": (lambda a: a.mean(), 1, True),
    "mean(axis)": (lambda a: a.mean(axis=0), 1, True),
    "prod(axis)": (lambda a: a.prod(axis=-1), 1, True),
    "max()": (lambda a: a.max(), 1, True),
    "max(axis,keepdims)": (lambda a: a.max(axis=0, keepdims=True), 1, True),
    "min(axis)": (lambda a: a.min(-1), 1, True),
    "var()": (lambda a: a.var(), 1, True),
    "var(ddof)": (lambda a: a.var(axis=0, ddof=1), 1, True),
    "std()": (lambda a: a.std(), 1, True),
    "std(ddof,keepdims)": (lambda a: a.std(ddof=1, keepdims=True), 1, True),
    "dot(vec)": (lambda a: a.dot(np.linspace(-1, 1, a.shape[-1])), 1, True),
    "clip(lo,hi)": (lambda a: a.clip(-1.1, 1.3), 0, True),
    "clip(min=)": (lambda a: a.clip(min=0.3), 0, True),
    "clip(max=)": (lambda a: a.clip(max=0.3), 0, True),
    "all()": (lambda a: a.all(), 0, False),
    "any(axis)": (lambda a: a.any(axis=0), 1, False),
    "argmax()": (lambda a: a.argmax(), 1, False),
    "argmin(axis)": (lambda a: a.argmin(axis=-1), 1, False),
    "ptp() (gone in NumPy 2)": (lambda a: a.ptp(), 1, False),
    "round(1)": (lambda a: a.round(1), 0, False),
    "cumsum()": (lambda a: a.cumsum(), 0, True),
    "cumsum(axis)": (lambda a: a.cumsum(axis=-1), 1, True),
    "copy": (lambda a: a.copy(), 0, True),
    "conj": (lambda a: a.conj(), 0, True),
    "real": (lambda a: a.real, 0, True),
    "imag": (lambda a: a.imag, 0, True),
}

_REFERENCE = {}


@pytest.mark.parametrize("name", list(METHODS))
@VALUES
@given(data=st.data())
def test_method_matches_ndarray(name, data):
    method, min_dims, differentiable = METHODS[name]
    shape = data.draw(shapes(min_dims=min_dims, min_side=1 if name in ("max()", "min(axis)",
                      "max(axis,keepdims)", "argmax()", "argmin(axis)") else 0))
    note(f"shape {shape}")
    rng = _seed(data)
    ref = _REFERENCE.get(name, method)
    for dtype in DTYPES:
        x = (KINK_A if "clip" in name else REAL).draw(rng, shape, dtype)
        want, err = outcome(ref, x)
        for mode in MODES:
            call = lambda: run_traced(method, [x], mode)
            if err is not None:
                check_error_parity(err, call)
            else:
                assert_close(call(), want, what=f"{name} {mode} {np.dtype(dtype).name}")


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m[2]])
@FEW
@given(data=st.data())
def test_method_grads(name, data):
    method, min_dims, _ = METHODS[name]
    shape = data.draw(shapes(min_dims=min_dims, min_side=2 if "std" in name or "var" in name else 1))
    x = (KINK_A if "clip" in name else REAL).draw(_seed(data), shape, np.float64)
    if name in ("max()", "max(axis,keepdims)", "min(axis)"):
        x = x + np.arange(x.size).reshape(shape) * 0.01   # no ties
    tg.check_grads(method, (x,), order=2)


# ---------------------------------------------------------------- operators

BINARY_OPS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "@": operator.matmul,
    "&": operator.and_, "|": operator.or_, "^": operator.xor,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
    "!=": operator.ne,
}
_DIFF_OPS = ("+", "-", "*", "/", "%", "**", "@")


def _operands(op, rng, dtype, sx, sy):
    x = REAL.draw(rng, sx, dtype)
    y = (NONZERO if op in ("/", "//", "%") else REAL).draw(rng, sy, dtype)
    if op == "**":
        x = np.abs(x) + (x.dtype.kind == "f") * 0.5 if x.dtype.kind != "b" else x
        y = np.abs(y) if y.dtype.kind != "b" else y
    return x, y


def _shapes_for(op, data):
    if op == "@":
        n = data.draw(st.integers(1, 3))
        return data.draw(st.sampled_from([((n,), (n,)), ((2, n), (n,)), ((n,), (n, 2)),
                                          ((3, 2, n), (n, 4)), ((1, 2, n), (3, n, 1))]))
    return tuple(broadcast_pair(data))


@pytest.mark.parametrize("op", list(BINARY_OPS))
@VALUES
@given(data=st.data())
def test_binary_operator(op, data):
    """`t OP t`, `t OP ndarray`, `ndarray OP t` (through __array_ufunc__) and `x OP= y` rebinding."""
    fn = BINARY_OPS[op]
    sx, sy = _shapes_for(op, data)
    rng = _seed(data)
    for dtype in DTYPES:
        x, y = _operands(op, rng, dtype, sx, sy)
        x0, y0 = x.copy(), y.copy()
        want, err = outcome(fn, x, y)
        variants = [lambda: run_traced(fn, [x, y], "jit"),
                    lambda: run_traced(fn, [x, y], "eager"),
                    lambda: run_traced(fn, [x, y], "jit", consts=(0,)),    # ndarray OP tracer
                    lambda: run_traced(fn, [x, y], "jit", consts=(1,))]    # tracer OP ndarray
        for call in variants:
            if err is not None:
                check_error_parity(err, call)
            else:
                assert_close(call(), want, what=f"{op} {np.dtype(dtype).name}")
        if err is None and np.shape(want) == np.shape(x) and np.result_type(want) == x.dtype:
            iop = getattr(operator, "i" + fn.__name__.strip("_"), None)
            if iop is not None:
                def rebinding(a, b):
                    c = a
                    c = iop(c, b)          # x OP= y on a tracer rebinds, never mutates
                    return c
                assert_close(run_traced(rebinding, [x, y], "jit", consts=(1,)), want)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("op", list(BINARY_OPS))
@FEW
@given(data=st.data())
def test_operator_with_python_scalars(op, data):
    """Reflected operators with Python scalars, NEP 50: `f32 * 0.01` is float32, `2 ** f32` too."""
    if op == "@":
        return
    fn = BINARY_OPS[op]
    shape = data.draw(st.sampled_from([(), (3,), (2, 2)]))
    rng = _seed(data)
    for dtype in DTYPES:
        for s in (0.01, 3, True, -2):
            x = (NONZERO if op in ("**", "/", "//", "%") else REAL).draw(rng, shape, dtype)
            if op == "**" and x.dtype.kind != "b":
                x = np.abs(x)
            for order in ((lambda a: (a, s)), (lambda a: (s, a))):
                want, err = outcome(lambda a: fn(*order(a)), x)
                call = lambda: run_traced(lambda a: fn(*order(a)), [x], "jit")
                if err is not None:
                    check_error_parity(err, call)
                else:
                    assert_close(call(), want, what=f"{op} {np.dtype(dtype).name} {s!r}")


@pytest.mark.parametrize("op", _DIFF_OPS)
@FEW
@given(data=st.data())
def test_operator_grads(op, data):
    fn = BINARY_OPS[op]
    sx, sy = _shapes_for(op, data)
    rng = _seed(data)
    if op == "%":
        x = 2.0 * rng.integers(-2, 3, sx) + rng.uniform(0.5, 1.5, sx)
        y = rng.choice([-1.0, 1.0], sy) * rng.uniform(1.95, 2.05, sy)
    else:
        x, y = _operands(op, rng, np.float64, sx, sy)
        if op == "**":
            x = x + 0.2
    tg.check_grads(fn, (x, y), order=2)
    # reflected: scalar on the left
    tg.check_grads(lambda a: fn(1.5, a) if op != "@" else fn(np.ones(np.shape(a)[-2 if np.ndim(a) > 1 else 0]), a),
                   (y if op not in ("/", "%", "**") else np.abs(y) + 1.0,), order=2)


UNARY_OPS = {"-x": operator.neg, "+x": operator.pos, "abs(x)": abs, "~x": operator.invert}


@pytest.mark.parametrize("op", list(UNARY_OPS))
@FEW
@given(data=st.data())
def test_unary_operator(op, data):
    fn = UNARY_OPS[op]
    shape = data.draw(shapes())
    rng = _seed(data)
    for dtype in DTYPES:
        x = NONZERO.draw(rng, shape, dtype)
        want, err = outcome(fn, x)
        for mode in MODES:
            call = lambda: run_traced(fn, [x], mode)
            if err is not None:
                check_error_parity(err, call)
            else:
                assert_close(call(), want, what=f"{op} {np.dtype(dtype).name}")
    if op != "~x":
        tg.check_grads(fn, (NONZERO.draw(rng, shape, np.float64),), order=2)


def test_inplace_operator_on_numpy_constant_never_mutates_it():
    """`c += tracer` with `c` a NumPy array would have to write a traced value into it: an error
    (suggesting to use the returned value), and `c` is unchanged."""
    c = np.ones(3)
    for mode in MODES:
        def f(t):
            d = c
            d += t
            return d
        with pytest.raises(TypeError, match="returned value"):
            run_traced(f, [np.arange(3.0)], mode)
        np.testing.assert_array_equal(c, np.ones(3))
        # the same written as rebinding works
        assert_close(run_traced(lambda t: (lambda d: d + t)(c), [np.arange(3.0)], mode), c + np.arange(3.0))


def test_divmod():
    x, y = np.array([-5.5, 5.5, 7.0, 3.0]), np.array([2.0, -2.0, 2.5, 3.0])
    for mode in MODES:
        q, r = run_traced(lambda a, b: divmod(a, b), [x, y], mode)
        qn, rn = divmod(x, y)
        assert_close(q, qn)
        assert_close(r, rn)
        q, r = run_traced(lambda a: divmod(7, a), [np.array([2, -3, 4])], mode)
        assert_close(q, 7 // np.array([2, -3, 4]))
        assert_close(r, 7 % np.array([2, -3, 4]))


def test_iteration_over_leading_axis():
    x = np.arange(6.0).reshape(3, 2)
    for mode in MODES:
        out = run_traced(lambda t: [row * 2 for row in t], [x], mode)
        assert len(out) == 3
        for o, r in zip(out, x):
            assert_close(o, r * 2)
