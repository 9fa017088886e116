"""Three-way agreement for every primitive: NumPy impl (the reference), eager mode, compiled code.

Each test binds many primitives in ONE traced function (so one Numba compile covers them; the
disk cache makes reruns cheap) and compares every output: same shape, dtype exactly as the IR
declares, values within floating-point tolerance (NaN where the reference has NaN).
"""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import primitives as P
from tracegrad.ir import Aval
from tracegrad.primitives import all_primitives, impl_rules, shape_rules
from tracegrad.trace import bind

from compiler.rules import LOWERINGS

pytestmark = pytest.mark.compiled

TOL = {np.dtype(np.float32): dict(rtol=3e-5, atol=3e-6), np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13)}
RNG = np.random.default_rng(1234)


def test_every_primitive_with_an_impl_has_a_lowering():
    missing = [name for name, p in all_primitives.items()
               if p in impl_rules and p not in LOWERINGS
               and not p.inline_before_compile]
    assert not missing, f"primitives without a Numba lowering in compiler/lowering/: {missing}"


# ---------------------------------------------------------------- inputs

def data(shape, dtype, kind="any"):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return RNG.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        lo, hi = {"pos": (1, 5), "small": (0, 3), "nonzero": (1, 6)}.get(kind, (-6, 6))
        v = RNG.integers(lo, hi + 1, shape)
        if kind == "nonzero":
            v = v * RNG.choice([-1, 1], shape)
        return v.astype(dtype)
    n = int(np.prod(shape))
    if kind == "any":
        v = RNG.uniform(-3, 3, n)
    elif kind == "pos":
        v = RNG.uniform(0.1, 4, n)
    elif kind == "small":
        v = RNG.uniform(-1.2, 1.2, n)
    elif kind == "unit":
        v = RNG.uniform(-0.95, 0.95, n)
    elif kind == "ge1":
        v = RNG.uniform(1.0, 4, n)
    elif kind == "halves":
        v = RNG.integers(-6, 7, n) / 2.0
    elif kind == "ties":
        v = RNG.integers(-2, 3, n).astype(float)
    elif kind == "special":
        v = RNG.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0], n)
    else:
        raise ValueError(kind)
    return v.reshape(shape).astype(dtype)


class Case:
    """`prim[params](*inputs)`; an input is an array (a traced argument), or ("const", array)
    (closed over), or ("lit", scalar)."""

    def __init__(self, prim, inputs, **params):
        self.prim, self.inputs, self.params = prim, inputs, params

    def __repr__(self):
        return f"{self.prim.name}{self.params or ''}"


def run_cases(cases):
    args, slots = [], []
    for c in cases:
        idx = []
        for x in c.inputs:
            if isinstance(x, tuple):
                idx.append(x)
            else:
                idx.append(("arg", len(args)))
                args.append(x)
        slots.append(idx)

    def fn(*a):
        outs = []
        for c, idx in zip(cases, slots):
            ins = [a[v] if k == "arg" else v for k, v in idx]
            r = bind(c.prim, *ins, **c.params)
            outs.extend(r if c.prim.multiple_results else [r])
        return tuple(outs)

    with np.errstate(all="ignore"):
        compiled = tg.jit(fn)(*args)
        with tg.eager():
            eager = tg.jit(fn)(*args)
    k = 0
    for c in cases:
        arrays = [np.asarray(x[1]) if isinstance(x, tuple) else x for x in c.inputs]
        avals = shape_rules[c.prim](*[Aval(np.shape(x), np.asarray(x).dtype) for x in arrays], **c.params)
        avals = avals if c.prim.multiple_results else (avals,)
        with np.errstate(all="ignore"):
            ref = impl_rules[c.prim](*arrays, **c.params)
        ref = ref if c.prim.multiple_results else (ref,)
        for aval, want in zip(avals, ref):
            want = np.asarray(want).astype(aval.dtype)
            for mode, got in (("compiled", compiled[k]), ("eager", eager[k])):
                check(f"{c!r} output {k} ({mode})", got, want, aval)
            k += 1


def check(what, got, want, aval):
    got = np.asarray(got)
    assert got.shape == aval.shape, f"{what}: shape {got.shape} != {aval.shape}"
    assert got.dtype == aval.dtype, f"{what}: dtype {got.dtype} != {aval.dtype}"
    if aval.dtype.kind == "f":
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=what, **TOL[aval.dtype])
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


