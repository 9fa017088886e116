"""Batching (vmap) as a pass over recorded equations, and the helpers batch rules are written with.

Like the autodiff passes, batching runs in the current builder: a function is traced ONCE at
per-example (unbatched) shapes in a child builder, then `batch_eqns` walks its equations binding each
primitive's batch rule (`primitives.batch_rules`, filled by `tracegrad/rules/batching/`) on the
batched operands. Rules are written with traceable ops, so the batched equations are ordinary IR:
eager mode computes them as they are recorded, `grad`/`jvp` differentiate them, a jit compiles them,
and an enclosing vmap batches them again. Every batched equation keeps the user's source line.

A batched value carries a batch dimension: an axis of its array (any position, as the user's
`in_axes` put it) or None (the same value for every member). Rules receive one such dim per operand
and return the dims of their outputs; an equation none of whose operands is batched is bound as it
is. Sub-IRs (loop and branch bodies, custom-derivative calls) are batched into new closed sub-IRs
with `batch_body`, where batched inputs and outputs always have their batch dimension first.
"""
from __future__ import annotations

from . import ops
from .bodies import trace_closed
from .errors import MissingRuleError
from .ir import Aval, Lit, Var
from .primitives import batch_rules
from .childtrace import read, trace_child
from .trace import PY_SCALARS, Tracer, aval_of, bind_at, source_scope


def defbatch(prim, fn):
    batch_rules[prim] = fn


# ---------------------------------------------------------------- helpers for rules

def batch_size(args, dims) -> int:
    """The batch size: the length of any batched operand's batch axis."""
    for a, d in zip(args, dims):
        if d is not None:
            return int(ops.shape_of(a)[d])
    raise ValueError("batch_size: no operand is batched")


def unbatched_aval(x, d) -> Aval:
    a = aval_of(x)
    if d is None:
        return a
    return Aval(a.shape[:d] + a.shape[d + 1:], a.dtype)


def move_dim(x, src: int, dst: int):
    """`x` with its axis `src` moved to position `dst` (a transpose; nothing when src == dst)."""
    if src == dst:
        return x
    perm = list(range(ops.ndim_of(x)))
    perm.pop(src)
    perm.insert(dst, src)
    return ops.transpose(x, perm)


def to_front(x, d, size=None):
    """`x` batched along axis 0: its batch axis moved there, or broadcast over `size` members when
    it is not batched (d None)."""
    if d is None:
        return ops.broadcast_to(x, (size,) + tuple(ops.shape_of(x)))
    return move_dim(x, d, 0)


def to_dim(x, d, dst, size):
    """`x` batched along axis `dst` (broadcast first if it is not batched)."""
    return move_dim(to_front(x, d, size), 0, dst)


def drop_batch(x, d):
    """A cotangent of an unbatched value, from a batched one: the sum over the members."""
    return x if d is None else ops.reduce_sum(x, (d,))


def take_member(x, d, b: int):
    """Member `b` of a batched value (its batch axis removed)."""
    if d is None:
        return x
    shape = tuple(ops.shape_of(x))
    start, limit = [0] * len(shape), list(shape)
    start[d], limit[d] = b, b + 1
    return ops.reshape(ops.slice_(x, start, limit), shape[:d] + shape[d + 1:])


def map_axis(a: int, d) -> int:
    """Where an unbatched value's axis `a` sits in the batched value with batch axis `d`."""
    return a if d is None or a < d else a + 1


# ---------------------------------------------------------------- the pass

def _check_rule(e, outs, dims, size):
    for v, o, d in zip(e.outs, outs, dims):
        want = v.aval.shape if d is None else v.aval.shape[:d] + (size,) + v.aval.shape[d:]
        got = tuple(ops.shape_of(o))
        if got != want or ops.dtype_of(o) != v.aval.dtype:
            raise AssertionError(
                f"batch rule of '{e.prim.name}' (used at {e.src}) returned {aval_of(o)} with batch "
                f"dim {d}, expected {Aval(want, v.aval.dtype)} (a bug in tracegrad/rules/batching/)")


