"""Derive the polynomial coefficients of compiler/vecmath.py (minimax, Remez exchange).

    python tools/vecmath_coeffs.py            # every polynomial: coefficients and achieved error
    python tools/vecmath_coeffs.py exp64 sin64

Standard library only: the targets are power series with exact rational coefficients (`fractions`),
summed in `decimal` at 90 digits; the Remez iteration (linear solve + exchange of the extrema on a
dense grid) runs in `decimal` too. Each polynomial minimises the *relative* error of a reduced
function on the interval the kernel feeds it; the script prints the coefficients rounded to
float64 (`repr`, so they paste exactly) and the relative error measured with those rounded values.
"""
from __future__ import annotations

import math
import sys
from decimal import Decimal as D, getcontext
from fractions import Fraction as F
from math import factorial

getcontext().prec = 90
TERMS = 120          # series terms: enough for 1e-80 on every interval below


def _dec(fr: F) -> D:
    return D(fr.numerator) / D(fr.denominator)


def _series(coeffs):
    """t -> sum coeffs[k] t^k (Decimal), coeffs exact."""
    cs = [_dec(c) for c in coeffs]

    def f(t):
        acc = D(0)
        for c in reversed(cs):
            acc = acc * t + c
        return acc
    return f


def _tanh_taylor(n):
    """Exact Taylor coefficients a_k of tanh (a_k = 0 for even k), from tanh' = 1 - tanh^2."""
    a = [F(0)] * (n + 2)
    a[1] = F(1)
    for m in range(1, n):
        conv = sum((a[i] * a[m - i] for i in range(1, m)), F(0))
        a[m + 1] = -conv / (m + 1)
    return a


def _pi() -> D:
    # Machin: pi = 16 atan(1/5) - 4 atan(1/239), each atan summed in Decimal
    def atan_inv(k):
        x2, s, n, term = D(1) / (k * k), D(0), 0, D(1) / k
        while term != 0:
            s += term / (2 * n + 1) * (-1 if n % 2 else 1)
            n += 1
            term *= x2
            if abs(term) < D(10) ** -(getcontext().prec + 5):
                break
        return s
    return 16 * atan_inv(5) - 4 * atan_inv(239)


PI = _pi()
LN2 = D(2).ln()
SQRT2 = D(2).sqrt()

# name -> (reduced function of t (exact series), interval, degree, what t is)
_tanh = _tanh_taylor(2 * TERMS + 3)
_S = _series([F((-1) ** (k + 1), factorial(2 * k + 3)) for k in range(TERMS)])
_C = _series([F((-1) ** k, factorial(2 * k + 4)) for k in range(TERMS)])
_E = _series([F(1, factorial(k + 3)) for k in range(TERMS)])
_L = _series([F(2, 2 * k + 3) for k in range(TERMS)])
_T = _series([_tanh[2 * k + 3] for k in range(TERMS)])

_R_EXP = LN2 / 2 * D("1.0001")             # |x - n ln2| (n = rint(x / ln2)), with rounding slack
# s^2 for s = f / (2 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1]
_Z_LOG = ((SQRT2 - 1) / (SQRT2 + 1)) ** 2 * D("1.0001")
_Z_TRIG = (PI / 4) ** 2 * D("1.0001")      # r^2, |r| <= pi/4 after reduction (a hair beyond)
TANH_SPLIT = D("0.625")                    # vtanh: polynomial below, 1 - 2/(e^2|x| + 1) above
_Z_TANH = TANH_SPLIT ** 2 * D("1.0001")

POLYS = {
    # float64 kernels
    "exp64": (_E, (-_R_EXP, _R_EXP), 9, "E(r) = (e^r - 1 - r - r^2/2) / r^3"),
    "log64": (_L, (D(0), _Z_LOG), 6, "P(z) = (2 atanh(s)/s - 2) / z,  z = s^2"),
    "sin64": (_S, (D(0), _Z_TRIG), 5, "S(z) = (sin r - r) / r^3,  z = r^2"),
    "cos64": (_C, (D(0), _Z_TRIG), 5, "C(z) = (cos r - 1 + z/2) / z^2,  z = r^2"),
    "tanh64": (_T, (D(0), _Z_TANH), 11, "T(z) = (tanh(x)/x - 1) / z,  z = x^2"),
    # float32 kernels (evaluated in float64; about 2^-34 relative suffices)
    "exp32": (_E, (-_R_EXP, _R_EXP), 5, "E(r) as exp64"),
    "log32": (_L, (D(0), _Z_LOG), 3, "P(z) as log64"),
    "sin32": (_S, (D(0), _Z_TRIG), 3, "S(z) as sin64"),
    "cos32": (_C, (D(0), _Z_TRIG), 3, "C(z) as cos64"),
    "tanh32": (_T, (D(0), _Z_TANH), 6, "T(z) as tanh64"),
}