# ---------------------------------------------------------------- floating point

# every unary float primitive, on the inputs its declaration says it is defined on
UNARY_DOMAINS = {p: p.domain for p in all_primitives.values()
                 if p.family in ("unary", "predicate") and p.domain is not None}


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_float_elementwise(dt):
    s = (3, 4)
    cases = [Case(p, [data(s, dt, d)]) for p, d in UNARY_DOMAINS.items()]
    cases += [Case(P.integer_pow_p, [data(s, dt, "pos")], y=y) for y in (0, 1, 2, 3, 5, -1, -2, -3)]
    other = np.float64 if dt == np.float32 else np.float32
    cases += [Case(P.convert_p, [data(s, dt, "any")], dtype=np.dtype(t)) for t in (other, np.int32, np.bool_)]
    cases += [Case(P.convert_p, [data(s, dt, "special")], dtype=np.dtype(np.bool_))]
    for p in (P.add_p, P.sub_p, P.mul_p, P.div_p):
        cases += [Case(p, [data(s, dt), data((4,), dt, "pos")]),
                  Case(p, [data((3, 1), dt), data((1, 4), dt, "pos")]),
                  Case(p, [("lit", dt(0.3)), data(s, dt, "pos")])]
    cases += [Case(P.pow_p, [data(s, dt, "pos"), data(s, dt, "any")]),
              Case(P.pow_p, [data(s, dt, "any"), ("lit", dt(2.0))]),
              Case(P.max_p, [data(s, dt, "special"), data(s, dt, "special")]),
              Case(P.min_p, [data(s, dt, "special"), data((4,), dt, "any")]),
              Case(P.atan2_p, [data(s, dt), data(s, dt)]),
              Case(P.rem_p, [data(s, dt), data(s, dt, "pos")]),
              Case(P.rem_p, [data(s, dt), ("lit", dt(-0.7))]),
              Case(P.floordiv_p, [data(s, dt), data(s, dt, "pos")])]
    for p in (P.eq_p, P.ne_p, P.lt_p, P.le_p, P.gt_p, P.ge_p):
        cases.append(Case(p, [data(s, dt, "ties"), data((4,), dt, "ties")]))
    cases.append(Case(P.eq_p, [data(s, dt, "special"), data(s, dt, "special")]))
    cases.append(Case(P.select_p, [data(s, np.bool_), data(s, dt), data((3, 1), dt)]))
    cases.append(Case(P.select_p, [data((4,), np.bool_), ("lit", dt(1.5)), data(s, dt)]))
    run_cases(cases)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_float_reductions(dt):
    s = (2, 3, 4)
    cases = []
    for axes in [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]:
        cases.append(Case(P.reduce_sum_p, [data(s, dt)], axes=axes))
    cases += [Case(P.reduce_prod_p, [data(s, dt, "pos")], axes=(1,)),
              Case(P.reduce_prod_p, [data(s, dt, "pos")], axes=(0, 1, 2)),
              Case(P.reduce_max_p, [data(s, dt, "special")], axes=(0, 2)),
              Case(P.reduce_max_p, [data(s, dt)], axes=(2,)),
              Case(P.reduce_min_p, [data(s, dt)], axes=(0,)),
              Case(P.reduce_min_p, [data(s, dt, "special")], axes=(0, 1, 2))]
    cases += [Case(P.argmax_p, [data(s, dt, "ties")], axis=a) for a in (0, 1, 2)]
    cases += [Case(P.argmin_p, [data(s, dt, "ties")], axis=a) for a in (0, 2)]
    cases.append(Case(P.argmax_p, [data(s, dt, "special")], axis=2))
    cases.append(Case(P.reduce_sum_p, [data((3, 0), dt)], axes=(1,)))
    cases.append(Case(P.reduce_sum_p, [data((5,), dt)], axes=()))
    run_cases(cases)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_structure(dt):
    x = data((2, 3, 4), dt)
    cases = [Case(P.reshape_p, [x], shape=(4, 6)),
             Case(P.reshape_p, [("const", data((2, 3), dt))], shape=(6,)),
             Case(P.broadcast_to_p, [data((3, 1), dt)], shape=(2, 3, 4)),
             Case(P.broadcast_to_p, [("lit", dt(2.5))], shape=(2, 2)),
             Case(P.transpose_p, [x], perm=(2, 0, 1)),
             Case(P.slice_p, [x], start=(0, 1, 0), limit=(2, 3, 4), strides=(1, 1, 2)),
             Case(P.slice_p, [data((7,), dt)], start=(1,), limit=(7,), strides=(3,)),
             Case(P.rev_p, [x], axes=(0, 2)),
             Case(P.pad_p, [data((2, 3), dt), ("lit", dt(-1.0))], config=((1, 0, 1), (0, 2, 0))),
             Case(P.pad_p, [data((3,), dt), data((), dt)], config=((2, 1, 2),)),
             Case(P.concatenate_p, [data((2, 1), dt), data((2, 3), dt), ("const", data((2, 2), dt))], axis=1),
             Case(P.concatenate_p, [data((1, 3), dt), data((2, 3), dt)], axis=0)]
    run_cases(cases)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_dot_general(dt):
    c = lambda lc, rc, lb=(), rb=(): dict(contract=(lc, rc), batch=(lb, rb))   # noqa: E731
    cases = [Case(P.dot_general_p, [data((3, 4), dt), data((4, 5), dt)], **c((1,), (0,))),
             Case(P.dot_general_p, [data((4, 3), dt), data((4, 5), dt)], **c((0,), (0,))),
             Case(P.dot_general_p, [data((3, 4), dt), data((5, 4), dt)], **c((1,), (1,))),
             Case(P.dot_general_p, [data((2, 3, 4), dt), data((2, 4, 5), dt)], **c((2,), (1,), (0,), (0,))),
             Case(P.dot_general_p, [data((3, 2, 4), dt), data((4, 5, 2), dt)], **c((2,), (0,), (1,), (2,))),
             Case(P.dot_general_p, [data((4,), dt), data((4,), dt)], **c((0,), (0,))),
             Case(P.dot_general_p, [data((3,), dt), data((5,), dt)], **c((), ())),
             Case(P.dot_general_p, [data((2, 3, 4), dt), data((3, 4), dt)], **c((1, 2), (0, 1))),
             Case(P.dot_general_p, [data((3, 0), dt), data((0, 2), dt)], **c((1,), (0,)))]
    run_cases(cases)


