"""Vectorisable exp, log, log1p, expm1, tanh, sin, cos: the scalar kernels fused loops call.

Inside a Numba loop `np.exp(x)` becomes a call to the C library, which LLVM cannot vectorise, so a
loop of transcendentals runs one element at a time. These kernels are plain arithmetic instead:
range reduction, a minimax polynomial (coefficients from `tools/vecmath_coeffs.py`), exponent
arithmetic through integer bit casts, and selects (`a if c else b`, which LLVM turns into blends)
in place of branches. Each is an ordinary `njit` function compiled once per machine (Numba's disk
cache); LLVM inlines it into the kernel that calls it and vectorises the loop around it.

    float64: vexp vlog vlog1p vexpm1 vtanh vsin vcos
    float32: vexpf vlogf vlog1pf vexpm1f vtanhf vsinf vcosf   (float64 arithmetic inside, rounded
             once at the end: simpler than native float32 kernels and within 1 ulp of the truth)

Accuracy: within 1 ulp of the correctly rounded result over the whole range, including ±0 (the
sign kept as NumPy keeps it), subnormal inputs and outputs, ±inf, NaN and the overflow/underflow
edges (tests/test_vecmath.py checks them against NumPy). Exact products and sums use FMA
(`llvm.fma`); a host without FMA gets the same results, slowly, from the C library's fma.

sin/cos reduce |x| < 2^30 in-line (Cody-Waite: pi/2 in three parts, FMA, the remainder kept as a
double-double), which is exact enough for every float64 there. Larger |x|, inf and NaN take a
rare path: a branch-free Payne-Hanek reduction (x 2/pi = m (U0 + U1 + U2 + U3), m the integer
mantissa, the U four float64 digits of 2^q 2/pi mod 4 from a 32 KB table indexed by the exponent
q, all products exact by FMA, sums ordered so that cancellation near multiples of pi/2 stays
exact), correct over the whole float64 range. A plain `if` around a call does not keep that path
rare: LLVM treats a readnone call under a condition as speculatable, so in a vectorised loop
`math.sin(x) if abs(x) > LIMIT else fast(x)` becomes `llvm.sin.v8f64`, libm for every lane, and
computing the Payne-Hanek reduction branch-free for every lane made sin 3x slower. So the rare
path goes through `vecmath_llvm.rare_call`: a call site naming masked vector variants, which the
vectorised loop calls once per vector with the lanes' mask and which return at once when no
lane is set (measured with Numba 0.68 / LLVM 22; tests/test_vecmath.py checks the vector code).
The bit casts and fma are intrinsics from vecmath_llvm too.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .vecmath_llvm import as_float, as_int, fma, rare_call

# forceinline: LLVM leaves the larger kernels out of line otherwise, and a call in a loop stops
# vectorisation. fastmath off explicitly: a callee inherits an unset flag from its caller, and
# the double-double steps need exact IEEE rounding.
_jit = njit(cache=True, error_model="numpy", fastmath=False, forceinline=True)

# ---------------------------------------------------------------- constants
# (tools/vecmath_coeffs.py prints all of these; the polynomials' errors are in its output)

_LN2_HI, _LN2_LO = 0.6931471803691238, 1.9082149292705877e-10   # n * _LN2_HI exact, |n| < 2^21
_INV_LN2 = 1.4426950408889634
_LN2 = 0.6931471805599453
_PIO2_HI, _PIO2_LO, _PIO2_3 = 1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33
_TWO_OVER_PI = 0.6366197723675814
_PIO4 = 0.7853981633974483
_CW_LIMIT = 1073741824.0       # 2^30: sin/cos reduce |x| below this in-line, above it lane by lane
_SQRT1_2_BITS = 0x3FE6A09E667F3BCD             # bits of sqrt(1/2): log splits mantissas there
_MANT = 0x000FFFFFFFFFFFFF
_ABS = 0x7FFFFFFFFFFFFFFF
_TINY = 2.2250738585072014e-308                # smallest normal float64

_EXP64 = (0.16666666666666669, 0.04166666666666666, 0.00833333333333007, 0.0013888888888900562,
          0.0001984126986302164, 2.4801587275140717e-05, 2.7557268502597447e-06,
          2.755732960443781e-07, 2.5100367762991712e-08, 2.0893979314033507e-09)
_LOG64 = (0.666666666666667, 0.39999999999899116, 0.28571428626134004, 0.22222211111284512,
          0.18182890700116686, 0.15331673011455824, 0.14617011528815754)
_SIN64 = (-0.16666666666666666, 0.008333333333330924, -0.00019841269836725993,
          2.7557316087666144e-06, -2.5051129068107274e-08, 1.5917947966531515e-10)
_COS64 = (0.041666666666666664, -0.0013888888888887387, 2.48015872987521e-05,
          -2.7557317265493487e-07, 2.0876145100234514e-09, -1.1382555838148663e-11)
_TANH64 = (-0.3333333333333333, 0.13333333333333042, -0.05396825396789691, 0.02186948851900398,
           -0.008863235103132179, 0.0035921217496172517, -0.001455775398823384,
           0.0005896605860851282, -0.00023759040350750994, 9.257064267025866e-05,
           -3.120048948333481e-05, 6.484854067655878e-06)
_TANH_SPLIT = 0.625      # vtanh: polynomial below, 1 - 2/(e^2|x| + 1) (result >= 0.55) above
_EXP32 = (0.1666666668157636, 0.041666666569538005, 0.008333310956710522, 0.00138889038421987,
          0.00019890964826545338, 2.482641040133731e-05)
_LOG32 = (0.666666665540353, 0.40000122132711075, 0.28550793381811146, 0.23331108434100642)
_SIN32 = (-0.1666666666381612, 0.0083333318632183, -0.0001984008173055415, 2.7249380496948256e-06)
_COS32 = (0.041666666664300064, -0.0013888887665775749, 2.480059764380071e-05,
          -2.7300659815006213e-07)
_TANH32 = (-0.333333333274155, 0.13333331846014176, -0.05396763965406444, 0.021859895746423892,
           -0.008791002586511765, 0.0033062391594200933, -0.0008622062265197348)


# ---------------------------------------------------------------- small helpers (inlined by LLVM)


@_jit
def _poly(z, c):
    """Horner: c[0] + c[1] z + ... (c a tuple of literals, unrolled)."""
    acc = c[len(c) - 1]
    for k in range(len(c) - 2, -1, -1):
        acc = fma(acc, z, c[k])
    return acc


@_jit
def _pow2(k):
    """2.0**k for an int64 k in [-1022, 1023]."""
    return as_float((k + 1023) << 52)


@_jit
def _clamp(v, lo, hi):
    """v limited to [lo, hi]; NaN becomes lo (so that converting it to an integer is defined)."""
    v = v if v > lo else lo
    return v if v < hi else hi


@_jit
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_jit
def _fast_two_sum(a, b):          # |a| >= |b|
    s = a + b
    return s, b - (s - a)


# ---------------------------------------------------------------- exp, expm1


@_jit
def _exp_reduce(x, lo_n, hi_n):
    """x = n ln2 + r + c: (n, int n, r, c), |r| <= ln2/2, n clamped to [lo_n, hi_n]."""
    n = _clamp(np.rint(x * _INV_LN2), lo_n, hi_n)
    hi = x - n * _LN2_HI
    lo = n * _LN2_LO
    r = hi - lo
    return n, np.int64(n), r, (hi - r) - lo


@_jit
def _exp_parts(x, lo_n, hi_n):
    """e^x = (s + t) 2^k, s + t in [sqrt(1/2), sqrt(2)], t not yet added: (s, t, k)."""
    n, k, r, c = _exp_reduce(x, lo_n, hi_n)
    tail = fma(r * r, fma(r, _poly(r, _EXP64), 0.5), c)      # e^(r+c) - 1 - r
    s, e = _fast_two_sum(1.0, r)
    return s, e + tail, k


@_jit
def _exp_core(x):
    """e^x for x in [-1100 ln2, 1100 ln2] (overflows to inf, underflows through subnormals)."""
    s, t, k = _exp_parts(x, -1100.0, 1100.0)
    k1 = k >> 1                                                # two factors: 2^k may not exist
    return (s + t) * _pow2(k1) * _pow2(k - k1)


@_jit
def vexp(x):
    y = _exp_core(x)
    y = np.inf if x > 710.0 else y
    return 0.0 if x < -746.0 else y


@_jit
def vexpm1(x):
    n, k, r, c = _exp_reduce(x, -80.0, 1100.0)
    em, eml = _fast_two_sum(r, r * r * fma(r, _poly(r, _EXP64), 0.5))    # e^r - 1, double-double
    eml += c * (1.0 + em)
    # 2^k (1 + em) - 1: (2^k - 1) + 2^k em, exactly summed; past k = 53 the -1 joins the low part
    t = _pow2(k if k < 1020 else 1020)
    big = k >= 54
    s, e = _two_sum(t if big else t - 1.0, t * em)
    y = s + (e + (t * eml - (1.0 if big else 0.0)))
    s, e = _fast_two_sum(1.0, em)
    y = ((s + (e + eml)) * _pow2(k - 2)) * 4.0 if k > 1000 else y   # 2^k alone would overflow
    y = -1.0 if x < -38.0 else y
    y = np.inf if x > 710.0 else y
    return x if abs(x) < 5.551115123125783e-17 else y          # 2^-54: keeps -0.0 and subnormals


# ---------------------------------------------------------------- log, log1p


@_jit
def _log_kernel(xb, extra_k, corr):
    """log(x) + corr for x > 0 with bits xb (x * 2^-extra_k normal): k ln2 + log(1 + f) with
    1 + f in [sqrt(1/2), sqrt(2)), log(1 + f) = 2 atanh(s), s = f / (2 + f)."""
    ix = xb + (0x3FF0000000000000 - _SQRT1_2_BITS)     # mantissas >= sqrt(2) carry into k
    dk = np.float64((ix >> 52) - 1023 - extra_k)
    f = as_float((ix & _MANT) + _SQRT1_2_BITS) - 1.0
    s = f / (2.0 + f)
    z = s * s
    R = z * _poly(z, _LOG64)
    hfsq = 0.5 * f * f
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + R) + (dk * _LN2_LO + corr))) - f)


@_jit
def vlog(x):
    sub = x < _TINY
    xs = x * 18014398509481984.0 if sub else x          # subnormals: scale by 2^54
    y = _log_kernel(as_int(xs), 54 if sub else 0, 0.0)
    y = y if x < np.inf else x                           # +inf, NaN
    y = -np.inf if x == 0.0 else y
    return np.nan if x < 0.0 else y


@_jit
def vlog1p(x):
    u, c = _two_sum(1.0, x)                              # u + c = 1 + x exactly; u is normal
    y = _log_kernel(as_int(u), 0, c / u)
    y = x if abs(x) < 5.551115123125783e-17 else y       # keeps -0.0 and subnormals
    y = y if x < np.inf else x
    y = -np.inf if x == -1.0 else y
    return np.nan if x < -1.0 else y


# ---------------------------------------------------------------- tanh


@_jit
def vtanh(x):
    a = abs(x)
    z = x * x
    small = fma(x * z, _poly(z, _TANH64), x)
    # 1 - 2/(e + 1), e = e^2|x| >= 3.4, carried in double-double to the final subtraction
    s, t, k = _exp_parts(2.0 * a if a < 40.0 else 80.0, -1100.0, 1100.0)
    s, t = _fast_two_sum(s, t)
    e = _pow2(k)
    d, dl = _fast_two_sum(s * e, 1.0)
    dl += t * e
    q = 2.0 / d
    ql = (fma(-q, d, 2.0) - q * dl) / d
    s, t = _two_sum(1.0, -q)
    large = math.copysign(s + (t - ql), x)
    y = small if a < _TANH_SPLIT else large
    y = x if a < 7.450580596923828e-09 else y          # 2^-27: tanh x rounds to x (and -0.0)
    return x if x != x else y


# ---------------------------------------------------------------- sin, cos

@_jit
def _sin_kernel(r, rl):
    z = r * r
    v = z * r
    p = _poly(z, _SIN64[1:])
    return r - ((z * (0.5 * rl - v * p) - rl) - v * _SIN64[0])


@_jit
def _cos_kernel(r, rl):
    z = r * r
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * (z * _poly(z, _COS64)) - r * rl))


@_jit
def _reduce_pio2(x):
    """x = N pi/2 + r + rl for |x| < _CW_LIMIT (Cody-Waite, pi/2 in three parts): (r, rl, N).
    The first product is exact by FMA, the second kept as a pair: error < N 2^-158, far below
    the smallest |r| (~2^-61) any float64 produces."""
    n = np.rint(x * _TWO_OVER_PI)
    t = fma(-n, _PIO2_HI, x)                             # exact for |n| < 2^52
    p = n * _PIO2_LO
    s, se = _two_sum(t, -p)
    r, rl = _fast_two_sum(s, (se - fma(n, _PIO2_LO, -p)) - n * _PIO2_3)
    return r, rl, np.int64(_clamp(n, -2.0 ** 31, 2.0 ** 31))


@_jit
def _sin_quadrant(r, rl, n):
    y = _cos_kernel(r, rl) if n & 1 else _sin_kernel(r, rl)
    return -y if n & 2 else y


@_jit
def _cos_quadrant(r, rl, n):
    y = _sin_kernel(r, rl) if n & 1 else _cos_kernel(r, rl)
    return -y if (n + 1) & 2 else y


@_jit
def vsin(x):
    r, rl, n = _reduce_pio2(x)
    y = _sin_quadrant(r, rl, n)
    y = x if abs(x) < 1.4901161193847656e-08 else y     # 2^-26: sin x rounds to x (and -0.0)
    if not abs(x) < _CW_LIMIT:                           # huge, inf, NaN: see the docstring
        y = _sin_slow(x)
    return y


@_jit
def vcos(x):
    r, rl, n = _reduce_pio2(x)
    y = _cos_quadrant(r, rl, n)
    if not abs(x) < _CW_LIMIT:
        y = _cos_slow(x)
    return y


# ---------------------------------------------------------------- the rare path of sin/cos
# |x| >= 2^30, inf, NaN: the Payne-Hanek reduction, reached through masked vector variants (see
# the module docstring).

def _two_over_pi_table():
    """Row j (q = j - 53, q in [-53, 971]) holds (2^q 2/pi) mod 4 as four float64 digits with
    fixed binary points: U0 the bits 2^1..2^-51, U1 2^-52..2^-104, U2 ..2^-157, U3 ..2^-210.
    2/pi comes from pi by Machin's formula in integer arithmetic (1300 bits)."""
    P = 1300 + 32

    def atan_inv(k):                       # atan(1/k) * 2^P
        total, term, n, k2 = 0, (1 << P) // k, 0, k * k
        while term:
            total += term // (2 * n + 1) if n % 2 == 0 else -(term // (2 * n + 1))
            term //= k2
            n += 1
        return total
    pi = 16 * atan_inv(5) - 4 * atan_inv(239)         # pi * 2^P, good to ~2^-(P-10)
    c = (2 << (2 * P)) // pi                           # 2/pi * 2^P
    rows = []
    mask = (1 << 53) - 1
    for q in range(-53, 972):
        w = ((c << (q + 210)) >> P) & ((1 << 212) - 1)  # (2^q 2/pi mod 4) 2^210
        rows.append([math.ldexp((w >> 159) & mask, -51), math.ldexp((w >> 106) & mask, -104),
                     math.ldexp((w >> 53) & mask, -157), math.ldexp(w & mask, -210)])
    return np.array(rows, dtype=np.float64).reshape(-1)


