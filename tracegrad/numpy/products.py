"""Matrix products (matmul, dot, outer, inner, vdot), all as `dot_general`."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import user_source
from ._dispatch import numpy_function


def _shape_error(name, a, b):
    return ValueError(f"{name}: shapes {tuple(ops.shape_of(a))} and {tuple(ops.shape_of(b))} are not "
                      f"aligned, at {user_source(3)}")


@numpy_function(np.matmul)
def matmul(a, b):
    """`a @ b` with NumPy's rules: 1-D operands are promoted and squeezed, batch dims broadcast."""
    a, b = ops.promote(a, b)
    sa, sb = tuple(ops.shape_of(a)), tuple(ops.shape_of(b))
    if not sa or not sb:
        raise ValueError(f"matmul: input operand does not have enough dimensions (shapes {sa} and "
                         f"{sb}), at {user_source(2)}")
    a2 = ops.reshape(a, (1,) + sa) if len(sa) == 1 else a
    b2 = ops.reshape(b, sb + (1,)) if len(sb) == 1 else b
    sa2, sb2 = tuple(ops.shape_of(a2)), tuple(ops.shape_of(b2))
    if sa2[-1] != sb2[-2]:
        raise _shape_error("matmul", a, b)
    try:
        batch = () if len(sa2) == len(sb2) == 2 else tuple(np.broadcast_shapes(sa2[:-2], sb2[:-2]))
    except ValueError:
        raise _shape_error("matmul", a, b) from None
    if sa2[:-2] != batch:
        a2 = ops.broadcast_to(a2, batch + sa2[-2:])
    if sb2[:-2] != batch:
        b2 = ops.broadcast_to(b2, batch + sb2[-2:])
    nb = len(batch)
    out = ops.dot_general(a2, b2, contract=((nb + 1,), (nb,)), batch=(tuple(range(nb)), tuple(range(nb))))
    shape = batch + ((sa2[-2],) if len(sa) > 1 else ()) + ((sb2[-1],) if len(sb) > 1 else ())
    return ops.reshape(out, shape)


@numpy_function(np.dot)
def dot(a, b, out=None):
    if out is not None:
        raise TypeError("dot(..., out=...) cannot write into a traced value")
    a, b = ops.promote(a, b)
    sa, sb = tuple(ops.shape_of(a)), tuple(ops.shape_of(b))
    if not sa or not sb:
        return ops.mul(a, b)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[cb]:
        raise _shape_error("dot", a, b)
    return ops.dot_general(a, b, contract=((len(sa) - 1,), (cb,)))


@numpy_function(np.inner)
def inner(a, b):
    a, b = ops.promote(a, b)
    sa, sb = tuple(ops.shape_of(a)), tuple(ops.shape_of(b))
    if not sa or not sb:
        return ops.mul(a, b)
    if sa[-1] != sb[-1]:
        raise _shape_error("inner", a, b)
    return ops.dot_general(a, b, contract=((len(sa) - 1,), (len(sb) - 1,)))


@numpy_function(np.outer)
def outer(a, b, out=None):
    a, b = ops.promote(a, b)
    a = ops.reshape(a, (int(np.prod(ops.shape_of(a), dtype=np.int64)), 1))
    b = ops.reshape(b, (1, int(np.prod(ops.shape_of(b), dtype=np.int64))))
    return ops.mul(a, b)


@numpy_function(np.vdot)
def vdot(a, b):
    a, b = ops.promote(a, b)
    n_a, n_b = int(np.prod(ops.shape_of(a), dtype=np.int64)), int(np.prod(ops.shape_of(b), dtype=np.int64))
    if n_a != n_b:
        raise _shape_error("vdot", a, b)
    return ops.dot_general(ops.reshape(a, (n_a,)), ops.reshape(b, (n_b,)), contract=((0,), (0,)))


def _component(v, i):
    return ops.slice_along(v, ops.ndim_of(v) - 1, i, i + 1)


@numpy_function(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = ops.promote(ops.as_operand(a), ops.as_operand(b))
    a = ops.transpose(a, _to_end(ops.ndim_of(a), ops.normalize_axis(axisa, ops.ndim_of(a), "axisa")))
    b = ops.transpose(b, _to_end(ops.ndim_of(b), ops.normalize_axis(axisb, ops.ndim_of(b), "axisb")))
    na, nb = ops.shape_of(a)[-1], ops.shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n(dimension must be 2 or 3)")
    lead = tuple(np.broadcast_shapes(tuple(ops.shape_of(a))[:-1], tuple(ops.shape_of(b))[:-1]))
    a = ops.broadcast_to(a, lead + (na,))
    b = ops.broadcast_to(b, lead + (nb,))
    a0, a1 = _component(a, 0), _component(a, 1)
    b0, b1 = _component(b, 0), _component(b, 1)
    z = ops.sub(ops.mul(a0, b1), ops.mul(a1, b0))
    if na == 2 and nb == 2:
        return ops.reshape(z, lead)
    zero = ops.zeros_like(a0)
    a2 = _component(a, 2) if na == 3 else zero
    b2 = _component(b, 2) if nb == 3 else zero
    x = ops.sub(ops.mul(a1, b2), ops.mul(a2, b1))
    y = ops.sub(ops.mul(a2, b0), ops.mul(a0, b2))
    c = ops.concatenate([x, y, z], len(lead))
    nd = len(lead) + 1
    axisc = ops.normalize_axis(axisc, nd, "axisc")
    return ops.transpose(c, _from_end(nd, axisc))


def _to_end(nd, axis):
    return tuple(i for i in range(nd) if i != axis) + (axis,)


def _from_end(nd, axis):
    order = list(range(nd - 1))
    order.insert(axis, nd - 1)
    return tuple(order)