# ---------------------------------------------------------------- integers and bools

@pytest.mark.parametrize("dt", [np.int32, np.int64])
def test_integer_ops(dt):
    s = (3, 4)
    cases = [Case(p, [data(s, dt)]) for p in (P.neg_p, P.abs_p, P.sign_p, P.not_p, P.floor_p,
                                              P.round_p, P.isnan_p, P.isfinite_p, P.signbit_p)]
    for p in (P.add_p, P.sub_p, P.mul_p, P.max_p, P.min_p, P.and_p, P.or_p, P.xor_p):
        cases.append(Case(p, [data(s, dt), data((4,), dt)]))
    cases += [Case(P.rem_p, [data(s, dt), data(s, dt, "nonzero")]),
              Case(P.floordiv_p, [data(s, dt), data(s, dt, "nonzero")]),
              Case(P.pow_p, [data(s, dt), data(s, dt, "small")]),
              Case(P.integer_pow_p, [data(s, dt)], y=3),
              Case(P.add_p, [data(s, dt), ("lit", np.dtype(dt).type(np.iinfo(dt).max))]),
              Case(P.lt_p, [data(s, dt), ("lit", np.dtype(dt).type(1))]),
              Case(P.select_p, [data(s, np.bool_), data(s, dt), data(s, dt)])]
    cases += [Case(P.convert_p, [data(s, dt)], dtype=np.dtype(t)) for t in (np.float32, np.float64, np.bool_)]
    cases += [Case(p, [data((2, 3, 4), dt)], axes=(1,)) for p in
              (P.reduce_sum_p, P.reduce_prod_p, P.reduce_max_p, P.reduce_min_p, P.reduce_and_p, P.reduce_or_p)]
    cases += [Case(P.reduce_sum_p, [data((2, 3, 4), dt)], axes=(0, 1, 2)),
              Case(P.argmax_p, [data((3, 4), dt)], axis=1),
              Case(P.argmin_p, [data((3, 4), dt)], axis=0),
              Case(P.dot_general_p, [data((3, 4), dt), data((4, 2), dt)], contract=((1,), (0,)), batch=((), ())),
              Case(P.transpose_p, [data((3, 4), dt)], perm=(1, 0))]
    run_cases(cases)