_PH_TABLE = _two_over_pi_table()


@_jit
def _reduce_pio2_exact(x):
    """x = N pi/2 + r + rl (|r| <= pi/4, rl below r's last bit): (r, rl, N), for any x."""
    q = ((as_int(x) & _ABS) >> 52) - 1075                # x = m 2^q, m an integer
    q = q if q > -53 else -53
    q = q if q < 971 else 971
    m = x * _pow2(-q)
    j = 4 * (q + 53)
    u0, u1, u2, u3 = _PH_TABLE[j], _PH_TABLE[j + 1], _PH_TABLE[j + 2], _PH_TABLE[j + 3]
    # m u0: a multiple of 2^-51 below 2^55, held exactly as a_hi + a_lo
    a_hi = m * u0
    a_lo = fma(m, u0, -a_hi)
    n0 = np.rint(a_hi)
    a = (a_hi - n0) + a_lo                               # exact: a multiple of 2^-51 below 1
    n0 -= 4.0 * np.rint(n0 * 0.25)                       # only N mod 4 matters
    n1 = np.rint(a)
    a -= n1
    b_hi = m * u1                                        # < 4, multiple of 2^-104
    b_lo = fma(m, u1, -b_hi)
    n2 = np.rint(b_hi)
    b_hi -= n2
    n3 = np.rint(a + b_hi)
    a -= n3                                              # exact; now a + b_hi is the fraction
    c_hi = m * u2                                        # < 2^-51
    c_lo = fma(m, u2, -c_hi)
    # ordered so that when the fraction cancels to ~2^-61 every partial sum is already small
    s, e1 = _two_sum(a, b_hi)
    s, e2 = _two_sum(s, b_lo)
    s, e3 = _two_sum(s, c_hi)
    f, fl = _fast_two_sum(s, (e1 + e2) + (e3 + c_lo) + m * u3)
    r = f * _PIO2_HI
    rl = fma(f, _PIO2_HI, -r) + (f * _PIO2_LO + fl * _PIO2_HI)
    r, rl = _fast_two_sum(r, rl)
    n = np.int64(_clamp(n0 + n1 + n2 + n3, -8.0, 8.0))
    small = abs(x) < _PIO4
    return (x if small else r), (0.0 if small else rl), (0 if small else n)


