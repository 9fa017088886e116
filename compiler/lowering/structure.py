"""Structure: views (reshape, broadcast_to, transpose, slice, rev, stop_gradient) that emit no code,
and the blocks dot_general (BLAS through `kernels.gemm`), pad and concatenate."""
from __future__ import annotations

from tracegrad import primitives as P
from tracegrad.ir import Lit

from .. import layout
from ..rules import LOWERINGS, Block, View, lit

LOWERINGS[P.stop_gradient_p] = View(lambda acc, ins, out: acc)
LOWERINGS[P.reshape_p] = View(lambda acc, ins, out, *, shape: layout.reshape(acc, shape))
LOWERINGS[P.broadcast_to_p] = View(lambda acc, ins, out, *, shape: layout.broadcast(acc, shape))
LOWERINGS[P.transpose_p] = View(lambda acc, ins, out, *, perm: layout.transpose(acc, perm))
LOWERINGS[P.slice_p] = View(lambda acc, ins, out, *, start, limit, strides:
                            layout.slice_(acc, start, limit, strides, out.shape))
LOWERINGS[P.rev_p] = View(lambda acc, ins, out, *, axes: layout.rev(acc, axes))


def _dot_general(ctx, eqn):
    """Batched matrix product: operands as (B, M, K) and (B, K, N) blocks, through the cached
    `kernels.gemm` helper (BLAS; transposed blocks go in with a transpose flag, not a copy)."""
    x, y = eqn.inputs
    (out,) = eqn.outs
    (xc, yc), (xb, yb) = eqn.params["contract"], eqn.params["batch"]
    x_free = tuple(a for a in range(x.aval.ndim) if a not in xc and a not in xb)
    y_free = tuple(a for a in range(y.aval.ndim) if a not in yc and a not in yb)
    xs, ys = x.aval.shape, y.aval.shape
    B = layout.size_of([xs[a] for a in xb])
    M = layout.size_of([xs[a] for a in x_free])
    K = layout.size_of([xs[a] for a in xc])
    N = layout.size_of([ys[a] for a in y_free])
    dt = out.aval.dtype
    o = ctx.new_buffer(out)
    if B * M * N == 0:
        return
    if K == 0:
        ctx.fill(o, B * M * N, lit(0, dt))
        return
    xa = _as_matrices(ctx, ctx.access(x, perm=xb + x_free + xc), (B, M, K))
    ya = _as_matrices(ctx, ctx.access(y, perm=yb + yc + y_free), (B, K, N))
    fn = "gemm" if dt.kind == "f" else "gemm_loops"
    ctx.comment(f"{ctx.name(out)} = {_mat_text(ctx, x, xa[2])} @ {_mat_text(ctx, y, ya[2])}: "
                f"{B} x ({M}x{K} @ {K}x{N})")
    ctx.helper_call(fn, (xa[0], ya[0], o[0]), (xa[1], xa[2], ya[1], ya[2], o[1], B, M, K, N),
                    " (a offset, a transposed, b offset, b transposed, c offset, B, M, K, N)")


def _mat_text(ctx, atom, transposed) -> str:
    name = lit(atom.value, atom.aval.dtype) if isinstance(atom, Lit) else ctx.name(atom)
    return f"{name}.T" if transposed else name




def _as_matrices(ctx, acc, shape):
    """(array, offset, transposed) of `acc` as C-ordered matrices of `shape` (B, R, C)."""
    acc3 = layout.reshape(acc, shape)
    return ctx.flat(acc3 if acc3 is not None else acc, transposable=acc3 is not None)


def _pad(ctx, eqn):
    x, fill = eqn.inputs
    (out,) = eqn.outs
    config = eqn.params["config"]
    o = ctx.new_buffer(out)
    ctx.fill(o, out.aval.size, ctx.scalar(fill))
    ostr = layout.c_strides(out.aval.shape)
    offset = sum(lo * s for (lo, _, _), s in zip(config, ostr))
    strides = tuple(s * (it + 1) for (_, _, it), s in zip(config, ostr))
    ctx.copy(ctx.access(x), o, offset, strides)


def _concatenate(ctx, eqn):
    (out,) = eqn.outs
    axis = eqn.params["axis"]
    o = ctx.new_buffer(out)
    ostr = layout.c_strides(out.aval.shape)
    start = 0
    for x in eqn.inputs:
        ctx.copy(ctx.access(x), o, start * ostr[axis], ostr)
        start += x.aval.shape[axis]




LOWERINGS[P.dot_general_p] = Block(_dot_general)
LOWERINGS[P.pad_p] = Block(_pad)
LOWERINGS[P.concatenate_p] = Block(_concatenate)
