"""Batch rules of the control-flow primitives `cond`, `scan`, `while` and `checkpoint`.

Bodies are batched into new closed bodies (`batching.batch_body`: batched inputs and outputs have
their batch axis first). A loop's carry is batched if its initial value is or if the body makes it
so (a fixpoint over the body); scanned `xs` and stacked `ys` keep the loop axis first and the batch
axis second.

When the members of a batch disagree about control flow, every member runs the union and keeps its
own result:
  * `cond` with a batched predicate runs each branch (unless no member takes it) and selects each
    member's results;
  * `while` with a batched predicate runs until every member is done; a member whose predicate is
    false keeps its carry (the body's result is discarded by a select), and under reverse mode each
    member counts its own trips (the recorded loop's trip count becomes a batched count);
  * `scan` with a batched trip count (a fori_loop with batched bounds, or the backward loop of such
    a while) runs the longest member's trips; member b skips steps i >= n[b], in either direction.
A member that does not take a branch or step still computes it, on the values of a member that does
("donated"): its result is discarded either way, but it is then computed on values the program
really meets, so it raises no error of its own (an index past the end, a singular matrix).
"""
from __future__ import annotations

import numpy as np

from ... import ops
from ... import primitives as P
from ...batching import (batch_body, batch_eqns, batch_size, batched_outputs, defbatch, move_dim,
                         to_front)
from ...bodies import INDEX, merge_extras, trace_closed
from ...ir import Aval, Var
from ...ops_indexing import gather
from ...primitives import checkpoint_p, cond_p, scan_p, while_p
from ...childtrace import eval_ir, read
from ...trace import aval_of, bind
from ..loop_vjp import bind_loop


def _front(args, dims):
    """Batched operands with their batch axis first, and which ones are batched."""
    return ([x if d is None else move_dim(x, d, 0) for x, d in zip(args, dims)],
            [d is not None for d in dims])


def _per_member(mask, like, size):
    """A (size,) predicate shaped to broadcast against `like` (batch axis first)."""
    return ops.reshape(mask, (size,) + (1,) * (ops.ndim_of(like) - 1))


def _keep_where(mask, new, old, size):
    return [ops.select(_per_member(mask, n, size), n, o) for n, o in zip(new, old)]


def _donate(mask, values, size):
    """`values` (batched along 0) with the members where `mask` is false given the values of the
    first member where it is true (what they compute from them is discarded)."""
    if not size:
        return list(values)
    donor = ops.reshape(bind(P.argmax_p, mask, axis=0), (1,))
    return [ops.select(_per_member(mask, v, size), v, gather(v, donor, (0,))) for v in values]


# ---------------------------------------------------------------- cond

def _cond(args, dims, *, branches):
    size = batch_size(args, dims)
    (pred, *operands), (dp, *dops) = args, dims
    operands, inb = _front(operands, dops)
    if dp is None:
        outb = [a or b for a, b in zip(*[batched_outputs(br, inb, size) for br in branches])]
        traced = [batch_body(br, inb, size, force=outb) for br in branches]
        (f2, t2), extras = merge_extras([(ir, ex) for ir, ex, _ in traced])
        outs = bind(cond_p, pred, *operands, *extras, branches=(f2, t2))
        return outs, [0 if b else None for b in outb]
    # a batched predicate: each branch runs for the members taking it, then each keeps its own
    pred = move_dim(pred, dp, 0)
    results = [_branch(bind(P.not_p, pred), branches[0], operands, inb, size),
               _branch(pred, branches[1], operands, inb, size)]
    outs = _keep_where(pred, results[1], results[0], size)
    return outs, [0] * len(outs)


