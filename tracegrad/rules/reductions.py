"""Reduction primitives: impl, shape, VJP, JVP. `axes` is a sorted tuple; reduced axes are dropped."""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from .. import primitives as P
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, fmt_shape


def _reduce_shape(x, *, axes, out_dtype=None):
    for a in axes:
        if not 0 <= a < x.ndim:
            raise ValueError(f"axis {a} is out of bounds for shape {fmt_shape(x.shape)}")
    return Aval(tuple(d for i, d in enumerate(x.shape) if i not in axes), out_dtype or x.dtype)


def _check_nonempty(name, x, axes):
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"zero-size array to reduction operation {name} which has no identity "
                         f"(shape {fmt_shape(x.shape)}, axes {axes})")


def _minmax_shape(name):
    def rule(x, *, axes):
        _check_nonempty(name, x, axes)
        return _reduce_shape(x, axes=axes)
    return rule


# (the ufuncs' reduce: what np.sum/np.prod/np.max/np.min call, without their Python wrappers)
defimpl(P.reduce_sum_p, lambda x, *, axes: np.add.reduce(x, axis=axes, dtype=x.dtype))
defimpl(P.reduce_prod_p, lambda x, *, axes: np.multiply.reduce(x, axis=axes, dtype=x.dtype))
defimpl(P.reduce_max_p, lambda x, *, axes: np.maximum.reduce(x, axis=axes))
defimpl(P.reduce_min_p, lambda x, *, axes: np.minimum.reduce(x, axis=axes))
defimpl(P.reduce_and_p, lambda x, *, axes: np.all(x, axis=axes))
defimpl(P.reduce_or_p, lambda x, *, axes: np.any(x, axis=axes))
defshape(P.reduce_sum_p, _reduce_shape)
defshape(P.reduce_prod_p, _reduce_shape)
defshape(P.reduce_max_p, _minmax_shape("maximum"))
defshape(P.reduce_min_p, _minmax_shape("minimum"))
defshape(P.reduce_and_p, lambda x, *, axes: _reduce_shape(x, axes=axes, out_dtype=np.bool_))
defshape(P.reduce_or_p, lambda x, *, axes: _reduce_shape(x, axes=axes, out_dtype=np.bool_))


def _arg_shape(x, *, axis):
    _check_nonempty("argmax/argmin", x, (axis,))
    return _reduce_shape(x, axes=(axis,), out_dtype=np.int64)


defimpl(P.argmax_p, lambda x, *, axis: np.argmax(x, axis=axis).astype(np.int64))
defimpl(P.argmin_p, lambda x, *, axis: np.argmin(x, axis=axis).astype(np.int64))
defshape(P.argmax_p, _arg_shape)
defshape(P.argmin_p, _arg_shape)


def _spread(y, x, axes):
    """A reduced-shape value broadcast back over the reduced axes of `x`."""
    return ops.broadcast_to(ops.expand_to_reduced(y, x.shape, axes), x.shape)


defvjp(P.reduce_sum_p, lambda ct, x, *, out, axes: (_spread(ct, x, axes),))
defjvp(P.reduce_sum_p, lambda tangents, x, *, out, axes: ops.reduce_sum(tangents[0], axes))


def _minmax_weights(x, out, axes):
    """Where x attains the extreme, 1/count of such places (JAX shares the gradient among ties)."""
    hit = ops.convert(ops.compare(P.eq_p, x, _spread(out, x, axes)), x.dtype)
    return ops.div(hit, _spread(ops.reduce_sum(hit, axes), x, axes))


def _minmax_vjp(ct, x, *, out, axes):
    return (ops.mul(_spread(ct, x, axes), _minmax_weights(x, out, axes)),)


def _minmax_jvp(tangents, x, *, out, axes):
    return ops.reduce_sum(ops.mul(tangents[0], _minmax_weights(x, out, axes)), axes)


for _p in (P.reduce_max_p, P.reduce_min_p):
    defvjp(_p, _minmax_vjp)
    defjvp(_p, _minmax_jvp)


def _prod_of_others(x, axes):
    """For each element, the product of the other elements in its reduction group.

    Computed without dividing by x (exact at zeros): the group is laid out on the last axis,
    and each element's own slot is replaced by 1 in an n-by-n mask before the product.
    """
    keep = [a for a in range(x.ndim) if a not in axes]
    perm = keep + list(axes)
    xt = ops.transpose(x, perm)
    lead = tuple(x.shape[a] for a in keep)
    n = math.prod([x.shape[a] for a in axes])
    flat = ops.reshape(xt, lead + (n,))
    eye = np.eye(n, dtype=bool)
    tiled = ops.broadcast_to(ops.reshape(flat, lead + (1, n)), lead + (n, n))
    others = ops.reduce(P.reduce_prod_p, ops.select(eye, ops.ones_like(tiled), tiled), (len(lead) + 1,))
    back = ops.reshape(others, tuple(xt.shape))
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return ops.transpose(back, inv)


def _prod_vjp(ct, x, *, out, axes):
    return (ops.mul(_spread(ct, x, axes), _prod_of_others(x, axes)),)


def _prod_jvp(tangents, x, *, out, axes):
    return ops.reduce_sum(ops.mul(tangents[0], _prod_of_others(x, axes)), axes)


defvjp(P.reduce_prod_p, _prod_vjp)
defjvp(P.reduce_prod_p, _prod_jvp)
