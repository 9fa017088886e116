"""`tracegrad.numpy`: NumPy's API on traced values.

Outside any transform every function here returns exactly what NumPy returns (plain arrays), so code
written against it runs as ordinary NumPy too; on traced values it records IR. Plain `np.*` calls on
traced values reach the same implementations through `__array_function__` / `__array_ufunc__`.
"""
from numpy import (bool_, e, euler_gamma, float16, float32, float64, inf, int8, int16, int32, int64,
                   nan, newaxis, pi, uint8, dtype, ndarray, finfo, iinfo)

from . import _methods  # noqa: F401  (installs Tracer operators and methods)
from . import plain  # noqa: F401  (np.full(traced) & co. and ndarray[traced] trace, see plain.py)
from .creation import (arange, array, asarray, copy, empty, empty_like, eye, full, full_like,
                       identity, linspace, ones, ones_like, zeros, zeros_like)
from .elementwise import *  # noqa: F401,F403
from .elementwise import abs, round  # noqa: F401
from .products import dot, inner, matmul, outer, vdot
from .reductions import (all, amax, amin, any, argmax, argmin, average, max, mean, min, prod, ptp,
                         std, sum, var)
from .shapes import (atleast_1d, atleast_2d, atleast_3d, broadcast_to, column_stack, concatenate,
                     expand_dims, flip, fliplr, flipud, hstack, moveaxis, ndim, ravel, reshape, shape,
                     size, squeeze, stack, swapaxes, transpose, vstack)
from . import linalg  # (tracegrad.numpy.linalg mirrors np.linalg)
from .contractions import diag, diagflat, diagonal, einsum, kron, tensordot, trace, tril, triu
from .cumulative import cumprod, cumsum, diff, ediff1d
from .indexing import at, take, take_along_axis
from .products import cross
from .rearranging import (append, array_split, dsplit, hsplit, pad, repeat, roll, rollaxis, rot90,
                          split, tile, vsplit)
from .reductions import logsumexp
from .sorting import argpartition, argsort, partition, sort
