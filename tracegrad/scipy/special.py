"""`tracegrad.scipy.special`: scipy.special's functions on traced values.

The ufuncs (gammaln, digamma, erf, expit, xlogy, i0, ...) are registered with the NumPy protocol,
so `scipy.special.gammaln(tracer)` traces too; polygamma, logsumexp, softmax and log_softmax are
Python functions in SciPy that convert their arguments with np.asarray, so traced code calls them
from here. Outside a trace every function returns what SciPy returns.

Functions SciPy computes with a dedicated algorithm are primitives (tracegrad/rules/special.py);
the rest are compositions, written so that their values are accurate where SciPy's are and their
derivatives of every order are finite wherever the function is smooth.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.special as sc

from .. import ops
from .. import primitives as P
from ..numpy import reductions as _red
from ..numpy._dispatch import numpy_function
from ..numpy.elementwise import _ufunc
from ..rules.special import polygamma as _polygamma_of


def _prim(prim):
    return lambda x: ops.unary(prim, x)


def _c(x, value):
    return np.asarray(value, dtype=ops.dtype_of(x))[()]


gammaln = _ufunc(sc.gammaln, _prim(P.lgamma_p))
digamma = psi = _ufunc(sc.digamma, _prim(P.digamma_p))
gamma = _ufunc(sc.gamma, _prim(P.gamma_p))
erf = _ufunc(sc.erf, _prim(P.erf_p))
erfc = _ufunc(sc.erfc, _prim(P.erfc_p))
erfinv = _ufunc(sc.erfinv, _prim(P.erfinv_p))
log_ndtr = _ufunc(sc.log_ndtr, _prim(P.log_ndtr_p))
i0 = _ufunc(sc.i0, _prim(P.i0_p))
i1 = _ufunc(sc.i1, _prim(P.i1_p))
i0e = _ufunc(sc.i0e, _prim(P.i0e_p))
i1e = _ufunc(sc.i1e, _prim(P.i1e_p))
# Phi(x) = erfc(-x / sqrt 2) / 2: accurate in the left tail, where 1 + erf(x / sqrt 2) cancels
ndtr = _ufunc(sc.ndtr, lambda x: ops.mul(ops.unary(P.erfc_p, ops.mul(x, _c(x, -math.sqrt(0.5)))),
                                         _c(x, 0.5)))


def _expit(x):
    # 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: exp never overflows in either branch
    e = ops.exp(ops.neg(ops.unary(P.abs_p, x)))
    inv = ops.div(_c(x, 1), ops.add(e, _c(x, 1)))
    return ops.select(ops.compare(P.ge_p, x, 0), inv, ops.mul(e, inv))


def _logit(p):
    # near 1/2, 2 atanh(2p - 1) (2p - 1 is exact there); elsewhere log(p / (1 - p)), |logit| > 1.1
    centred = ops.sub(ops.mul(p, _c(p, 2)), _c(p, 1))
    mid = ops.compare(P.lt_p, ops.unary(P.abs_p, centred), _c(p, 0.5))
    safe_c = ops.select(mid, centred, ops.zeros_like(centred))
    safe_p = ops.select(mid, _c(p, 0.25), p)
    far = ops.log(ops.div(safe_p, ops.sub(_c(p, 1), safe_p)))
    return ops.select(mid, ops.mul(ops.unary(P.atanh_p, safe_c), _c(p, 2)), far)


expit = _ufunc(sc.expit, _expit)
logit = _ufunc(sc.logit, _logit)


def _x_times_log(logf, bad_y):
    """x * logf(y), exactly 0 where x == 0 and y is not NaN (as SciPy). The derivative in x is
    logf(y) even at x == 0, and in y is x / y (0 at x == 0), as JAX defines them: the log is
    replaced by 0 only where x == 0 and it would be infinite or NaN."""
    def build(x, y):
        zero_x = ops.compare(P.eq_p, x, 0)
        replace = ops.bind(P.and_p, zero_x, bad_y(y))
        safe_y = ops.select(replace, ops.ones_like(y), y)
        lg = ops.select(replace, ops.zeros_like(y), logf(safe_y))
        return ops.mul(x, lg)
    return build


def _bad_log_arg(lo):
    # where log / log1p is infinite or NaN, but y itself is not NaN
    return lambda y: ops.bind(P.or_p, ops.compare(P.le_p, y, _c(y, lo)),
                              ops.compare(P.eq_p, y, _c(y, np.inf)))


xlogy = _ufunc(sc.xlogy, _x_times_log(ops.log, _bad_log_arg(0)))
xlog1py = _ufunc(sc.xlog1py, _x_times_log(lambda y: ops.unary(P.log1p_p, y), _bad_log_arg(-1)))


# regularized incomplete gamma and beta: differentiable in x only (a, b: NotImplementedError)
gammainc = _ufunc(sc.gammainc, lambda a, x: ops.bind(P.gammainc_p, a, x))
gammaincc = _ufunc(sc.gammaincc, lambda a, x: ops.bind(P.gammaincc_p, a, x))
betainc = _ufunc(sc.betainc, lambda a, b, x: ops.bind(P.betainc_p, a, b, x))
# positions without a derivative, for generic gradient checks (tests/test_compiled_functions.py)
gammainc.nondiff_args = gammaincc.nondiff_args = (0,)
betainc.nondiff_args = (0, 1)


def _betaln(a, b):
    return ops.sub(ops.add(ops.unary(P.lgamma_p, a), ops.unary(P.lgamma_p, b)),
                   ops.unary(P.lgamma_p, ops.add(a, b)))


betaln = _ufunc(sc.betaln, _betaln)


def _entr(x):
    # -x log x for x > 0, 0 at 0, -inf below (as SciPy)
    v = ops.neg(_x_times_log(ops.log, _bad_log_arg(0))(x, x))
    return ops.select(ops.compare(P.lt_p, x, 0), ops.full(ops.shape_of(x), -np.inf, ops.dtype_of(x)), v)


entr = _ufunc(sc.entr, _entr)


# ---------------------------------------------------------------- Python functions in SciPy

@numpy_function(sc.polygamma)
def polygamma(n, x):
    """psi^(n)(x), the n-th derivative of digamma; n a whole number >= 0 (NaN otherwise).

    The derivative in x is polygamma(n + 1, x); n, being a whole number, has none."""
    n, x = ops.as_operand(n), ops.as_operand(x)
    # SciPy's result dtype: n as an array (Python ints are int64) and x, computed in floating point
    dt = np.result_type(ops.dtype_of(n), ops.dtype_of(x), 1.0)
    return _polygamma_of(ops.as_dtype(n, dt), ops.as_dtype(x, dt))


@numpy_function(sc.logsumexp)
def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over `axis` (tracegrad.numpy.logsumexp); as SciPy's, a 0-d `a` with
    keepdims gives shape (1,)."""
    out = _red.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    if keepdims and ops.ndim_of(ops.as_operand(a)) == 0:
        out = tuple(ops.reshape(o, (1,)) for o in out) if return_sign else ops.reshape(out, (1,))
    return out


@numpy_function(sc.log_softmax)
def log_softmax(x, axis=None):
    """x - logsumexp(x, axis, keepdims=True)."""
    x = ops.float_operand(ops.as_operand(x))
    return ops.sub(x, _red.logsumexp(x, axis=axis, keepdims=True))


@numpy_function(sc.softmax)
def softmax(x, axis=None):
    """exp(log_softmax(x, axis)): no overflow for large x."""
    return ops.exp(log_softmax(x, axis=axis))


__all__ = ["gammaln", "digamma", "psi", "polygamma", "gamma", "erf", "erfc", "erfinv", "ndtr",
           "log_ndtr", "expit", "logit", "xlogy", "xlog1py", "i0", "i1", "i0e", "i1e", "betaln",
           "entr", "gammainc", "gammaincc", "betainc", "logsumexp", "softmax", "log_softmax"]
