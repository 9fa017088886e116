"""linear_recurrence (cumsum, cumprod) as a sequential loop along its axis, and sort through the
cached `kernels.sort_rows` helper."""
from __future__ import annotations

import numpy as np

from tracegrad import primitives as P
from tracegrad.ir import Lit

from .. import layout, loops
from ..rules import LOWERINGS, Block, lit, wrap_int

def _linear_recurrence(ctx, eqn):
    a, b = eqn.inputs
    (out,) = eqn.outs
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    dt = out.aval.dtype
    ob, oo = ctx.new_buffer(out)
    shape = out.aval.shape
    n = shape[axis]
    if out.aval.size == 0:
        return
    if n == 1:
        ctx.copy(ctx.access(b), (ob, oo), 0, layout.c_strides(shape))
        return
    last = len(shape) - 1
    perm = tuple(i for i in range(len(shape)) if i != axis) + (axis,)

    def along(acc):      # the recurrence axis last, walked in visiting order
        acc = layout.transpose(acc, perm)
        return layout.rev(acc, (last,)) if reverse else acc

    bacc, oacc = along(ctx.access(b)), along(layout.identity(out))
    pats = [bacc.strides, oacc.strides]
    a_acc = ctx.access(a)
    if a_acc.scalar_root:
        a_text = ctx.scalar_of(a_acc)
        unit = isinstance(a_acc.root, Lit) and a_acc.root.value == 1
    else:
        a_acc = along(a_acc)
        pats.append(a_acc.strides)
    mask = (False,) * last + (True,)
    cshape, cpats, _ = layout.collapse(bacc.shape, pats, [mask])
    nest = loops.Nest(ctx, cshape)
    d = nest.d
    y, bv, av = ctx.fresh("y"), ctx.fresh("bv"), ctx.fresh("av")
    nest.at(d - 1, f"{y} = {lit(0, dt)}")
    nest.at(d, f"{bv} = {ctx.read(bacc, nest.index(bacc.offset, cpats[0]))}")
    if not a_acc.scalar_root:
        # a at the first visited position is never used (so an inf/nan there cannot leak)
        nest.at(d, f"{av} = {ctx.read(a_acc, nest.index(a_acc.offset, cpats[2]))}")
        step = f"{av} * {y} + {bv}"
    else:
        step = f"{y} + {bv}" if unit else f"{a_text} * {y} + {bv}"
    nest.at(d, f"{y} = {bv} if {nest.ivars[-1]} == 0 else {wrap_int(dt, step)}")
    nest.at(d, f"{ob}[{nest.index(layout.add_offset(oo, oacc.offset), cpats[1])}] = {y}")
    nest.render()


# ---------------------------------------------------------------- sort

def _sort(ctx, eqn):
    (x,) = eqn.inputs
    vals, perm = eqn.outs
    axis = eqn.params["axis"]
    shape = x.aval.shape
    n = shape[axis]
    rows = layout.size_of(shape) // n if n else 0
    vb, vo = ctx.new_buffer(vals)
    pb, po = ctx.new_buffer(perm)
    if x.aval.size == 0:
        return
    order = tuple(i for i in range(len(shape)) if i != axis) + (axis,)
    xb, xo, _ = ctx.flat(layout.transpose(ctx.access(x), order))
    what = " (x offset, rows, n, values offset, perm offset)"
    if axis == len(shape) - 1:
        ctx.helper_call("sort_rows", (xb, vb, pb), (xo, rows, n, vo, po), what)
        return
    # sorted rows in (others..., axis) order, then back to the outputs' layout
    tshape = tuple(shape[i] for i in order)
    tv, tp = ctx.temp_value(tshape, x.aval.dtype), ctx.temp_value(tshape, np.int64)
    (tvb, tvo), (tpb, tpo) = ctx.loc(tv), ctx.loc(tp)
    ctx.helper_call("sort_rows", (xb, tvb, tpb), (xo, rows, n, tvo, tpo), what)
    inv = tuple(order.index(i) for i in range(len(order)))
    for t, dst in ((tv, (vb, vo)), (tp, (pb, po))):
        ctx.copy(layout.transpose(layout.identity(t), inv), dst, 0, layout.c_strides(shape))


LOWERINGS[P.linear_recurrence_p] = Block(_linear_recurrence)
LOWERINGS[P.sort_p] = Block(_sort)