@_jit
def _sin_exact(x):
    r, rl, n = _reduce_pio2_exact(x)
    y = _sin_quadrant(r, rl, n)
    y = x if abs(x) < 1.4901161193847656e-08 else y
    return y if abs(x) < np.inf else x - x               # NaN for inf and NaN


@_jit
def _cos_exact(x):
    r, rl, n = _reduce_pio2_exact(x)
    y = _cos_quadrant(r, rl, n)
    return y if abs(x) < np.inf else x - x


def _sin_exact_c(x):
    return _sin_exact(x)


def _cos_exact_c(x):
    return _cos_exact(x)


_sin_slow, _cos_slow = rare_call("sin", _sin_exact_c), rare_call("cos", _cos_exact_c)


# ---------------------------------------------------------------- float32 (float64 inside)


@_jit
def _exp32_core(d):
    """e^d to ~2^-37 for d in [-200, 200] (NaN stays NaN)."""
    n, k, r, _ = _exp_reduce(d, -300.0, 300.0)
    return fma(r * r, fma(r, _poly(r, _EXP32), 0.5), r) + 1.0, k


@_jit
def vexpf(x):
    d = np.float64(x)
    d = 200.0 if d > 200.0 else (-200.0 if d < -200.0 else d)
    p, k = _exp32_core(d)
    return np.float32(p * _pow2(k))