def test_bool_ops():
    s = (3, 4)
    b = lambda *sh: data(sh or s, np.bool_)   # noqa: E731
    cases = [Case(P.not_p, [b()]), Case(P.and_p, [b(), b()]), Case(P.or_p, [b(), b(4)]),
             Case(P.xor_p, [b(), b()]), Case(P.eq_p, [b(), b()]), Case(P.ne_p, [b(), b()]),
             Case(P.select_p, [b(), b(), b()]), Case(P.max_p, [b(), b()]), Case(P.min_p, [b(), b()]),
             Case(P.reduce_and_p, [b()], axes=(1,)), Case(P.reduce_or_p, [b()], axes=(0, 1)),
             Case(P.argmax_p, [b()], axis=1),
             Case(P.convert_p, [b()], dtype=np.dtype(np.float32)),
             Case(P.convert_p, [b()], dtype=np.dtype(np.int32))]
    run_cases(cases)


def test_debug_print_from_compiled_code(capfd):
    def f(x):
        tg.debug.print("x = {} and {}", x, np.sum(x))
        return x * 2

    x = np.arange(3, dtype=np.float32)
    out = tg.jit(f)(x)
    printed = capfd.readouterr().out
    with tg.eager():
        tg.jit(f)(x)
    assert printed == capfd.readouterr().out == "x = [0. 1. 2.] and 3.0\n"
    np.testing.assert_array_equal(out, x * 2)


# ---------------------------------------------------------------- extended primitives

X = all_primitives


def _spd(n, batch=()):
    m = RNG.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


@pytest.mark.parametrize("dt", [np.float64, np.int32])
def test_gather_scatter(dt):
    x = data((4, 5), dt)
    i0 = np.array([[3], [-1], [0]], np.int64)
    i1 = np.array([[[1], [4]], [[-5], [2]]], np.int64)
    i01 = np.array([[1, 2], [-1, 0], [3, 4]], np.int64)
    dup = np.array([[1], [3], [1]], np.int64)
    cases = [Case(X["gather"], [x, i0], axes=(0,)),
             Case(X["gather"], [x, i1], axes=(1,)),
             Case(X["gather"], [x, ("const", i01)], axes=(0, 1)),
             Case(X["gather"], [data((2, 3, 4), dt), np.array([[2], [0]], np.int64)], axes=(2,))]
    for mode in ("add", "mul", "set"):
        cases.append(Case(X["scatter"], [x, dup, data((3, 5), dt, "pos")], axes=(0,), mode=mode))
    cases.append(Case(X["scatter"], [x, i01, data((3,), dt)], axes=(0, 1), mode="add"))
    if dt == np.float64:   # slice_start (integer bounds only): scalars and batches, any step
        where = dict(size=6, axis=1, src="f.py:1")
        s0 = np.array([0, 2, -4, -6], np.int64)
        cases += [Case(X["slice_start"], [np.int64(1), np.int64(4)], length=3, step=1, **where),
                  Case(X["slice_start"], [s0, s0 + 3], length=3, step=1, **where),
                  Case(X["slice_start"], [s0.astype(np.int32), s0.astype(np.int32) + 3], length=2, step=2,
                       **where),
                  Case(X["slice_start"], [("const", s0 + 3), s0], length=3, step=-1, **where)]
    run_cases(cases)


