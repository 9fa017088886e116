"""The scalar functions compiled kernels call for the special-function primitives (lowerings in
`lowering/special.py`); imported by the kernels that use them, and only by them, since importing
SciPy's Cython exports costs ~0.25 s.

The impls call `scipy.special`; compiled code calls the very same C functions, exported by
`scipy.special.cython_special`, so eager and compiled results agree to the bit. Each is bound
through an LLVM symbol (`llvmlite.binding.add_symbol`) and an `@intrinsic` that declares and calls
it: the compiled kernel refers to the function by name, not by address, so Numba's disk cache stays
valid in the next process (this module, imported by every kernel that calls one, registers the
symbols again before the cached code is linked). A ctypes pointer would be baked into the code and
disable caching.

polygamma(n >= 1, x) = (-1)^(n+1) n! zeta(n+1, x) needs the Hurwitz zeta function, which
cython_special does not export: `_hurwitz_zeta` sums it here (direct terms, then Euler-Maclaurin),
agreeing with SciPy to a few ulp.
"""
from __future__ import annotations

import math

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from .lowering.special import EXPORTS, EXPORTS_N


def _cython_call(export: str, nargs: int = 1):
    """An intrinsic `f(float64, ...) -> float64` calling cython_special's `export` (whose C
    signature is `double f(double, ..., int skip_dispatch)`)."""
    symbol = f"tracegrad_cython_special_{export}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.special.cython_special", export))

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * nargs + [ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
        return builder.call(fn, list(args) + [ir.Constant(ir.IntType(32), 0)])

    def typer(typingctx, *xs):
        if len(xs) != nargs or any(x != types.float64 for x in xs):
            return None
        return types.float64(*xs), codegen

    # @intrinsic reads the typer's signature: one fixed arity per function
    if nargs == 1:
        return intrinsic(lambda typingctx, x: typer(typingctx, x))
    if nargs == 2:
        return intrinsic(lambda typingctx, a, x: typer(typingctx, a, x))
    return intrinsic(lambda typingctx, a, b, x: typer(typingctx, a, b, x))


for _name, _export in EXPORTS.values():
    globals()[_name] = _cython_call(_export)
for _name, _export, _nargs in EXPORTS_N.values():
    globals()[_name] = _cython_call(_export, _nargs)


# ---------------------------------------------------------------- polygamma

# B_2j / (2j)! for j = 1..12 (Bernoulli numbers B_2 = 1/6, B_4 = -1/30, ...)
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510,
              43867 / 798, -174611 / 330, 854513 / 138, -236364091 / 2730)
_EM_COEF = np.array([b / math.factorial(2 * j + 2) for j, b in enumerate(_BERNOULLI)])


@njit(cache=True, error_model="numpy")
def _hurwitz_zeta(s, q):
    """zeta(s, q) = sum_k (q + k)^-s for a whole s >= 2: inf at the poles q = 0, -1, -2, ...
    Terms are summed directly until q + k >= 10 + s, where the Euler-Maclaurin remainder
    a^(1-s)/(s-1) + a^-s/2 + sum_j B_2j/(2j)! s(s+1)...(s+2j-2) a^(-s-2j+1) has converged."""
    if q != q:
        return q
    if q <= 0.0 and q == math.floor(q):
        return math.inf
    if q == math.inf:
        return 0.0
    total = 0.0
    a = q
    while a < 10.0 + s:
        total += math.pow(a, -s)
        a += 1.0
    a_s = math.pow(a, -s)
    total += a * a_s / (s - 1.0) + 0.5 * a_s
    r = s * a_s / a                     # s (s+1) ... (s+2j-2) a^(-s-2j+1), for j = 1
    for j in range(_EM_COEF.size):
        t = _EM_COEF[j] * r
        total += t
        if abs(t) <= 1e-17 * abs(total):
            break
        r *= (s + 2 * j + 1) * (s + 2 * j + 2) / (a * a)
    return total


@njit(cache=True, error_model="numpy")
def sp_polygamma(n, x):
    """scipy.special.polygamma(n, x) for a whole n >= 0; NaN for any other n (as the impl)."""
    if not (n >= 0.0 and n == math.floor(n) and n < math.inf):
        return math.nan
    if n == 0.0:
        return sp_digamma(x)  # noqa: F821  (defined by the loop above)
    sign = 1.0 if n - 2.0 * math.floor(0.5 * n) == 1.0 else -1.0
    return sign * sp_gamma(n + 1.0) * _hurwitz_zeta(n + 1.0, x)  # noqa: F821
