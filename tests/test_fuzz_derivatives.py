"""The derivative fuzzer: every registered NumPy function, at property-based inputs and special
points, values against NumPy and first and second derivatives against finite differences.

For each function of the registry (the coverage table) tests/fuzz_specs.py draws cases: shapes
with zero-size and size-1 broadcasting dimensions, keyword variants, and values at the function's
special points (ties, repeated values, zeros, a hair inside domain edges, huge and tiny
magnitudes, singular and degenerate matrices). tests/fuzz_engine.py checks each case: the value
against NumPy (or the same error), and forward, reverse, forward-over-forward,
forward-over-reverse, reverse-over-reverse and reverse-over-forward derivatives against central
finite differences of NumPy itself, where the function is smooth; at kinks the derivative must lie
between the one-sided ones and equal the documented convention (tracegrad/numpy/conventions.py).
Both eager mode and the interpreter backend run every check.

    TRACEGRAD_FUZZ_EXAMPLES=2000 python -m pytest -q -n 2 tests/test_fuzz_derivatives.py   # long mode
    TRACEGRAD_FUZZ_SEED=7 ...      # other examples than the fixed default seed
    TRACEGRAD_FUZZ_SHRINK=0 ...    # report the first failing example as drawn (faster)

Default: a few examples per function with a fixed seed (deterministic CI).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings, strategies as st

import fuzz_engine as E
from fuzz_specs import REGISTRY, SPECS
from op_harness import interpret_backend  # noqa: F401  (the interpreter backend, module-wide)

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


def _fuzz(name, data):
    spec = SPECS[name]
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="values seed"))
    case = spec.draw(data, rng)
    note(case.describe())
    want = E.check_values(spec, case, MODES)
    if want is not None and spec.grad:
        E.Fuzz(spec, case, want, rng).run(MODES)


_test = _settings(given(data=st.data())(_fuzz))
if SEED is not None:
    _test = seed(int(SEED))(_test)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_fuzz(name):
    _test(name)
