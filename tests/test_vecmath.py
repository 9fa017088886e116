"""compiler/vecmath.py against NumPy, in units in the last place (ulp), and inside compiled code.

References: the float64 kernels are compared with NumPy's float64 ufuncs; the float32 kernels with
NumPy evaluated in float64 and rounded to float32 -- NumPy's own float32 loops are up to 3 ulp off
the correctly rounded result here (np.log(np.float32(0.7896212))), so they cannot referee a 2-ulp
bound. Sign of zero and NaN-ness must match exactly.

Default run: a fixed seed, TRACEGRAD_VECMATH_EXAMPLES=25 hypothesis examples per test and a
25 * 4096-point random sweep per kernel. Long mode: TRACEGRAD_VECMATH_EXAMPLES=2000 (or more).
"""
from __future__ import annotations

import math
import os
import re
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from numba import njit

import tracegrad as tg
import compiler
from compiler import vecmath as vm
from compiler.lowering.elementwise import VECMATH, VECMATH_DIGEST

EXAMPLES = int(os.environ.get("TRACEGRAD_VECMATH_EXAMPLES", "25"))
MAX_ULP = 2
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
NAMES = tuple(VECMATH)
KERNEL_NAMES = tuple(n for pair in VECMATH.values() for n in pair)
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


# ---------------------------------------------------------------- running the kernels

@njit(cache=True, error_model="numpy")
def _apply64(which, x, out):
    for i in range(x.size):
        v = x[i]
        if which == 0:
            r = vm.vexp(v)
        elif which == 1:
            r = vm.vexpm1(v)
        elif which == 2:
            r = vm.vlog(v)
        elif which == 3:
            r = vm.vlog1p(v)
        elif which == 4:
            r = vm.vtanh(v)
        elif which == 5:
            r = vm.vsin(v)
        else:
            r = vm.vcos(v)
        out[i] = r


@njit(cache=True, error_model="numpy")
def _apply32(which, x, out):
    for i in range(x.size):
        v = x[i]
        if which == 0:
            r = vm.vexpf(v)
        elif which == 1:
            r = vm.vexpm1f(v)
        elif which == 2:
            r = vm.vlogf(v)
        elif which == 3:
            r = vm.vlog1pf(v)
        elif which == 4:
            r = vm.vtanhf(v)
        elif which == 5:
            r = vm.vsinf(v)
        else:
            r = vm.vcosf(v)
        out[i] = r


_ORDER = ("exp", "expm1", "log", "log1p", "tanh", "sin", "cos")   # the `which` of _apply*


def kernel(name, x):
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    (_apply64 if x.dtype == F64 else _apply32)(_ORDER.index(name), x, out)
    return out


def reference(name, x):
    with np.errstate(all="ignore"):
        return getattr(np, name)(x.astype(np.float64)).astype(x.dtype)


def ulp_distance(a, b):
    """|a - b| in ulps: the distance between the two values in the ordered integer encoding
    (so -0.0 and +0.0 are 0 apart, the largest float and inf 1); NaN vs NaN is 0, NaN vs a
    number is inf."""
    ints = np.int64 if a.dtype == F64 else np.int32
    mag = np.iinfo(ints).max

    def ordered(v):
        i = v.view(ints).astype(np.int64)
        return np.where(i < 0, -(i & mag), i)
    oa, ob = ordered(a), ordered(b)
    same_side = (oa < 0) == (ob < 0)          # no int64 overflow in oa - ob
    d = np.where(same_side, np.abs(np.where(same_side, oa - ob, 0)).astype(np.float64),
                 np.abs(oa.astype(np.float64)) + np.abs(ob.astype(np.float64)))
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d[nan_a & nan_b] = 0.0
    d[nan_a != nan_b] = np.inf
    return d


def check(name, x, max_ulp=MAX_ULP):
    got, want = kernel(name, x), reference(name, x)
    d = ulp_distance(got, want)
    bad = (d > max_ulp) | ((got == 0) & (want == 0) & (np.signbit(got) != np.signbit(want)))
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        raise AssertionError(f"{VECMATH[name][x.dtype == np.float32]}: {bad.sum()} of {x.size} inputs off "
                             f"(max {d.max():g} ulp): x={x[i].tolist()} got={got[i].tolist()} "
                             f"want={want[i].tolist()}")
    return d.max() if d.size else 0.0