def _branch(takes, branch, operands, inb, size):
    """The batched results of `branch` for the members in `takes` (the others compute on a donor's
    operands); one `cond` skips it when no member takes it."""
    picked = [k for k, b in enumerate(inb) if b]

    def run(mask, *xs):
        xs = list(xs)
        for k, v in zip(picked, _donate(mask, [xs[k] for k in picked], size)):
            xs[k] = v
        env = dict(zip(branch.inputs, xs))
        bdims = {v: 0 for v, b in zip(branch.inputs, inb) if b}
        batch_eqns(branch.eqns, env, bdims)
        return [to_front(read(env, o), bdims.get(o) if isinstance(o, Var) else None, size)
                for o in branch.outputs], None

    avals = [Aval((size,), np.bool_)] + [aval_of(x) for x in operands]
    run_ir, run_extras, _ = trace_closed(run, avals)
    zeros = [(a.shape, a.dtype) for a in run_ir.out_avals]
    skip_ir, skip_extras, _ = trace_closed(lambda *a: ([ops.full(s, 0, d) for s, d in zeros], None), avals)
    (skip_ir, run_ir), extras = merge_extras([(skip_ir, skip_extras), (run_ir, run_extras)])
    anyone = ops.reduce(P.reduce_or_p, takes, (0,)) if size else np.bool_(False)
    return bind(cond_p, anyone, takes, *operands, *extras, branches=(skip_ir, run_ir))


# ---------------------------------------------------------------- scan

def _carry_fixpoint(body, lead_b, carry_b, tail_b, size, n_lead):
    """Which carries are batched: those batched initially, and those the body makes batched."""
    carry_b = list(carry_b)
    while True:
        outb = batched_outputs(body, list(lead_b) + carry_b + list(tail_b), size, n_lead)
        grow = [k for k, b in enumerate(carry_b) if outb[k] and not b]
        if not grow:
            return carry_b
        for k in grow:
            carry_b[k] = True


def _scan(args, dims, *, body, length, reverse, n_consts, n_carry, saved):
    size = batch_size(args, dims)
    lead = 1 if length is None else 0
    n_op, dn = (args[0], dims[0]) if lead else (None, None)
    consts, cb = _front(args[lead:lead + n_consts], dims[lead:lead + n_consts])
    init, dk = args[lead + n_consts:lead + n_consts + n_carry], dims[lead + n_consts:lead + n_consts + n_carry]
    xs_in, dxs = args[lead + n_consts + n_carry:], dims[lead + n_consts + n_carry:]
    xs = [x if d is None else move_dim(x, d, 1) for x, d in zip(xs_in, dxs)]
    xb = [d is not None for d in dxs]
    masked = dn is not None
    kb = _carry_fixpoint(body, [False] + cb, [d is not None or masked for d in dk], xb, size,
                         1 + n_consts)
    init = [to_front(x, d, size) if b else x for x, d, b in zip(init, dk, kb)]
    n_ys = len(body.outputs) - n_carry
    new, extras, flags = batch_body(body, [False] + cb + kb + xb, size, force=kb + [None] * n_ys,
                                    n_lead=1 + n_consts)
    consts = consts + extras
    if masked:
        new, consts, n_op = _masked_scan_body(new, consts, n_carry, move_dim(n_op, dn, 0), size)
    params = dict(body=new, length=length, reverse=reverse, n_consts=len(consts), n_carry=n_carry,
                  saved=saved)
    outs = bind_loop(scan_p, ([n_op] if lead else []) + consts + init + xs, params)
    return outs, [0 if b else None for b in kb] + [1 if f else None for f in flags[n_carry:]]


def _masked_scan_body(body, consts, n_carry, counts, size):
    """A scan with a trip count per member: run the longest, member b skipping steps i >= n[b].

    Returns (body, consts, trip count): the per-member counts become the body's first const."""
    n_c = len(consts)

    def fn(i, n, *rest):
        cs, carry, xs = rest[:n_c], rest[n_c:n_c + n_carry], rest[n_c + n_carry:]
        active = ops.compare(P.lt_p, i, n)
        outs = eval_ir(body, i, *cs, *_donate(active, carry, size), *xs)
        return _keep_where(active, outs[:n_carry], carry, size) + list(outs[n_carry:]), None

    avals = [Aval((), INDEX), Aval((size,), INDEX)] + list(body.in_avals[1:])
    ir, extras, _ = trace_closed(fn, avals, None, 2 + n_c)
    trip = ops.reduce(P.reduce_max_p, counts, (0,)) if size else np.int64(0)
    return ir, [counts] + list(consts) + list(extras), trip


# ---------------------------------------------------------------- while

