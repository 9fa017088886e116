"""Sorting on traced values: sort, argsort, partition, argpartition, all from the stable `sort`
primitive (gradients flow through the permutation; argsort is always stable)."""
from __future__ import annotations

import numpy as np

from .. import ops
from .. import ops_indexing
from ._dispatch import numpy_function


def _sorted(a, axis):
    a = ops.as_operand(a)
    if axis is None:
        a, axis = ops.ravel(a), 0
    if ops.ndim_of(a) == 0:
        raise np.exceptions.AxisError("axis -1 is out of bounds for array of dimension 0")
    return ops_indexing.sort(a, ops.normalize_axis(axis, ops.ndim_of(a)))


def _check_sort_kwargs(kind, order):
    if order is not None:
        raise NotImplementedError("sort(..., order=...) (structured arrays) is not supported on traced values")
    if kind not in (None, "quicksort", "mergesort", "heapsort", "stable"):
        raise ValueError(f"sort kind must be one of 'quicksort', 'heapsort', or 'stable' (got {kind!r})")


@numpy_function(np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Sorted copy (stable); the gradient follows each element to its sorted position."""
    _check_sort_kwargs(kind, order)
    return _sorted(a, axis)[0]


@numpy_function(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Indices that sort `a` (stable: equal elements keep their order). No gradient."""
    _check_sort_kwargs(kind, order)
    return _sorted(a, axis)[1]


def _kth_list(kth, n):
    ks = [int(k) for k in np.atleast_1d(np.asarray(kth))]
    if np.asarray(kth).dtype.kind not in "iu":
        raise TypeError("Partition index must be integer")
    for k in ks:
        if not -n <= k < n:
            raise ValueError(f"kth(={k}) out of bounds ({n})")
    return ks


@numpy_function(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A valid partition (the fully sorted array): the k-th element is in its sorted place, no
    element before it is larger and none after is smaller. NumPy leaves the order within the two
    sides unspecified; here they are sorted. The gradient follows the selection."""
    if order is not None:
        raise NotImplementedError("partition(..., order=...) is not supported on traced values")
    vals, _ = _sorted(a, axis)
    _kth_list(kth, ops.shape_of(vals)[-1 if axis is None else ops.normalize_axis(axis, ops.ndim_of(vals))])
    return vals


@numpy_function(np.argpartition)
def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """Indices of a valid partition (those of a stable full sort). No gradient."""
    if order is not None:
        raise NotImplementedError("argpartition(..., order=...) is not supported on traced values")
    _, perm = _sorted(a, axis)
    _kth_list(kth, ops.shape_of(perm)[-1 if axis is None else ops.normalize_axis(axis, ops.ndim_of(perm))])
    return perm