# ---------------------------------------------------------------- the interesting sub-ranges

def _ranges(name, dt):
    """(low, high) intervals where the kernel has an edge: reduction boundaries, cancellation,
    subnormal outputs, overflow."""
    big = float(np.finfo(dt).max)
    tiny = float(np.finfo(dt).smallest_normal)
    if dt == F64:
        ovf, unf = (700.0, 710.0), (-746.0, -700.0)
    else:
        ovf, unf = (80.0, 89.0), (-104.0, -85.0)
    return {
        "exp": [(-1.0, 1.0), (-30.0, 30.0), ovf, unf],
        "expm1": [(-1e-6, 1e-6), (-0.5, 0.5), (-45.0, -30.0), ovf],
        "log": [(0.5, 2.0), (0.0, tiny), (1.0, big), (0.0, 1.0)],
        "log1p": [(-1e-6, 1e-6), (-1.0, -0.5), (-0.5, 4.0), (1e6, big)],
        "tanh": [(-1e-6, 1e-6), (-1.0, 1.0), (0.5, 0.75), (-25.0, 25.0)],
        "sin": [(-4.0, 4.0), (-1e5, 1e5), (1e9, 1e18), (1e18, big)],
        "cos": [(-4.0, 4.0), (-1e5, 1e5), (1e9, 1e18), (1e18, big)],
    }[name]


def _sub_range_arrays(name, dt):
    width = 64 if dt == F64 else 32
    ranges = _ranges(name, dt)
    exact = [(float(dt.type(lo)), float(dt.type(hi))) for lo, hi in ranges]   # bounds in the dtype
    return st.sampled_from(exact).flatmap(lambda r: hnp.arrays(
        dt, 64, elements=st.floats(r[0], r[1], allow_nan=False, width=width)))


def _bit_pattern_arrays(dt):
    bits = 64 if dt == F64 else 32
    return hnp.arrays(np.dtype(f"uint{bits}"), 64,
                      elements=st.integers(0, 2 ** bits - 1)).map(lambda a: a.view(dt))


def _near_multiples_of_pi_2(dt):
    # k pi/2 rounded to the dtype: the reduced argument cancels to a few ulp of the input
    kmax = 2 ** 60 if dt == F64 else 2 ** 20
    return hnp.arrays(np.int64, 64, elements=st.integers(-kmax, kmax)).map(
        lambda k: (k.astype(np.float64) * (math.pi / 2)).astype(dt))


CASES = [(n, dt) for dt in (F64, F32) for n in NAMES]
IDS = [f"{n}-{dt.name}" for n, dt in CASES]


@pytest.mark.parametrize("name,dt", CASES, ids=IDS)
def test_uniform_bit_patterns(name, dt):
    @SETTINGS
    @given(_bit_pattern_arrays(dt))
    def prop(x):
        check(name, x)
    prop()


@pytest.mark.parametrize("name,dt", CASES, ids=IDS)
def test_interesting_sub_ranges(name, dt):
    @SETTINGS
    @given(_sub_range_arrays(name, dt))
    def prop(x):
        check(name, x)
    prop()


@pytest.mark.parametrize("name", ["sin", "cos"])
@pytest.mark.parametrize("dt", [F64, F32], ids=["float64", "float32"])
def test_near_multiples_of_pi_over_2(name, dt):
    @SETTINGS
    @given(_near_multiples_of_pi_2(dt))
    def prop(x):
        check(name, x)
    prop()