@_jit
def vexpm1f(x):
    d = np.float64(x)
    d = 200.0 if d > 200.0 else (-200.0 if d < -200.0 else d)
    n, k, r, _ = _exp_reduce(d, -300.0, 300.0)
    em = fma(r * r, fma(r, _poly(r, _EXP32), 0.5), r)
    t = _pow2(k)
    y = fma(t, em, t - 1.0)
    return x if abs(d) < 9.313225746154785e-10 else np.float32(y)   # 2^-30: -0.0 stays -0.0


@_jit
def _log32_kernel(d, corr):
    ix = as_int(d) + (0x3FF0000000000000 - _SQRT1_2_BITS)
    dk = np.float64((ix >> 52) - 1023)
    f = as_float((ix & _MANT) + _SQRT1_2_BITS) - 1.0
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * f * f
    return dk * _LN2 - ((hfsq - (s * (hfsq + z * _poly(z, _LOG32)) + corr)) - f)


@_jit
def vlogf(x):
    d = np.float64(x)                                    # float32 subnormals are normal here
    y = np.float32(_log32_kernel(d, 0.0))
    y = y if d < np.inf else x
    y = np.float32(-np.inf) if d == 0.0 else y
    return np.float32(np.nan) if d < 0.0 else y


@_jit
def vlog1pf(x):
    d = np.float64(x)
    u, c = _two_sum(1.0, d)
    y = np.float32(_log32_kernel(u, c / u))
    y = x if abs(d) < 9.313225746154785e-10 else y
    y = y if d < np.inf else x
    y = np.float32(-np.inf) if d == -1.0 else y
    return np.float32(np.nan) if d < -1.0 else y


