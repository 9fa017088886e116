"""Reductions: accumulator identities and combine texts (the loop emitter places accumulators), and
argmax/argmin as reduction loops."""
from __future__ import annotations

import numpy as np

from tracegrad import primitives as P

from ..rules import LOWERINGS, Block, Reduction, lit

def _sum_acc(dt):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return np.dtype(np.float64) if dt.itemsize < 8 else dt   # NumPy sums pairwise; we widen
    if dt.kind == "i":
        return np.dtype(np.int64)
    if dt.kind == "u":
        return np.dtype(np.uint64)
    return dt


def _sum_combine(acc, v, dt):
    return f"{acc} | {v}" if dt.kind == "b" else f"{acc} + {v}"


def _prod_combine(acc, v, dt):
    return f"{acc} & {v}" if dt.kind == "b" else f"{acc} * {v}"


def _extreme(dt, sign):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return lit(sign * np.inf, dt)
    if dt.kind == "b":
        return "True" if sign > 0 else "False"
    info = np.iinfo(dt)
    return lit(info.max if sign > 0 else info.min, dt)


def _max_combine(acc, v, dt):
    return f"{acc} | {v}" if dt.kind == "b" else f"np.maximum({acc}, {v})"


def _min_combine(acc, v, dt):
    return f"{acc} & {v}" if dt.kind == "b" else f"np.minimum({acc}, {v})"


def _truth(v, dt):
    return v if dt.kind == "b" else f"({v} != 0)"


LOWERINGS[P.reduce_sum_p] = Reduction(lambda dt: lit(0, _sum_acc(dt)), _sum_combine, _sum_acc,
                                      parallel_ok=True)
LOWERINGS[P.reduce_prod_p] = Reduction(lambda dt: lit(1, _sum_acc(dt)), _prod_combine, _sum_acc,
                                       parallel_ok=True)
LOWERINGS[P.reduce_max_p] = Reduction(lambda dt: _extreme(dt, -1), _max_combine)
LOWERINGS[P.reduce_min_p] = Reduction(lambda dt: _extreme(dt, +1), _min_combine)
LOWERINGS[P.reduce_and_p] = Reduction(lambda dt: "True", lambda acc, v, dt: f"{acc} & {_truth(v, dt)}",
                                      lambda dt: np.dtype(np.bool_))
LOWERINGS[P.reduce_or_p] = Reduction(lambda dt: "False", lambda acc, v, dt: f"{acc} | {_truth(v, dt)}",
                                     lambda dt: np.dtype(np.bool_))


def _arg_extreme(better):
    def rule(ctx, eqn):
        (x,) = eqn.inputs
        (out,) = eqn.outs
        axis = eqn.params["axis"]
        o = ctx.new_buffer(out)
        dt = x.aval.dtype
        kept = tuple(a for a in range(x.aval.ndim) if a != axis)
        acc = ctx.access(x, perm=kept + (axis,))
        init = _extreme(dt, -1 if better == ">" else +1)
        ctx.reduce_loop(acc, o, better, init)
    return Block(rule)


LOWERINGS[P.argmax_p] = _arg_extreme(">")
LOWERINGS[P.argmin_p] = _arg_extreme("<")
