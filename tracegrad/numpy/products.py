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
        batch = tuple(np.broadcast_shapes(sa2[:-2], sb2[:-2]))
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