def _while(args, dims, *, cond, body, n_cond_consts, n_body_consts, record, saved):
    size = batch_size(args, dims)
    ncc, nbc = n_cond_consts, n_body_consts
    cconsts, ccb = _front(args[:ncc], dims[:ncc])
    bconsts, bcb = _front(args[ncc:ncc + nbc], dims[ncc:ncc + nbc])
    init, dk = args[ncc + nbc:], dims[ncc + nbc:]
    n_carry = len(init)
    n_ys = len(body.outputs) - n_carry
    kb = _carry_fixpoint(body, bcb, [d is not None for d in dk], [], size, nbc)
    pred_batched = batched_outputs(cond, ccb + kb, size, ncc)[0]
    if pred_batched:
        kb = [True] * n_carry
    init = [to_front(x, d, size) if b else x for x, d, b in zip(init, dk, kb)]
    bcond, cextras, _ = batch_body(cond, ccb + kb, size, force=[pred_batched], n_lead=ncc)
    bbody, bextras, flags = batch_body(body, bcb + kb, size, force=kb + [None] * n_ys, n_lead=nbc)
    cconsts, bconsts = cconsts + cextras, bconsts + bextras
    y_dims = [1 if f else None for f in flags[n_carry:]]
    if not pred_batched:
        params = dict(cond=bcond, body=bbody, n_cond_consts=len(cconsts), n_body_consts=len(bconsts),
                      record=record, saved=saved)
        outs = bind_loop(while_p, cconsts + bconsts + init, params)
        n_dims = [None] if record else []
        return outs, [0 if b else None for b in kb] + n_dims + y_dims
    cond2, body2 = _masked_while(bcond, bbody, len(cconsts), len(bconsts), n_carry, record, size)
    counts = [np.zeros(size, INDEX)] if record else []
    params = dict(cond=cond2, body=body2, n_cond_consts=len(cconsts),
                  n_body_consts=len(cconsts) + len(bconsts), record=record, saved=saved)
    outs = bind_loop(while_p, cconsts + cconsts + bconsts + init + counts, params)
    if not record:
        return outs, [0] * n_carry
    # outputs: carry, per-member counts, the loop's own count (dropped), ys
    return (list(outs[:n_carry + 1]) + list(outs[n_carry + 2:]),
            [0] * (n_carry + 1) + y_dims)


def _masked_while(bcond, bbody, ncc, nbc, n_carry, record, size):
    """cond: any member still running; body: a step for the running members only (and, when the
    loop is recorded for reverse mode, a trip count per member as an extra carry)."""
    count_avals = [Aval((size,), INDEX)] if record else []

    def cfn(*a):
        (running,) = eval_ir(bcond, *a[:ncc + n_carry])
        return [ops.reduce(P.reduce_or_p, running, (0,))], None

    def bfn(*a):
        cc, bc, carry = a[:ncc], a[ncc:ncc + nbc], list(a[ncc + nbc:ncc + nbc + n_carry])
        (running,) = eval_ir(bcond, *cc, *carry)
        outs = eval_ir(bbody, *bc, *_donate(running, carry, size))
        new = _keep_where(running, outs[:n_carry], carry, size)
        if record:
            new.append(ops.add(a[-1], ops.convert(running, INDEX)))
        return new + list(outs[n_carry:]), None

    cond2, ex1, _ = trace_closed(cfn, list(bcond.in_avals) + count_avals, None, ncc)
    body2, ex2, _ = trace_closed(bfn, list(bcond.in_avals[:ncc]) + list(bbody.in_avals) + count_avals,
                                 None, ncc + nbc)
    assert not ex1 and not ex2, "masked while bodies close over nothing"
    return cond2, body2


# ---------------------------------------------------------------- checkpoint

def _checkpoint(args, dims, *, body):
    size = batch_size(args, dims)
    operands, inb = _front(args, dims)
    new, extras, flags = batch_body(body, inb, size)
    outs = bind(checkpoint_p, *operands, *extras, body=new)
    return outs, [0 if f else None for f in flags]


defbatch(cond_p, _cond)
defbatch(scan_p, _scan)
defbatch(while_p, _while)
defbatch(checkpoint_p, _checkpoint)
