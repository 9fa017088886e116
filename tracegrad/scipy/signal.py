"""`tracegrad.scipy.signal`: `convolve` on traced values (n-dimensional, modes full/valid/same).

out[n] = sum_k in1[n - k] in2[k] is computed as one gather and one contraction: for every output
position, the window of zero-padded in1 it meets is gathered with a static index array (per axis,
output i and kernel index k read padded index offset + i - k + K - 1), then contracted with in2
over the kernel axes by a single dot_general (a BLAS matrix product once compiled). Both inputs are
differentiable (the gather's derivative is a scatter-add), to every order. Outside a trace,
scipy.signal.convolve itself runs.
"""
from __future__ import annotations

import numpy as np
import scipy.signal as _ss

from .. import ops
from ..numpy._dispatch import numpy_function
from ..numpy.indexing import take as _take


_MODES = ("full", "valid", "same")


@numpy_function(_ss.convolve)
def convolve(in1, in2, mode="full", method="auto"):
    """scipy.signal.convolve(in1, in2, mode): the n-d convolution (in1 and in2 of equal ndim).

    `method` is accepted for compatibility; the result is the direct sum in any case."""
    if mode not in _MODES:
        raise ValueError(f"convolve: mode must be one of {_MODES}, got {mode!r}")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"convolve: method must be 'auto', 'direct' or 'fft', got {method!r}")
    in1, in2 = ops.promote(ops.as_operand(in1), ops.as_operand(in2))
    s1, s2 = tuple(ops.shape_of(in1)), tuple(ops.shape_of(in2))
    if len(s1) != len(s2):
        raise ValueError(f"convolve: in1 and in2 should have the same dimensionality, got "
                         f"{len(s1)} and {len(s2)}")
    if not s1:
        return ops.mul(in1, in2)
    if 0 in s1 or 0 in s2:
        return ops.zeros_like(in1) if mode == "same" else ops.full(
            _out_shape(s1, s2, mode), 0, ops.dtype_of(in1))
    if mode == "valid":
        if all(b >= a for a, b in zip(s1, s2)) and s1 != s2:
            in1, in2, s1, s2 = in2, in1, s2, s1      # convolution commutes: the larger one slides
        elif not all(a >= b for a, b in zip(s1, s2)):
            raise ValueError("convolve: for 'valid' mode, one must be at least as large as the "
                             "other in every dimension")
    out_shape = _out_shape(s1, s2, mode)
    # zero-pad in1 by K - 1 on both sides of every axis: every window index is then in range
    x = ops.pad(in1, np.zeros((), ops.dtype_of(in1))[()], tuple((k - 1, k - 1, 0) for k in s2))
    d = len(s1)
    for axis in range(d - 1, -1, -1):          # last axis first: earlier axes keep their positions
        n, k = out_shape[axis], s2[axis]
        # output i is full[offset + i] = sum_k padded[offset + i - k + K - 1] in2[k]
        idx = _offset(k, mode) + np.arange(n)[:, None] - np.arange(k)[None, :] + (k - 1)
        x = _take(x, idx, axis=axis)           # axis -> (n, k)
    # x: (n0, k0, n1, k1, ...); contract the k axes with in2's axes
    return ops.dot_general(x, in2, (tuple(range(1, 2 * d, 2)), tuple(range(d))))


def _offset(k, mode):
    """Where the requested output starts within the 'full' one (kernel length k)."""
    return {"full": 0, "same": (k - 1) // 2, "valid": k - 1}[mode]


def _out_shape(s1, s2, mode):
    if mode == "full":
        return tuple(a + b - 1 for a, b in zip(s1, s2))
    if mode == "same":
        return s1
    return tuple(max(a - b + 1, 0) for a, b in zip(s1, s2))


__all__ = ["convolve"]
