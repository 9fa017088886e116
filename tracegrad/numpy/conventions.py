"""What tracegrad's derivatives are where NumPy's (and SciPy's) functions are not differentiable
(kinks, ties, singular points) and at special points where a naive rule would fail: one note per
function.

These are the documented conventions: tools/coverage.py prints them in the supported-functions
table (README.md, docs/coverage.md), and the derivative fuzzer (tests/fuzz_specs.py) checks the
ones that fix a value. JAX's choice is followed unless a note says otherwise; everywhere else the
derivatives are exact (to every order, and checked against finite differences).
"""
from __future__ import annotations

import numpy as np
import scipy.special as _sc
import scipy.stats as _st

_L = np.linalg

_PIECEWISE_CONSTANT = "derivative 0 everywhere, jumps included"
_TIES_HALF = "at ties: 1/2 to each operand (JAX)"
_TIES_SECOND = "at ties: all to the second operand; a NaN operand gets 0 (JAX)"
_REDUCE_TIES = "ties share the derivative equally (JAX); `initial` tied with the result: 1/2"
_STABLE = "ties: each element's derivative follows it to its stable sorted place (JAX)"
_NORM = ("2-norm / fro at 0: NaN (not differentiable; JAX); over no elements: 0; "
         "2 / -2 at tied singular values: not differentiable")
_CONSTANT = "no derivative: the result does not depend on the values"
_EDGE_PDF = "at an edge of the support where the density is 0: derivative 0 (the outer one-sided one)"
_EDGE_CDF = "at the edges of the support: derivative 0 (the outer one-sided one)"

NOTES = {
    np.absolute: "at 0: 1 (JAX)",
    np.fabs: "at 0: 1 (JAX)",
    np.sign: _PIECEWISE_CONSTANT, np.floor: _PIECEWISE_CONSTANT, np.ceil: _PIECEWISE_CONSTANT,
    np.rint: _PIECEWISE_CONSTANT, np.trunc: _PIECEWISE_CONSTANT, np.round: _PIECEWISE_CONSTANT,
    np.around: _PIECEWISE_CONSTANT, np.floor_divide: _PIECEWISE_CONSTANT,
    np.maximum: _TIES_HALF, np.minimum: _TIES_HALF,
    np.fmax: _TIES_SECOND, np.fmin: _TIES_SECOND,
    np.clip: "at a bound: 1/2 (maximum/minimum's tie rule)",
    np.max: _REDUCE_TIES, np.amax: _REDUCE_TIES, np.min: _REDUCE_TIES, np.amin: _REDUCE_TIES,
    np.ptp: "max and min: " + _REDUCE_TIES,
    np.sort: _STABLE, np.partition: _STABLE + "; the sides are returned sorted",
    np.hypot: "at (0, 0): 1/2 each (JAX); exact to every order elsewhere, |x| == |y| included",
    np.logaddexp: "exact to every order, x == y included (1/2 each, second derivative 1/4)",
    np.logaddexp2: "exact to every order, x == y included",
    np.power: "0**0: derivative 0 (JAX); d/dy at x == 0: 0",
    np.float_power: "0**0: derivative 0 (JAX); d/dy at x == 0: 0",
    np.arctan2: "at (0, 0): NaN (not differentiable)",
    np.remainder: "at jumps: d/dx 1, d/dy -floor(x/y)",
    np.fmod: "at jumps: d/dx 1, d/dy -trunc(x/y)",
    np.divmod: "remainder: at jumps d/dx 1, d/dy -floor(x/y); quotient: derivative 0",
    np.sqrt: "at 0: inf", np.cbrt: "at 0: inf",
    np.sinc: "exact at 0 to every order (series near 0)",
    np.nan_to_num: "at NaN / inf entries: 0",
    np.where: "the selected side only (a NaN on the other side does not leak)",
    np.select: "the selected choice only",
    np.std: "zero spread: NaN (sqrt at 0; JAX); one element per group: 0",
    np.empty_like: _CONSTANT, np.zeros_like: _CONSTANT, np.ones_like: _CONSTANT,
    _L.norm: _NORM, _L.vector_norm: _NORM, _L.matrix_norm: _NORM,
    _L.det: "singular matrices: the adjugate, exact at any rank",
    _L.slogdet: "singular matrices: logabsdet -inf, derivative NaN",
    _L.inv: "singular matrices: LinAlgError, as NumPy", _L.solve: "singular matrices: LinAlgError, as NumPy",
    _L.eigh: "repeated eigenvalues: eigenvector derivatives inf/NaN (not defined)",
    _L.eigvalsh: "repeated eigenvalues: not differentiable (LAPACK's eigenvectors decide)",
    _L.svd: ("repeated or zero singular values: vector derivatives inf/NaN (not defined); "
             "full_matrices with m != n: the extra vectors rotate minimally"),
    _L.svdvals: "repeated singular values: not differentiable",
    _L.pinv: "along matrices of the same rank (Golub-Pereyra, JAX); jumps where the rank changes",
    _sc.log_ndtr: "exact to rounding at every order in the far left tail (continued fraction)",
    _sc.i0e: "exact to rounding at every order for large |x| (Hankel's series)",
    _sc.i1e: "exact to rounding at every order for large |x| (Hankel's series)",
    _st.t.logpdf: "derivatives in df exact to rounding for large df (no O(1/df) cancellation)",
    _st.t.pdf: "derivatives in df exact to rounding for large df (no O(1/df) cancellation)",
    _st.norm.logcdf: "exact to rounding at every order in the far left tail (log_ndtr's)",
    _st.norm.logsf: "exact to rounding at every order in the far right tail (log_ndtr's)",
    _st.beta.pdf: _EDGE_PDF, _st.beta.logpdf: _EDGE_PDF, _st.beta.cdf: _EDGE_CDF,
    _st.gamma.pdf: _EDGE_PDF, _st.gamma.logpdf: _EDGE_PDF, _st.gamma.cdf: _EDGE_CDF,
}