@pytest.mark.parametrize("name,dt", CASES, ids=IDS)
def test_random_sweep(name, dt):
    """A seeded sweep of uniform bit patterns (full range), plus uniform values in each sub-range."""
    rng = np.random.default_rng(20240607)
    n = 4096 * EXAMPLES
    bits = rng.integers(0, 2 ** 64 - 1, n, dtype=np.uint64, endpoint=True)
    x = bits.view(np.float64) if dt == F64 else bits.astype(np.uint32).view(np.float32)
    check(name, x)
    for lo, hi in _ranges(name, dt):
        check(name, rng.uniform(lo, hi if hi < np.inf else float(np.finfo(dt).max), n // 4).astype(dt))


def _special_values(dt):
    fi = np.finfo(dt)
    base = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0,
            float(fi.max), -float(fi.max), float(fi.smallest_normal), -float(fi.smallest_normal),
            float(fi.smallest_subnormal), -float(fi.smallest_subnormal),
            float(fi.smallest_normal) / 3, -float(fi.smallest_normal) / 3,
            float(fi.eps), -float(fi.eps), float(fi.eps) / 4, -float(fi.eps) / 4,
            -1.0 + float(fi.eps) / 2, -1.0 - float(fi.eps), 1e-300, -1e-300,
            np.pi / 4, -np.pi / 4, np.pi / 2, np.pi, 2 * np.pi, 1e22, -1e22, 2.0 ** 52, 2.0 ** 1023]
    if dt == F64:
        base += [709.782712893384, 709.7827128933841, 709.79, -745.1332191019411,
                 -745.1332191019412, -708.4, -708.39, 710.0, -746.0, 38.0, -38.0, -37.5, 19.06,
                 22.0, -22.0, 0.625, -0.625, 0.6249999999999999, 1.0e308]
    else:
        base += [88.72283, 88.72284, -103.97207, -103.97208, -87.33655, 89.0, -104.0, 9.0, -9.0,
                 0.625, -0.625, 1.0e38, 3.4e38, 16777216.0, 13176795.0]
    with np.errstate(over="ignore"):
        return np.array(base, dtype=dt)


@pytest.mark.parametrize("name,dt", CASES, ids=IDS)
def test_special_values(name, dt):
    """±0 (sign kept where NumPy keeps it), subnormals, ±inf, NaN, overflow/underflow edges,
    log of 0 and of negatives, log1p(-1), and arguments that defeat a naive pi/2 reduction."""
    check(name, _special_values(dt))


def _decimal_pi():
    """pi to the context's precision (Gauss-Legendre)."""
    a, b, t, p = Decimal(1), Decimal(1) / Decimal(2).sqrt(), Decimal(1) / 4, 1
    for _ in range(14):                        # quadratic convergence: > 10000 digits
        a, b, t, p = (a + b) / 2, (a * b).sqrt(), t - p * ((a - b) / 2) ** 2, 2 * p
    return (a + b) ** 2 / (4 * t)


def _decimal_sin_cos(x: float):
    """Correctly rounded sin(x), cos(x) for a float64 x, through x - n pi/2 in 700 digits."""
    with localcontext() as ctx:
        ctx.prec = 700
        half_pi = _decimal_pi() / 2
        X = Decimal(x)
        n = (X / half_pi).to_integral_value()
        r = X - n * half_pi
        s, c, term, k = Decimal(0), Decimal(0), Decimal(1), 0
        while k < 200:                         # |r| <= pi/4: 200 terms are plenty
            c += term if k % 4 == 0 else -term if k % 4 == 2 else 0
            term = term * r / (k + 1)
            k += 1
            s += term if k % 4 == 1 else -term if k % 4 == 3 else 0
            term = term * r / (k + 1)
            k += 1
        q = int(n) % 4
        return float((s, c, -s, -c)[q]), float((c, -s, -c, s)[q])


HARD_REDUCTIONS = [6381956970095103 * 2.0 ** 797, 1.5707963267948966, 3.141592653589793,
                   4.71238898038469, 6.283185307179586, 1e22, 2.0 ** 1023 * 1.9999999999999998,
                   float(2 ** 30 + 7) * (math.pi / 2), float(2 ** 52 - 1) * (math.pi / 2),
                   float(2 ** 60) * (math.pi / 2), 355.0, 103993.0, 5.0e15 + 1.0]


def test_hard_reductions_are_correctly_rounded():
    """Near multiples of pi/2 the reduced argument cancels to ~2^-61: sin/cos must still be within
    1 ulp of the correctly rounded value (NumPy itself is 8 ulp off cos(6381956970095103 2^797),
    so the reference here is exact decimal arithmetic)."""
    x = np.array(HARD_REDUCTIONS + [-v for v in HARD_REDUCTIONS])
    want = np.array([_decimal_sin_cos(v) for v in x])
    for k, name in enumerate(("sin", "cos")):
        got = kernel(name, x)
        d = ulp_distance(got, want[:, k])
        assert d.max() <= 1, (name, x[d > 1], got[d > 1], want[d > 1, k])


def test_what_numpy_says_at_the_edges():
    """The edge results spelled out (they also follow from test_special_values)."""
    f64, f32 = lambda v: np.array([v], F64), lambda v: np.array([v], F32)
    assert np.signbit(kernel("sin", f64(-0.0))[0]) and np.signbit(kernel("tanh", f32(-0.0))[0])
    assert kernel("log", f64(0.0))[0] == -np.inf and np.isnan(kernel("log", f64(-1e-300))[0])
    assert kernel("log1p", f64(-1.0))[0] == -np.inf and np.isnan(kernel("log1p", f32(-1.5))[0])
    assert kernel("exp", f64(710.0))[0] == np.inf and kernel("exp", f64(-746.0))[0] == 0.0
    assert kernel("exp", f64(-745.0))[0] == 5e-324 and kernel("expm1", f64(-np.inf))[0] == -1.0
    assert np.isnan(kernel("cos", f64(np.inf))[0]) and kernel("tanh", f32(np.inf))[0] == 1.0


# ---------------------------------------------------------------- inside a compiled loop

def _f(x):
    return np.sum(np.tanh(np.sin(x) * np.exp(-x * x)) + np.log(1.0 + x * x) * np.cos(x)
                  + np.log1p(x * x) * np.expm1(0.25 * x))


def _f_grad(x):
    """d/dx of _f, by hand, in float64."""
    s, c, e, q = np.sin(x), np.cos(x), np.exp(-x * x), 1.0 + x * x
    t = np.tanh(s * e)
    return ((1 - t * t) * (c * e - 2 * x * s * e) + 2 * x / q * c - np.log(q) * s
            + 2 * x / q * np.expm1(0.25 * x) + np.log1p(x * x) * np.exp(0.25 * x) / 4)


@pytest.mark.compiled
@pytest.mark.parametrize("dt", [F64, F32], ids=["float64", "float32"])
def test_compiled_gradient_calls_the_kernels(dt):
    x = np.linspace(-3, 3, 999).astype(dt)
    g = tg.jit(tg.grad(_f))
    src = g.source(x)
    suffix = "" if dt == F64 else "f"
    used = {n for n in KERNEL_NAMES if re.search(rf"\b{n}\(", src)}
    assert used == {f"v{n}{suffix}" for n in NAMES}, used
    assert f"from compiler.vecmath import {', '.join(sorted(used))}  # vecmath {VECMATH_DIGEST}" in src
    assert not re.search(r"np\.(exp|expm1|log|log1p|tanh|sin|cos)\(", src), src
    assert re.search(rf"= vtanh{suffix}\(\w+\)\s+# tanh {dt.name[0]}{dt.itemsize * 8}\[999\]  ", src)
    got = g(x)
    assert got.dtype == dt
    want = _f_grad(x.astype(np.float64))
    tol = dict(rtol=1e-12, atol=1e-13) if dt == F64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got, want, **tol)


@pytest.mark.compiled
def test_compiled_loop_is_vectorised(tmp_path, monkeypatch):
    """The fused loop of the gradient compiles to vector code with no libm call left in it."""
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path))   # a fresh compile: Numba does not
    x = np.linspace(-3, 3, 997)                                # show the IR of cached code
    run = compiler.compile_ir(tg.make_ir(tg.grad(_f))(x))
    llvm = run.dispatcher.inspect_llvm(run.dispatcher.signatures[0])
    assert re.search(r"call <\d+ x double> @llvm\.fma\.v\d+f64", llvm)
    assert re.search(r"fmul <\d+ x double>", llvm)
    # sin/cos's rare path (|x| >= 2^30) stays a call of the masked variant, one per vector
    assert re.search(r"call <\d+ x double> @tg_vecmath_sin_m\d+\(<\d+ x double>", llvm)
    assert not re.search(r"@(llvm\.)?(exp|expm1|log|log1p|tanh|sin|cos)(\.f64)?\(", llvm)
    np.testing.assert_allclose(run(x)[0], _f_grad(x), rtol=1e-12, atol=1e-13)