def batch_eqns(eqns, env: dict, dims: dict) -> None:
    """Replay `eqns` batched in the current builder: `env` maps Vars to operands, `dims` maps the
    batched ones to their batch axis (absent: not batched); both are extended with the outputs."""
    for e in eqns:
        ins = [read(env, a) for a in e.inputs]
        ds = [None if isinstance(a, Lit) else dims.get(a) for a in e.inputs]
        multiple = e.prim.multiple_results
        if all(d is None for d in ds):
            out = bind_at(e.prim, ins, e.params, e.src, e.fwd_src)
            outs = out if multiple else (out,)
            for v, o in zip(e.outs, outs):
                env[v] = o
            continue
        rule = batch_rules.get(e.prim)
        if rule is None:
            raise MissingRuleError(f"primitive '{e.prim.name}' (used at {e.src}) has no batch rule "
                                   f"for vmap; add one in tracegrad/rules/batching/")
        with source_scope(e.src, e.fwd_src):
            out, od = rule(ins, ds, **e.params)
        outs, od = (tuple(out), tuple(od)) if multiple else ((out,), (od,))
        _check_rule(e, outs, od, batch_size(ins, ds))
        for v, o, d in zip(e.outs, outs, od):
            env[v] = o
            if d is not None:
                dims[v] = d


def is_weak(x) -> bool:
    return type(x) in PY_SCALARS or (isinstance(x, Tracer) and x.weak)


def batch_traced(fn, args, in_dims, weak=None):
    """Trace `fn(*per-example stand-ins) -> (leaves, aux)` at the unbatched avals of `args`, then
    replay it batched on `args` (batched along `in_dims`) in the current builder.

    Returns (output leaves, their batch dims, aux). This is vmap without its argument handling;
    values `fn` closes over are unbatched.
    """
    avals = [unbatched_aval(x, d) for x, d in zip(args, in_dims)]
    weak = [is_weak(x) for x in args] if weak is None else weak
    child = trace_child(fn, avals, weak=weak)
    ir = child.ir
    env = dict(zip(ir.inputs, list(args) + list(child.captured)))
    env.update(ir.consts)
    dims = {v: d for v, d in zip(ir.inputs, in_dims) if d is not None}
    batch_eqns(ir.eqns, env, dims)
    outs = [read(env, o) for o in ir.outputs]
    return outs, [dims.get(o) if isinstance(o, Var) else None for o in ir.outputs], child.aux


class Unbatchable(Exception):
    """A body output that must stay unbatched came out batched (`batch_body` with force=False)."""


def batch_body(ir, in_batched, size: int, force=None, n_lead=None):
    """A closed sub-IR batched: inputs with `in_batched[k]` get a leading batch axis of `size`.

    Batched outputs come out batched along axis 0; `force[k]` True broadcasts output k to a batch
    axis if it is not batched, False requires it unbatched (raises Unbatchable), None leaves it as
    it comes. Returns (ir, extras, out_batched): extras are the operands of the inputs added after
    the first `n_lead` (default: all) declared ones, for values the batched body closes over.
    """
    avals = [Aval((size,) + a.shape, a.dtype) if b else a for a, b in zip(ir.in_avals, in_batched)]
    force = [None] * len(ir.outputs) if force is None else list(force)

    def fn(*ins):
        env = dict(zip(ir.inputs, ins))
        env.update(ir.consts)
        dims = {v: 0 for v, b in zip(ir.inputs, in_batched) if b}
        batch_eqns(ir.eqns, env, dims)
        outs, flags = [], []
        for o, f in zip(ir.outputs, force):
            x = read(env, o)
            d = dims.get(o) if isinstance(o, Var) else None
            if d is not None and f is False:
                raise Unbatchable
            if d is not None or f:
                x, d = to_front(x, d, size), 0
            outs.append(x)
            flags.append(d is not None)
        return outs, flags

    return trace_closed(fn, avals, [False] * len(avals), n_lead)


def batched_outputs(ir, in_batched, size, n_lead=None) -> list:
    """Which outputs of `ir` come out batched when the inputs `in_batched` are (traces it once)."""
    return batch_body(ir, in_batched, size, n_lead=n_lead)[2]
