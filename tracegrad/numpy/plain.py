"""Plain NumPy calls that would reach `Tracer.__array__`: replaced while a trace is open.

NumPy dispatches a function to `__array_function__` only on some of its arguments, and a few
functions convert their arguments with `np.asarray` before dispatching at all. With a tracer in
such a position the plain-NumPy spelling used to fail with "np.asarray() of a traced value":
  np.asarray, np.array          no dispatch at all
  np.full(shape, fill)          converts `fill` first
  np.full_like(a, fill)         dispatches on `a` only, then copies `fill` in
  np.take(a, indices)           dispatches on `a` (and `out`) only
  np.select(..., default)       `default` is not dispatched on
  np.pad(..., constant_values)  only `array` is dispatched on
  np.nan_to_num(x, nan=...)     only `x` is dispatched on
  ndarray[key]                  a NumPy array indexed with traced (integer) arrays, e.g. a constant
                                image gathered at indices computed from traced velocities, or
                                sliced with traced bounds (a minibatch `data[i * bs:(i + 1) * bs]`)
  ndarray.dot(b), .take(idx)    the method spellings of np.dot / np.take on a NumPy array
While a trace is open (patching.py) these names in `numpy` are tracegrad's registered functions,
which call NumPy's own when no argument is traced, the two methods do the same, and `ndarray`'s
subscript records a gather when the key holds a tracer (compiling traces only: in eager mode an
integer tracer converts to its value, which NumPy's own indexing then uses). The list is checked against the registry by tests/test_plain_numpy.py.
References taken before tracing (`from numpy import full`) still reach `__array__` (its
TracerError says what to do).
"""
from __future__ import annotations

import numpy as np

from .. import patching
from ..trace import Tracer, current_builder
from ._dispatch import FUNCTIONS
from .indexing import getitem

# NumPy functions in the registry whose NumPy spelling converts a traced argument (see above).
CONVERTING = ("asarray", "array", "full", "full_like", "take", "select", "pad", "nan_to_num")


def _holds_tracer(key) -> bool:
    if isinstance(key, Tracer):
        return True
    if isinstance(key, (tuple, list)):
        return any(_holds_tracer(k) for k in key)
    if isinstance(key, slice):           # x[i * bs:(i + 1) * bs]
        return any(isinstance(b, Tracer) for b in (key.start, key.stop, key.step))
    return False


def _ndarray_getitem(self, key, original):
    if current_builder() is not None and _holds_tracer(key):
        return getitem(self, key)
    return original(self, key)


def _ndarray_method(name, function):
    original = patching.type_dict(np.ndarray)[name]

    def method(self, *args, **kwargs):
        if current_builder() is not None and (_holds_tracer(args) or _holds_tracer(list(kwargs.values()))):
            return function(self, *args, **kwargs)
        return original(self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    return method


patching.register(patching.ModulePatch(np, {name: FUNCTIONS[getattr(np, name)] for name in CONVERTING}))
patching.register(patching.TypeDictPatch(np.ndarray, {name: _ndarray_method(name, FUNCTIONS[getattr(np, name)])
                                                       for name in ("dot", "take")}))
ndarray_subscript = patching.SubscriptPatch(np.ndarray, _ndarray_getitem)
patching.register(ndarray_subscript, compiling_only=True)
