"""The derivative fuzzer: every registered NumPy and SciPy function, at property-based inputs and
special points, values against NumPy's (SciPy's) and first and second derivatives against finite
differences.

For each function of the registry (the coverage table) tests/fuzz_specs.py draws cases: shapes
with zero-size and size-1 broadcasting dimensions, keyword variants, and values at the function's
special points (ties, repeated values, zeros, a hair inside domain edges, huge and tiny
magnitudes, singular and degenerate matrices, edges of a distribution's support). tests/fuzz_engine.py
checks each case: the value against NumPy (or the same error), and forward, reverse,
forward-over-forward, forward-over-reverse, reverse-over-reverse and reverse-over-forward
derivatives against central finite differences of NumPy itself, where the function is smooth; at
kinks the derivative must lie between the one-sided ones and equal the documented convention
(tracegrad/numpy/conventions.py). Functions with reverse mode only (odeint, a custom_vjp) have
their first and reverse-over-reverse second derivatives checked against finite differences
directly. Both eager mode and the interpreter tier run every check.

    TRACEGRAD_FUZZ_EXAMPLES=150 python -m pytest -q -n 2 tests/test_fuzz_derivatives.py  # long mode
    TRACEGRAD_FUZZ_SEED=7 ...      # other examples than the fixed default seed
    TRACEGRAD_FUZZ_SHRINK=0 ...    # report the first failing example as drawn (faster)

Default: 5 examples per function (a spec's `examples` share of that for slow ones) with a fixed
seed (deterministic CI, ~15 s on 2 cores); the long mode above takes ~5 minutes.
"""
from __future__ import annotations

import os
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings, strategies as st

import fuzz_engine as E
import tracegrad as tg
from fuzz_specs import REGISTRY, SPECS

EXAMPLES = int(os.environ.get("TRACEGRAD_FUZZ_EXAMPLES", "5"))
SEED = os.environ.get("TRACEGRAD_FUZZ_SEED")
SHRINK = os.environ.get("TRACEGRAD_FUZZ_SHRINK", "1") != "0"
MODES = ("jit", "eager")

_settings = settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
                     print_blob=True, report_multiple_bugs=False,
                     phases=tuple(Phase) if SHRINK else tuple(p for p in Phase if p != Phase.shrink),
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.filter_too_much,
                                            HealthCheck.function_scoped_fixture])


def test_every_registered_function_has_a_fuzz_spec():
    missing = sorted(set(REGISTRY) - set(SPECS))
    assert not missing, f"registered functions with no fuzz spec in tests/fuzz_specs.py: {missing}"
    stale = sorted(set(SPECS) - set(REGISTRY))
    assert not stale, f"fuzz specs for functions that are not registered: {stale}"


def test_checked_conventions_are_documented():
    """Every convention the fuzzer checks is the one the coverage table's notes state."""
    from tracegrad.numpy.conventions import NOTES
    undocumented = sorted(name for name, spec in SPECS.items()
                          if spec.convention is not None and spec.np_fn not in NOTES)
    assert not undocumented, f"add a note to tracegrad/numpy/conventions.py for {undocumented}"
    unknown = [f for f in NOTES if not any(spec.np_fn == f for spec in SPECS.values())]
    assert not unknown, f"notes for functions that are not registered: {unknown}"


def _fuzz(name, data):
    spec = SPECS[name]
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="values seed"))
    case = spec.draw(data, rng)
    note(case.describe())
    want = E.check_values(spec, case, MODES)
    if want is not None and spec.grad:
        E.Fuzz(spec, case, want, rng).run(MODES)


def _test(name):
    test = settings(_settings, max_examples=max(1, round(EXAMPLES * SPECS[name].examples)))(
        given(data=st.data())(_fuzz))
    if SEED is not None:
        test = seed(int(SEED))(test)
    test(name)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_fuzz(name):
    _test(name)


# ---------------------------------------------------------------- compiled

# (registry name, arrays, keywords): special points of a handful of functions, in one Numba kernel
COMPILED = [
    ("numpy.hypot", [np.array([2.0, -3.0, 0.0, 1.5, 3.0]), np.array([2.0, 3.0, 0.0, -1.5, 4.0])], {}),
    ("numpy.maximum", [np.array([1.0, 2.0, 3.0, 0.0]), np.array([2.0, 2.0, 2.0, 0.0])], {}),
    ("numpy.absolute", [np.array([0.0, -0.0, 1.5, -2.0])], {}),
    ("numpy.logaddexp", [np.array([1.0, -2.0, 1000.0, 0.0]), np.array([1.0, -2.0, 0.0, 1e-3])], {}),
    ("numpy.power", [np.array([1.9, 0.5, 0.0, 2.0]), np.array([0.0, -0.0, 2.0, 1.0])], {}),
    ("numpy.sort", [np.array([0.5, -1.0, 0.5, 2.0, -1.0, 0.25])], {}),
]


@pytest.mark.compiled
def test_compiled_batch_at_special_points():
    """Values, first derivatives (forward and reverse) and second derivatives (forward over
    forward, forward over reverse) of a few functions at special points, all from one compiled
    kernel, checked like the fuzzer checks eager and interpreted runs (det and eigh compiled:
    tests/test_derivative_regressions.py)."""
    rng = np.random.default_rng(0)
    fuzzes = []
    for name, arrays, kw in COMPILED:
        spec = SPECS[name]
        case = E.Case(arrays, lambda fn, *xs, kw=kw: fn(*xs, **kw), tuple(range(len(arrays))),
                      note=name, extra=types.SimpleNamespace(kwargs=kw))
        want = E.quiet(case.call, spec.np_fn, *arrays)
        fz = E.Fuzz(spec, case, want, rng)
        assert fz.prepare() and not fz.empty
        fuzzes.append((fz, want))

    def kernel(*flat):
        it = iter(flat)
        outs = []
        for fz, _ in fuzzes:
            xs = tuple(next(it) for _ in fz.xs)
            u, v, w = tuple(fz.u), tuple(fz.v), tuple(fz.w)
            vjp_u = lambda *ys, fz=fz, u=u: tg.vjp(fz.G, *ys)[1](u)
            t = tg.jvp(fz.G, xs, v)[1]
            tt = tg.jvp(lambda *ys, fz=fz, w=w: tg.jvp(fz.G, ys, w)[1], xs, v)[1]
            hv = tg.jvp(vjp_u, xs, v)[1]
            outs.append((fz.G(*xs), t, vjp_u(*xs), tt, hv))
        return outs

    flat = [x for fz, _ in fuzzes for x in fz.xs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = tg.jit(kernel)(*flat)
    for (fz, want), (value, t, cts, tt, hv) in zip(fuzzes, results):
        E._same_value(tuple(value), tuple(fz.base), fz.spec.rtol, fz.spec.atol,
                      f"{fz.case.note} value (compiled)")
        fz.check_first(f"{fz.case.note} compiled", t, cts)
        fr = E._dot(hv, fz.w)
        fz.check_second(f"{fz.case.note} compiled", tt, fr, fr, fr, t)