@_jit
def vtanhf(x):
    d = np.float64(x)
    a = abs(d)
    z = d * d
    small = fma(d * z, _poly(z, _TANH32), d)
    p, k = _exp32_core(2.0 * a if a < 40.0 else 80.0)
    large = math.copysign(1.0 - 2.0 / (p * _pow2(k) + 1.0), d)
    y = np.float32(small if a < _TANH_SPLIT else large)
    return x if d != d or a < 7.450580596923828e-09 else y


@_jit
def _reduce_pio2_32(d):
    """d (a float32 value, |d| < _CW_LIMIT) = N pi/2 + r, r good to ~2^-50: (r, N)."""
    n = np.rint(d * _TWO_OVER_PI)
    return fma(-n, _PIO2_LO, fma(-n, _PIO2_HI, d)), np.int64(_clamp(n, -2.0 ** 31, 2.0 ** 31))


@_jit
def _sincos32(r):
    z = r * r
    return fma(r * z, _poly(z, _SIN32), r), fma(z, fma(z, _poly(z, _COS32), -0.5), 1.0)


@_jit
def vsinf(x):
    d = np.float64(x)
    r, n = _reduce_pio2_32(d)
    s, c = _sincos32(r)
    y = c if n & 1 else s
    y = -y if n & 2 else y
    y = d if abs(d) < 1.4901161193847656e-08 else y
    if not abs(d) < _CW_LIMIT:
        y = _sin_slow(d)
    return np.float32(y)


@_jit
def vcosf(x):
    d = np.float64(x)
    r, n = _reduce_pio2_32(d)
    s, c = _sincos32(r)
    y = s if n & 1 else c
    y = -y if (n + 1) & 2 else y
    if not abs(d) < _CW_LIMIT:
        y = _cos_slow(d)
    return np.float32(y)