@pytest.mark.parametrize("dt", [np.float32, np.float64, np.int64])
def test_linear_recurrence_and_sort(dt):
    b = data((3, 4), dt)
    cases = [Case(X["linear_recurrence"], [("lit", np.dtype(dt).type(1)), b], axis=0, reverse=False),
             Case(X["linear_recurrence"], [("lit", np.dtype(dt).type(1)), b], axis=1, reverse=True),
             Case(X["linear_recurrence"], [data((3, 4), dt, "small"), b], axis=1, reverse=False),
             Case(X["linear_recurrence"], [data((3, 4), dt, "small"), b], axis=0, reverse=True),
             Case(X["linear_recurrence"], [data((2, 1), dt), data((2, 1), dt)], axis=1, reverse=False)]
    kind = "special" if np.dtype(dt).kind == "f" else "any"
    cases += [Case(X["sort"], [data((3, 5), dt, kind)], axis=1),
              Case(X["sort"], [data((4, 3), dt, "ties" if kind == "special" else "any")], axis=0),
              Case(X["sort"], [data((2, 3, 2), dt)], axis=1)]
    run_cases(cases)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_linear_algebra(dt):
    a = RNG.standard_normal((3, 3)).astype(dt) + 3 * np.eye(3, dtype=dt)
    ab = RNG.standard_normal((2, 3, 3)).astype(dt) + 3 * np.eye(3, dtype=dt)
    rhs = RNG.standard_normal((3, 2)).astype(dt)
    cases = [Case(X["lu"], [a]), Case(X["lu"], [ab]),
             Case(X["cholesky"], [_spd(3).astype(dt)]), Case(X["cholesky"], [_spd(2, (2,)).astype(dt)]),
             Case(X["eigh"], [_spd(3).astype(dt)]), Case(X["eigh"], [_spd(3, (2,)).astype(dt)]),
             Case(X["svd"], [RNG.standard_normal((3, 2)).astype(dt)], full_matrices=True),
             Case(X["svd"], [RNG.standard_normal((2, 2, 3)).astype(dt)], full_matrices=False)]
    for lower in (True, False):
        for trans in (True, False):
            for unit in (True, False):
                cases.append(Case(X["triangular_solve"], [a, rhs], lower=lower, transpose_a=trans,
                                  unit_diagonal=unit))
    cases.append(Case(X["triangular_solve"], [ab, RNG.standard_normal((2, 3, 1)).astype(dt)],
                      lower=True, transpose_a=False, unit_diagonal=False))
    run_cases(cases)


def _both_raise(fn, args, exc):
    with pytest.raises(exc) as compiled:
        tg.jit(fn)(*args)
    with pytest.raises(exc) as eager, tg.eager():
        tg.jit(fn)(*args)
    return str(compiled.value), str(eager.value)


def test_runtime_errors_match_eager():
    x = np.arange(12.0).reshape(3, 4)
    c, e = _both_raise(lambda x, i: bind(X["gather"], x, i, axes=(0,)), (x, np.array([[5]])), IndexError)
    assert c == e == "index 5 is out of bounds for axis 0 with size 3"
    c, e = _both_raise(lambda s: bind(X["slice_start"], s, s + 2, size=4, length=2, step=1, axis=0,
                                      src="f.py:1"), (np.array([0, 3, 1]),), IndexError)
    assert c == e == ("slice 3:5 of axis 0 with size 4 selects 1 elements, but this slice with traced "
                      "bounds has the static length 2: its bounds must lie within the axis, both "
                      "counted from the start or both from the end\n  at f.py:1")
    a = np.triu(np.ones((2, 2)))
    a[1, 1] = 0.0
    c, e = _both_raise(lambda a, b: bind(X["triangular_solve"], a, b, lower=False, transpose_a=False,
                                         unit_diagonal=False), (a, np.ones((2, 1))), np.linalg.LinAlgError)
    assert c == e == "Singular matrix"
    _both_raise(lambda a: bind(X["cholesky"], a), (-np.eye(2),), np.linalg.LinAlgError)


def test_pure_callback_from_compiled_code():
    calls = []

    def host(v, k):
        calls.append(v.shape)
        return np.sort(v)[::-1] * k, np.float32(v.sum())

    def f(x):
        spec = (tg.ShapeDtypeStruct((4,), np.float32), tg.ShapeDtypeStruct((), np.float32))
        y, s = tg.pure_callback(host, spec, x * 2, np.float32(3))
        return y + s

    x = np.array([3, 1, 4, 1], np.float32)
    got = tg.jit(f)(x)
    with tg.eager():
        want = tg.jit(f)(x)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(got, np.sort(2 * x)[::-1] * 3 + 18)
    assert calls and all(c == (4,) for c in calls)