def _solve(A, b):
    """Gaussian elimination with partial pivoting (Decimal)."""
    n = len(b)
    M = [row[:] + [bi] for row, bi in zip(A, b)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(M[r][c]))
        M[c], M[p] = M[p], M[c]
        for r in range(c + 1, n):
            f = M[r][c] / M[c][c]
            for k in range(c, n + 1):
                M[r][k] -= f * M[c][k]
    x = [D(0)] * n
    for r in range(n - 1, -1, -1):
        x[r] = (M[r][n] - sum(M[r][k] * x[k] for k in range(r + 1, n))) / M[r][r]
    return x


def _pow(x, k):
    return D(1) if k == 0 else x ** k


def _peval(cs, t):
    acc = D(0)
    for c in reversed(cs):
        acc = acc * t + c
    return acc


def _cheb(a, b, n):
    """n Chebyshev extrema on [a, b], ascending."""
    pts = []
    for i in range(n):
        c = D(str(math.cos(math.pi * (n - 1 - i) / (n - 1))))   # nodes need no precision
        pts.append((a + b) / 2 + (b - a) / 2 * c)
    return pts


def remez(g, a, b, deg, iters=30, grid=2000):
    """Coefficients (low order first) minimising max |p/g - 1| on [a, b], and that maximum."""
    ref = _cheb(a, b, deg + 2)
    xs = _cheb(a, b, grid)
    gx = [g(x) for x in xs]
    best = None
    for _ in range(iters):
        A = [[_pow(x, k) for k in range(deg + 1)] + [D((-1) ** i) * abs(g(x))] for i, x in enumerate(ref)]
        sol = _solve(A, [g(x) for x in ref])
        cs, E = sol[:-1], abs(sol[-1])
        err = [(_peval(cs, x) - gv) / abs(gv) for x, gv in zip(xs, gx)]
        # one extremum per run of equal sign, then keep deg + 2 alternating ones
        runs, start = [], 0
        for i in range(1, grid + 1):
            if i == grid or (err[i] > 0) != (err[start] > 0):
                j = max(range(start, i), key=lambda k: abs(err[k]))
                runs.append(j)
                start = i
        while len(runs) > deg + 2:        # drop the smallest end extremum
            if abs(err[runs[0]]) < abs(err[runs[-1]]):
                runs.pop(0)
            else:
                runs.pop()
        emax = max(abs(e) for e in err)
        best = (cs, emax)
        if len(runs) < deg + 2 or emax <= E * D("1.000001"):
            break
        ref = [xs[j] for j in runs]
    return best


def rounded_error(g, a, b, cs, grid=4000):
    """Max relative error of the polynomial with coefficients rounded to float64."""
    r = [D(float(c)) for c in cs]
    return max(abs(_peval(r, x) / g(x) - 1) for x in _cheb(a, b, grid))


def _split(value: D, clear_bits: int):
    """value as hi + lo: hi is the float64 nearest value with its low `clear_bits` mantissa bits
    cleared (so that n * hi is exact for small integers n), lo the float64 nearest the rest."""
    import struct
    bits = struct.unpack("<Q", struct.pack("<d", float(value)))[0] & ~((1 << clear_bits) - 1)
    hi = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return hi, float(value - D(hi))


def constants():
    ln2_hi, ln2_lo = _split(LN2, 21)       # n * _LN2_HI exact for |n| < 2^21
    pio2_hi, pio2_lo = _split(PI / 2, 0)
    pio2_3 = float(PI / 2 - D(pio2_hi) - D(pio2_lo))
    print(f"_LN2_HI, _LN2_LO = {ln2_hi!r}, {ln2_lo!r}")
    print(f"_INV_LN2 = {float(1 / LN2)!r}")
    print(f"_LN2 = {float(LN2)!r}")
    print(f"_PIO2_HI, _PIO2_LO, _PIO2_3 = {pio2_hi!r}, {pio2_lo!r}, {pio2_3!r}")
    print(f"_TWO_OVER_PI = {float(2 / PI)!r}")
    print(f"_PIO4 = {float(PI / 4)!r}")


def main(names):
    if not names:
        constants()
    for name in names or POLYS:
        g, (a, b), deg, what = POLYS[name]
        cs, e = remez(g, a, b, deg)
        er = rounded_error(g, a, b, cs)
        bits = -float(er.ln() / LN2)
        print(f"# {name}: {what}, degree {deg} on [{float(a):.6g}, {float(b):.6g}]: "
              f"minimax rel. error {float(e):.3g}, with float64 coefficients {float(er):.3g} (2^-{bits:.1f})")
        print(f"_{name.upper()} = ({', '.join(repr(float(c)) for c in cs)})")


if __name__ == "__main__":
    main(sys.argv[1:])
