"""Python from compiled code, through Numba's object mode: `debug_print`, `callback` (tg.pure_callback)
and the `random` draws that tiers.Entry could not hoist out of the kernel (draws after a callback)."""
from __future__ import annotations

from tracegrad import primitives as P

from ..rules import LOWERINGS, Block, np_type

def _debug_print(ctx, eqn):
    args = []
    for a in eqn.inputs:
        acc = ctx.access(a)
        if a.aval.shape == ():
            args.append(ctx.scalar_of(acc))
        else:
            base, off, _ = ctx.flat(acc)
            args.append(ctx.view_text(base, off, a.aval.shape))
    dtypes = tuple(a.aval.dtype.name for a in eqn.inputs)
    ctx.line("with objmode():")
    ctx.line(f"    _debug_print({', '.join([repr(eqn.params['fmt']), repr(dtypes)] + args)})")
    ctx.uses_objmode = True
    ctx.helpers.add("_debug_print")


def _callback(ctx, eqn):
    ins = []
    for v in eqn.inputs:
        acc = ctx.access(v)
        if v.aval.shape == ():
            ins.append(f"np.asarray({ctx.scalar_of(acc)}, {np_type(v.aval.dtype)})")
        else:
            base, off, _ = ctx.flat(acc)
            ins.append(ctx.view_text(base, off, v.aval.shape))
    outs = []
    for v in eqn.outs:
        base, off = ctx.new_buffer(v)
        outs.append(ctx.view_text(base, off, v.aval.shape if v.aval.shape else (1,)))
    k = ctx.callback_slot(eqn.params["callback"])
    ctx.line("with objmode():")
    ctx.line(f"    _callback(callbacks_, {k}, ({''.join(s + ', ' for s in ins)}), "
             f"({''.join(s + ', ' for s in outs)}))")
    ctx.uses_objmode = True
    ctx.helpers.add("_callback")


def _random(ctx, eqn):
    # the equation's `draw` param is called like a callback with no inputs (tracegrad/draws.py)
    outs = []
    for v in eqn.outs:
        base, off = ctx.new_buffer(v)
        outs.append(ctx.view_text(base, off, v.aval.shape if v.aval.shape else (1,)))
    k = ctx.callback_slot(eqn.params["draw"])
    ctx.line("with objmode():")
    ctx.line(f"    _callback(callbacks_, {k}, (), ({''.join(s + ', ' for s in outs)}))")
    ctx.uses_objmode = True
    ctx.helpers.add("_callback")


LOWERINGS[P.debug_print_p] = Block(_debug_print)
LOWERINGS[P.callback_p] = Block(_callback)
LOWERINGS[P.random_p] = Block(_random)
