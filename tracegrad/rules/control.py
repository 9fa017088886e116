"""Rules for the control-flow primitives `cond`, `scan`, `while`, `checkpoint` (impl, shape, VJP, JVP).

Semantics and the lowering contract are in `tracegrad/control_flow.py`'s docstring.

Reverse mode of a loop (scan or while)
--------------------------------------
The body is linearized once: its forward and VJP rules are traced together into one IR, which is
split by dependence ("partial evaluation"):
  * known equations (no dependence on cotangents) go into the FORWARD body; the known values that
    the backward needs and that change per iteration become extra stacked `ys` of the forward loop
    (the saved residuals). Known values that depend only on loop constants are computed once,
    outside the loop; the body's own loop inputs are reused where possible (an `x` of a scan is
    read again from `xs` instead of being saved);
  * the other equations form the BACKWARD body, run by a second `scan` in the opposite direction
    whose carries are the carry cotangents plus accumulators of the constants' cotangents.
The primal loop equation, already recorded when the VJP rule runs, is rewritten in place (same
inputs, same outputs, plus the residual outputs; a `while` also starts counting its iterations), so
the forward loop runs once. If it cannot be found (its outputs are not tracers of an open builder),
the residual-saving forward loop is emitted again instead. `checkpoint`'s VJP is a `checkpoint` on
(inputs, cotangents) that recomputes the forward, so in a loop body only a checkpoint's inputs are
saved. Only what can reach a differentiated input gets a cotangent: backward_pass says which
operands are active, and the active carries are a fixpoint over the body (a time counter or a
captured data array gets no cotangent work). If a residual would have a run-time length (a
while_loop, or a fori_loop with traced bounds, inside the body), the body is recomputed instead:
only its inputs are saved and the backward body re-runs its forward.

Forward mode: a loop over (primal, tangent) carries; the tangent carries are the carries whose
tangent can be non-zero (a fixpoint over the body). The JVP equation recomputes the primal values.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autodiff import backward_pass, jvp_pass
from ..control_flow import INDEX, copy_ir, merge_extras, trace_closed
from ..ir import IR, Aval, Eqn, Lit, Var, dce
from ..primitives import checkpoint_p, cond_p, scan_p, while_p
from ..trace import Tracer, bind, current_builder, eval_eqns, eval_ir, impl_of, no_trace, trace_child
from .common import defimpl, defjvp, defshape, defvjp


def _as(v, aval):
    v = np.asarray(v)
    return v if v.dtype == aval.dtype else v.astype(aval.dtype)


# ---------------------------------------------------------------- impl

def _scan_impl(*args, body, length, reverse, n_consts, n_carry, saved):
    if length is None:
        n, args = int(args[0]), args[1:]
    else:
        n = length
    consts = args[:n_consts]
    carry = list(args[n_consts:n_consts + n_carry])
    xs = args[n_consts + n_carry:]
    for x in xs:
        if np.shape(x)[0] < n:
            raise ValueError(f"scan: an xs operand has {np.shape(x)[0]} rows, the loop runs {n} times")
    y_avals = body.out_avals[n_carry:]
    ys = [np.empty((n,) + a.shape, a.dtype) for a in y_avals]
    with no_trace():
        for i in (range(n - 1, -1, -1) if reverse else range(n)):
            outs = eval_ir(body, np.int64(i), *consts, *carry, *[x[i] for x in xs])
            carry = outs[:n_carry]
            for y, o in zip(ys, outs[n_carry:]):
                y[i] = o
    c_avals = body.in_avals[1 + n_consts:1 + n_consts + n_carry]
    return tuple(_as(c, a) for c, a in zip(carry, c_avals)) + tuple(ys)


def _while_impl(*args, cond, body, n_cond_consts, n_body_consts, record, saved):
    cc = args[:n_cond_consts]
    bc = args[n_cond_consts:n_cond_consts + n_body_consts]
    carry = list(args[n_cond_consts + n_body_consts:])
    nk = len(carry)
    y_avals = body.out_avals[nk:]
    bufs = [[] for _ in y_avals]          # the growable buffers (a list; compiled: doubling arrays)
    count = 0
    with no_trace():
        while bool(eval_ir(cond, *cc, *carry)[0]):
            outs = eval_ir(body, *bc, *carry)
            carry = outs[:nk]
            for b, o in zip(bufs, outs[nk:]):
                b.append(o)
            count += 1
    c_avals = body.in_avals[n_body_consts:]
    res = tuple(_as(c, a) for c, a in zip(carry, c_avals))
    if not record:
        return res
    stacked = tuple(np.array(b, dtype=a.dtype).reshape((count,) + a.shape) for b, a in zip(bufs, y_avals))
    return res + (np.int64(count),) + stacked


def _cond_impl(pred, *ops_, branches):
    ir = branches[1] if bool(pred) else branches[0]
    with no_trace():
        outs = eval_ir(ir, *ops_)
    return tuple(_as(o, a) for o, a in zip(outs, ir.out_avals))


def _checkpoint_impl(*args, body):
    with no_trace():
        outs = eval_ir(body, *args)
    return tuple(_as(o, a) for o, a in zip(outs, body.out_avals))


defimpl(scan_p, _scan_impl)
defimpl(while_p, _while_impl)
defimpl(cond_p, _cond_impl)
defimpl(checkpoint_p, _checkpoint_impl)


# ---------------------------------------------------------------- shape

def _same(what, got, want):
    got, want = tuple(got), tuple(want)
    if got != want:
        raise TypeError(f"{what}: expected {list(want)}, got {list(got)}")


def _scan_shape(*avals, body, length, reverse, n_consts, n_carry, saved):
    if length is None:
        if avals[0].shape != () or avals[0].dtype != INDEX:
            raise TypeError(f"dynamic-length scan needs an int64 trip count first, got {avals[0]}")
        avals, lead = avals[1:], -1
    else:
        lead = length
    consts, carry = avals[:n_consts], avals[n_consts:n_consts + n_carry]
    xs = avals[n_consts + n_carry:]
    for x in xs:
        if x.ndim == 0 or (length is not None and x.shape[0] != length):
            raise ValueError(f"scan of length {length} over an operand of shape {x.shape}")
    _same("scan body inputs (i, consts, carry, x slices)", body.in_avals,
          (Aval((), INDEX),) + consts + carry + tuple(Aval(x.shape[1:], x.dtype) for x in xs))
    _same("scan body carry outputs", body.out_avals[:n_carry], carry)
    if not 0 <= saved <= len(body.outputs) - n_carry:
        raise ValueError(f"scan: saved={saved} exceeds the number of ys")
    return tuple(carry) + tuple(Aval((lead,) + y.shape, y.dtype) for y in body.out_avals[n_carry:])


def _while_shape(*avals, cond, body, n_cond_consts, n_body_consts, record, saved):
    cc = avals[:n_cond_consts]
    bc = avals[n_cond_consts:n_cond_consts + n_body_consts]
    carry = avals[n_cond_consts + n_body_consts:]
    _same("while cond inputs (consts, carry)", cond.in_avals, cc + carry)
    _same("while cond output", cond.out_avals, (Aval((), np.bool_),))
    _same("while body inputs (consts, carry)", body.in_avals, bc + carry)
    _same("while body carry outputs", body.out_avals[:len(carry)], carry)
    ys = body.out_avals[len(carry):]
    if ys and not record:
        raise ValueError("while: a body with per-iteration outputs needs record=True")
    if not 0 <= saved <= len(ys):
        raise ValueError(f"while: saved={saved} exceeds the number of ys")
    if not record:
        return tuple(carry)
    return tuple(carry) + (Aval((), INDEX),) + tuple(Aval((-1,) + y.shape, y.dtype) for y in ys)


def _cond_shape(pred, *avals, branches):
    if pred.shape != () or pred.dtype != np.bool_:
        raise TypeError(f"cond predicate must be bool[], got {pred}")
    f, t = branches
    _same("cond false branch inputs", f.in_avals, avals)
    _same("cond true branch inputs", t.in_avals, avals)
    _same("cond branch outputs (true vs false)", t.out_avals, f.out_avals)
    return f.out_avals


def _checkpoint_shape(*avals, body):
    _same("checkpoint body inputs", body.in_avals, avals)
    return body.out_avals


defshape(scan_p, _scan_shape)
defshape(while_p, _while_shape)
defshape(cond_p, _cond_shape)
defshape(checkpoint_p, _checkpoint_shape)


# ---------------------------------------------------------------- linearizing a loop body

def _wants(x, act=None) -> bool:
    """Does this operand need a cotangent? `act` is autodiff's answer to "does it depend on what is
    differentiated" (None if unknown: then concrete arrays -- hoisted constants -- do not)."""
    return (isinstance(x, Tracer) if act is None else bool(act)) and ops.dtype_of(x).kind == "f"


def _active_outputs(body, n_idx, n_consts, n_carry, act_consts, act_carry, act_xs):
    """(active carries, active ys): the carries that can depend on an active operand in some
    iteration (a fixpoint) and the ys that then do. Only float ones are returned."""
    c0, k0 = n_idx, n_idx + n_consts
    x0 = k0 + n_carry
    act_k = set(act_carry)
    while True:
        active = ({body.inputs[c0 + k] for k in act_consts} | {body.inputs[k0 + k] for k in act_k} |
                  {body.inputs[x0 + k] for k in act_xs})
        for e in body.eqns:
            if any(isinstance(a, Var) and a in active for a in e.inputs):
                active.update(e.outs)
        live = [isinstance(o, Var) and o in active for o in body.outputs]
        grow = {k for k in range(n_carry) if live[k]} - act_k
        if not grow:
            break
        act_k |= grow
    fc = tuple(k for k in sorted(act_k) if body.in_avals[k0 + k].is_float)
    fy = tuple(j for j in range(len(body.outputs) - n_carry)
               if live[n_carry + j] and body.out_avals[n_carry + j].is_float)
    return fc, fy


def _read(env, a):
    return a.value if isinstance(a, Lit) else env[a]


class _Lin:
    """A loop body split into a forward body that saves residuals and a backward core.

    fwd: body inputs -> (body outputs..., residuals...)
    inv: (consts...) -> loop-invariant values the backward needs (evaluated once, outside the loop)
    bwd: ([i], consts[const_idx]..., inv..., res..., xs[xs_idx]..., ct_carry[fc]..., ct_y[fy]...)
         -> (ct_consts[want_consts]..., ct_carry_in[fc]..., ct_xs[want_xs]...)
    """
    __slots__ = ("fwd", "inv", "bwd", "res_avals", "const_idx", "xs_idx", "fc", "fy", "want_consts",
                 "want_xs", "n_idx", "const_avals", "carry_avals", "x_avals", "y_avals")


def _trace_open(fn, avals):
    """Trace `fn` into an IR that keeps the builder's constants as IR constants."""
    child = trace_child(fn, avals, weak=[False] * len(avals))
    assert not child.captured, "a loop body must be closed"
    return child.ir


def _linearize(body, n_idx, n_consts, n_carry, want_consts, want_xs, fc, fy) -> _Lin:
    in_avals = body.in_avals
    c0, k0 = n_idx, n_idx + n_consts
    x0 = k0 + n_carry
    out_avals = body.out_avals
    n_out = len(out_avals)
    lin = _Lin()
    lin.const_avals, lin.carry_avals = in_avals[c0:k0], in_avals[k0:x0]
    lin.x_avals, lin.y_avals = in_avals[x0:], out_avals[n_carry:]
    wanted_pos = [c0 + k for k in want_consts] + [k0 + k for k in fc] + [x0 + k for k in want_xs]

    def joint(*ins):
        prim, cts = ins[:len(in_avals)], ins[len(in_avals):]
        env = dict(zip(body.inputs, prim))
        eval_eqns(body.eqns, env)
        outs = [_read(env, a) for a in body.outputs]
        out_cts: dict = {}
        for pos, ct in zip(list(fc) + [n_carry + j for j in fy], cts):
            a = body.outputs[pos]
            if isinstance(a, Var):
                out_cts[a] = ct if a not in out_cts else ops.add(out_cts[a], ct)
        got = backward_pass(body.eqns, env, out_cts, [body.inputs[p] for p in wanted_pos])
        got = [ops.zeros_like(prim[p]) if c is None else c for p, c in zip(wanted_pos, got)]
        return outs + got, None

    ct_avals = [lin.carry_avals[k] for k in fc] + [lin.y_avals[j] for j in fy]
    J = _trace_open(joint, list(in_avals) + ct_avals)
    prim_vars = list(J.inputs[:len(in_avals)])
    ct_vars = list(J.inputs[len(in_avals):])
    const_arrays = {v for v, _ in J.consts}
    # partial evaluation: an equation is known if it reads only primal values (and no array
    # constant made by a rule: those stay in the backward, which hoists them to operands)
    known = set(prim_vars)
    varying = set(prim_vars[:c0]) | set(prim_vars[k0:])
    known_eqns, unknown_eqns = [], []
    for e in J.eqns:
        vs = [a for a in e.inputs if isinstance(a, Var)]
        if all(v in known for v in vs):
            known_eqns.append(e)
            known.update(e.outs)
            if any(v in varying for v in vs):
                varying.update(e.outs)
        else:
            unknown_eqns.append(e)
    ct_outs = J.outputs[n_out:]
    unknown_eqns = dce(IR((), (), tuple(unknown_eqns), tuple(ct_outs))).eqns
    need, seen = [], set()
    for a in [a for e in unknown_eqns for a in e.inputs] + list(ct_outs):
        if isinstance(a, Var) and a in known and a not in seen:
            seen.add(a)
            need.append(a)
    idx_vars = set(prim_vars[:c0])
    const_vars, xs_vars = prim_vars[c0:k0], prim_vars[x0:]
    const_idx, inv_vars, res_vars, xs_idx = [], [], [], []
    for v in need:
        if v in idx_vars or v in const_arrays:
            continue
        if v in const_vars:
            const_idx.append(const_vars.index(v))
        elif v in xs_vars:
            xs_idx.append(xs_vars.index(v))
        elif v in varying:
            res_vars.append(v)
        else:
            inv_vars.append(v)
    if any(d < 0 for v in res_vars for d in v.aval.shape):
        # A residual of run-time length (saved by a while_loop inside this body) cannot be stacked
        # per iteration: recompute instead. Save only the body's inputs; the backward body re-runs
        # the whole forward of the body (as tg.checkpoint would).
        unknown_eqns = dce(IR((), (), tuple(e for e in J.eqns if not e.prim.effectful),
                              tuple(ct_outs))).eqns
        used = set(a for e in unknown_eqns for a in e.inputs) | set(ct_outs)
        const_idx = [k for k, v in enumerate(const_vars) if v in used]
        xs_idx = [k for k, v in enumerate(xs_vars) if v in used]
        res_vars = [v for v in prim_vars[k0:x0] if v in used]
        inv_vars = []
        lin.fwd = copy_ir(body, [prim_vars.index(v) for v in res_vars])
    else:
        lin.fwd = dce(IR(tuple(prim_vars), (), tuple(known_eqns),
                         tuple(J.outputs[:n_out]) + tuple(res_vars)))
    inv_eqns = tuple(e for e in known_eqns
                     if not any(v in varying for v in e.outs) and not e.prim.effectful)
    lin.inv = dce(IR(tuple(const_vars), (), inv_eqns, tuple(inv_vars)))
    bwd_inputs = (tuple(prim_vars[:c0]) + tuple(const_vars[k] for k in const_idx) + tuple(inv_vars) +
                  tuple(res_vars) + tuple(xs_vars[k] for k in xs_idx) + tuple(ct_vars))
    lin.bwd = dce(IR(bwd_inputs, J.consts, tuple(unknown_eqns), tuple(ct_outs)))
    lin.res_avals = [v.aval for v in res_vars]
    lin.const_idx, lin.xs_idx, lin.fc, lin.fy = tuple(const_idx), tuple(xs_idx), fc, fy
    lin.want_consts, lin.want_xs, lin.n_idx = tuple(want_consts), tuple(want_xs), n_idx
    return lin


def _find_eqn(out):
    """(builder, index) of the recorded equation that produced the tracers `out`, if reachable."""
    if not out or not all(isinstance(o, Tracer) for o in out):
        return None
    b = out[0].builder
    if any(o.builder is not b for o in out):
        return None
    cur = current_builder()
    if cur is None or not (cur is b or cur.is_ancestor(b)):
        return None
    first = out[0].node
    for idx in range(len(b.eqns) - 1, -1, -1):
        e = b.eqns[idx]
        if e.outs and e.outs[0] is first:
            ok = len(e.outs) >= len(out) and all(e.outs[k] is o.node for k, o in enumerate(out))
            return (b, idx) if ok else None
    return None


def _saved(prim, ins, out, key, build):
    """(lin, residual values): make the forward loop that produced `out` also save residuals.

    The recorded forward equation is rewritten in place (same inputs and outputs, plus trailing
    residual outputs), once per equation; otherwise the residual-saving forward is emitted anew.
    """
    found = _find_eqn(out)
    cache = None
    if found is not None:
        b, idx = found
        cache = b.__dict__.setdefault("_control_flow_saved", {})
        hit = cache.get(id(out[0].node))
        if hit is not None:
            if hit[0] == key:
                return hit[1], hit[2]
            found = None
    lin, params, extra_avals = build()
    if found is not None and len(b.eqns[idx].outs) == len(out):
        e = b.eqns[idx]
        new = tuple(Var(a) for a in extra_avals)
        b.eqns[idx] = Eqn(e.prim, e.inputs, e.outs + new, params, e.src, e.fwd_src)
        vals = [None] * len(new)
        if b.eager:
            with no_trace():
                allv = impl_of(prim)(*[b.value_of(a) for a in e.inputs], **params)
            vals = [_as(v, a) for v, a in zip(allv[len(e.outs):], extra_avals)]
            b.values.update(zip(new, vals))
        extra = [Tracer(v, b, val) for v, val in zip(new, vals)]
        cache[id(out[0].node)] = (key, lin, extra)
        return lin, extra
    outs = bind(prim, *ins, **params)
    return lin, list(outs[len(out):])


def _bwd_body(lin, consts, inv_vals, present):
    """The backward loop body for this pattern of present ys cotangents.

    Inputs: (i, extras..., ct_carry[fc]..., acc[want_consts]..., res..., xs[xs_idx]..., ct_y[present]...)
    Outputs: (ct_carry_in[fc]..., acc + ct_consts..., ct_xs[want_xs]...)
    """
    nf, nw, nr, nx = len(lin.fc), len(lin.want_consts), len(lin.res_avals), len(lin.xs_idx)
    avals = ([Aval((), INDEX)] + [lin.carry_avals[k] for k in lin.fc] +
             [lin.const_avals[k] for k in lin.want_consts] + list(lin.res_avals) +
             [lin.x_avals[k] for k in lin.xs_idx] + [lin.y_avals[j] for j in present])

    def fn(i, *a):
        a = list(a)
        ct_c, acc, res = a[:nf], a[nf:nf + nw], a[nf + nw:nf + nw + nr]
        xi, given = a[nf + nw + nr:nf + nw + nr + nx], dict(zip(present, a[nf + nw + nr + nx:]))
        ct_y = [given[j] if j in given else ops.full(lin.y_avals[j].shape, 0, lin.y_avals[j].dtype)
                for j in lin.fy]
        args = (([i] if lin.n_idx else []) + [consts[k] for k in lin.const_idx] + list(inv_vals) +
                res + xi + ct_c + ct_y)
        outs = eval_ir(lin.bwd, *args)
        ct_consts, ct_in, ct_x = outs[:nw], outs[nw:nw + nf], outs[nw + nf:]
        return list(ct_in) + [ops.add(s, c) for s, c in zip(acc, ct_consts)] + list(ct_x), None

    ir, extras, _ = trace_closed(fn, avals, None, 1)
    return ir, extras


def _backward_loop(lin, consts, res, xs_needed, ct_carry, ct_ys, carry_out, n_op, length, reverse):
    """Emit the backward scan. Returns (ct_init[fc], ct_consts[want_consts], ct_xs[want_xs])."""
    inv_vals = eval_ir(lin.inv, *consts) if lin.inv.outputs else []
    ct_c0 = [ct_carry[k] if ct_carry[k] is not None else ops.zeros_like(carry_out[k]) for k in lin.fc]
    present = tuple(j for j in lin.fy if ct_ys[j] is not None)
    acc0 = [ops.zeros_like(consts[k]) for k in lin.want_consts]
    ir, extras = _bwd_body(lin, consts, inv_vals, present)
    operands = (([n_op] if length is None else []) + extras + ct_c0 + acc0 + list(res) +
                list(xs_needed) + [ct_ys[j] for j in present])
    nf, nw = len(lin.fc), len(lin.want_consts)
    outs = bind(scan_p, *operands, body=ir, length=length, reverse=reverse, n_consts=len(extras),
                n_carry=nf + nw, saved=0)
    return outs[:nf], outs[nf:nf + nw], outs[nf + nw:]


# ---------------------------------------------------------------- VJP

def _scan_vjp(cts, *ins, out, body, length, reverse, n_consts, n_carry, saved, active=None):
    lead = 1 if length is None else 0
    act = active or (None,) * len(ins)
    consts = list(ins[lead:lead + n_consts])
    xs = list(ins[lead + n_consts + n_carry:])
    want_c = tuple(k for k, c in enumerate(consts) if _wants(c, act[lead + k]))
    want_x = tuple(k for k, x in enumerate(xs) if _wants(x, act[lead + n_consts + n_carry + k]))
    act_k = [k for k in range(n_carry) if act[lead + n_consts + k] is not False]
    fc, fy = _active_outputs(body, 1, n_consts, n_carry, want_c, act_k, want_x)
    result = [None] * len(ins)
    if not (fc or want_c or want_x):
        return result
    L = -1 if length is None else length

    def build():
        lin = _linearize(body, 1, n_consts, n_carry, want_c, want_x, fc, fy)
        params = dict(body=lin.fwd, length=length, reverse=reverse, n_consts=n_consts,
                      n_carry=n_carry, saved=saved + len(lin.res_avals))
        return lin, params, [Aval((L,) + a.shape, a.dtype) for a in lin.res_avals]

    lin, res = _saved(scan_p, ins, out, (want_c, want_x, fc, fy), build)
    ct_init, ct_consts, ct_xs = _backward_loop(
        lin, consts, res, [xs[k] for k in lin.xs_idx], list(cts[:n_carry]), list(cts[n_carry:]),
        out[:n_carry], ins[0] if lead else None, length, not reverse)
    for k, c in zip(want_c, ct_consts):
        result[lead + k] = c
    for k, c in zip(lin.fc, ct_init):
        result[lead + n_consts + k] = c
    for k, c in zip(want_x, ct_xs):
        result[lead + n_consts + n_carry + k] = c
    return result


def _while_vjp(cts, *ins, out, cond, body, n_cond_consts, n_body_consts, record, saved,
               active=None):
    ncc, nbc = n_cond_consts, n_body_consts
    act = active or (None,) * len(ins)
    bconsts = list(ins[ncc:ncc + nbc])
    n_carry = len(ins) - ncc - nbc
    want_c = tuple(k for k, c in enumerate(bconsts) if _wants(c, act[ncc + k]))
    act_k = [k for k in range(n_carry) if act[ncc + nbc + k] is not False]
    fc, fy = _active_outputs(body, 0, nbc, n_carry, want_c, act_k, ())
    result = [None] * len(ins)
    if not (fc or want_c):
        return result

    def build():
        lin = _linearize(body, 0, nbc, n_carry, want_c, (), fc, fy)
        params = dict(cond=copy_ir(cond), body=lin.fwd, n_cond_consts=ncc, n_body_consts=nbc, record=True,
                      saved=saved + len(lin.res_avals))
        extra = ([] if record else [Aval((), INDEX)]) + [Aval((-1,) + a.shape, a.dtype)
                                                         for a in lin.res_avals]
        return lin, params, extra

    lin, extra = _saved(while_p, ins, out, (want_c, fc, fy), build)
    if record:
        n_trip, res, ct_ys = out[n_carry], extra, list(cts[n_carry + 1:])
    else:
        n_trip, res, ct_ys = extra[0], extra[1:], []
    ct_init, ct_consts, _ = _backward_loop(lin, bconsts, res, [], list(cts[:n_carry]), ct_ys,
                                           out[:n_carry], n_trip, None, True)
    for k, c in zip(want_c, ct_consts):
        result[ncc + k] = c
    for k, c in zip(lin.fc, ct_init):
        result[ncc + nbc + k] = c
    return result


def _call_vjp_body(ir, operands, present, want):
    """Closed IR: (operands..., cts[present]...) -> cotangents of operands[want] (recomputing ir)."""
    n = len(ir.inputs)

    def fn(*a):
        xs, cs = a[:n], a[n:]
        env = dict(zip(ir.inputs, xs))
        eval_eqns(ir.eqns, env)
        out_cts: dict = {}
        for j, c in zip(present, cs):
            o = ir.outputs[j]
            if isinstance(o, Var):
                out_cts[o] = c if o not in out_cts else ops.add(out_cts[o], c)
        got = backward_pass(ir.eqns, env, out_cts, [ir.inputs[k] for k in want])
        return [ops.zeros_like(xs[k]) if g is None else g for k, g in zip(want, got)], None

    ir2, extras, _ = trace_closed(fn, list(ir.in_avals) + [ir.out_avals[j] for j in present])
    return ir2, extras


def _cond_vjp(cts, pred, *operands, out, branches, active=None):
    act = active or (None,) * (1 + len(operands))
    want = [k for k, x in enumerate(operands) if _wants(x, act[1 + k])]
    present = [j for j, c in enumerate(cts) if c is not None]
    result = [None] * (1 + len(operands))
    if not want or not present:
        return result
    (f2, t2), extras = merge_extras([_call_vjp_body(b, operands, present, want) for b in branches])
    outs = bind(cond_p, pred, *operands, *[cts[j] for j in present], *extras, branches=(f2, t2))
    for k, c in zip(want, outs):
        result[1 + k] = c
    return result


def _checkpoint_vjp(cts, *operands, out, body, active=None):
    act = active or (None,) * len(operands)
    want = [k for k, x in enumerate(operands) if _wants(x, act[k])]
    present = [j for j, c in enumerate(cts) if c is not None]
    result = [None] * len(operands)
    if not want or not present:
        return result
    ir, extras = _call_vjp_body(body, operands, present, want)
    outs = bind(checkpoint_p, *operands, *[cts[j] for j in present], *extras, body=ir)
    for k, c in zip(want, outs):
        result[k] = c
    return result


defvjp(scan_p, _scan_vjp)
defvjp(while_p, _while_vjp)
defvjp(cond_p, _cond_vjp)
defvjp(checkpoint_p, _checkpoint_vjp)


# ---------------------------------------------------------------- JVP

def _jvp_loop_body(body, n_idx, n_consts, n_carry, nzc, nzk, nzx):
    """Closed IR of the body on (primal, tangent) values; `nzk` grows to a fixpoint.

    Inputs: ([i], consts..., tconsts[nzc]..., extras..., carry..., tcarry[nzk]..., xs..., txs[nzx]...)
    Outputs: (carry'..., tcarry'[nzk]..., ys..., tys[nzy]...). Returns (ir, extras, nzk, nzy).
    """
    in_avals = list(body.in_avals)
    c0, k0 = n_idx, n_idx + n_consts
    x0 = k0 + n_carry
    n_ys = len(body.outputs) - n_carry
    nzk = sorted(nzk)
    while True:
        info: dict = {}
        nk = list(nzk)
        avals = (in_avals[:k0] + [in_avals[c0 + k] for k in nzc] + in_avals[k0:x0] +
                 [in_avals[k0 + k] for k in nk] + in_avals[x0:] + [in_avals[x0 + k] for k in nzx])

        def fn(*a):
            a = list(a)
            head, a = a[:k0], a[k0:]
            tc, a = a[:len(nzc)], a[len(nzc):]
            carry, a = a[:n_carry], a[n_carry:]
            tk, a = a[:len(nk)], a[len(nk):]
            xs, tx = a[:len(in_avals) - x0], a[len(in_avals) - x0:]
            env = dict(zip(body.inputs, head + carry + xs))
            eval_eqns(body.eqns, env)
            pos = [c0 + k for k in nzc] + [k0 + k for k in nk] + [x0 + k for k in nzx]
            seed = {body.inputs[p]: t for p, t in zip(pos, tc + tk + tx)}
            tan = jvp_pass(body.eqns, env, seed)
            outs = [_read(env, o) for o in body.outputs]
            touts = [None if isinstance(o, Lit) else tan.get(o) for o in body.outputs]
            info["k"] = {k for k in range(n_carry) if touts[k] is not None}
            info["y"] = [j for j in range(n_ys) if touts[n_carry + j] is not None]
            tcarry = [touts[k] if touts[k] is not None else ops.zeros_like(outs[k]) for k in nk]
            return (outs[:n_carry] + tcarry + outs[n_carry:] +
                    [touts[n_carry + j] for j in info["y"]]), None

        ir, extras, _ = trace_closed(fn, avals, None, k0 + len(nzc))
        grow = info["k"] - set(nk)
        if not grow:
            return ir, extras, nk, info["y"]
        nzk = sorted(set(nk) | grow)


def _zero_or(t, x):
    return ops.zeros_like(x) if t is None else t


def _scan_jvp(tangents, *ins, out, body, length, reverse, n_consts, n_carry, saved):
    lead = 1 if length is None else 0
    consts = list(ins[lead:lead + n_consts])
    init = list(ins[lead + n_consts:lead + n_consts + n_carry])
    xs = list(ins[lead + n_consts + n_carry:])
    t_c = tangents[lead:lead + n_consts]
    t_k = tangents[lead + n_consts:lead + n_consts + n_carry]
    t_x = tangents[lead + n_consts + n_carry:]
    nzc = [k for k, t in enumerate(t_c) if t is not None]
    nzx = [k for k, t in enumerate(t_x) if t is not None]
    nzk = [k for k, t in enumerate(t_k) if t is not None]
    ir, extras, nzk, nzy = _jvp_loop_body(body, 1, n_consts, n_carry, nzc, nzk, nzx)
    operands = (list(ins[:lead]) + consts + [t_c[k] for k in nzc] + extras + init +
                [_zero_or(t_k[k], init[k]) for k in nzk] + xs + [t_x[k] for k in nzx])
    outs = bind(scan_p, *operands, body=ir, length=length, reverse=reverse,
                n_consts=n_consts + len(nzc) + len(extras), n_carry=n_carry + len(nzk), saved=0)
    n_ys = len(out) - n_carry
    t_out = [None] * len(out)
    for m, k in enumerate(nzk):
        t_out[k] = outs[n_carry + m]
    base = n_carry + len(nzk) + n_ys
    for m, j in enumerate(nzy):
        t_out[n_carry + j] = outs[base + m]
    return t_out


def _while_jvp(tangents, *ins, out, cond, body, n_cond_consts, n_body_consts, record, saved):
    ncc, nbc = n_cond_consts, n_body_consts
    cc, bc, init = list(ins[:ncc]), list(ins[ncc:ncc + nbc]), list(ins[ncc + nbc:])
    n_carry = len(init)
    t_c, t_k = tangents[ncc:ncc + nbc], tangents[ncc + nbc:]
    nzc = [k for k, t in enumerate(t_c) if t is not None]
    nzk = [k for k, t in enumerate(t_k) if t is not None]
    ir, extras, nzk, nzy = _jvp_loop_body(body, 0, nbc, n_carry, nzc, nzk, [])
    c2 = copy_ir(cond)
    jcond = IR(c2.inputs + tuple(Var(cond.in_avals[ncc + k]) for k in nzk), (), c2.eqns, c2.outputs)
    operands = cc + bc + [t_c[k] for k in nzc] + extras + init + [_zero_or(t_k[k], init[k]) for k in nzk]
    outs = bind(while_p, *operands, cond=jcond, body=ir, n_cond_consts=ncc,
                n_body_consts=nbc + len(nzc) + len(extras), record=record, saved=0)
    t_out = [None] * len(out)
    for m, k in enumerate(nzk):
        t_out[k] = outs[n_carry + m]
    if record:
        n_ys = len(out) - n_carry - 1
        base = n_carry + len(nzk) + 1 + n_ys
        for m, j in enumerate(nzy):
            t_out[n_carry + 1 + j] = outs[base + m]
    return t_out


def _call_jvp_body(ir, nz):
    """Closed IR: (operands..., tangents[nz]...) -> tangents of the float outputs (zeros if none)."""
    n = len(ir.inputs)
    fo = [j for j, a in enumerate(ir.out_avals) if a.is_float]

    def fn(*a):
        xs, ts = a[:n], a[n:]
        env = dict(zip(ir.inputs, xs))
        eval_eqns(ir.eqns, env)
        tan = jvp_pass(ir.eqns, env, {ir.inputs[k]: t for k, t in zip(nz, ts)})
        outs = [_read(env, o) for o in ir.outputs]
        return [_zero_or(None if isinstance(ir.outputs[j], Lit) else tan.get(ir.outputs[j]), outs[j])
                for j in fo], None

    ir2, extras, _ = trace_closed(fn, list(ir.in_avals) + [ir.in_avals[k] for k in nz])
    return ir2, extras, fo


def _cond_jvp(tangents, pred, *operands, out, branches):
    t_ops = tangents[1:]
    nz = [k for k, t in enumerate(t_ops) if t is not None]
    traced = [_call_jvp_body(b, nz) for b in branches]
    fo = traced[0][2]
    (f2, t2), extras = merge_extras([(ir, ex) for ir, ex, _ in traced])
    outs = bind(cond_p, pred, *operands, *[t_ops[k] for k in nz], *extras, branches=(f2, t2))
    t_out = [None] * len(out)
    for m, j in enumerate(fo):
        t_out[j] = outs[m]
    return t_out


def _checkpoint_jvp(tangents, *operands, out, body):
    nz = [k for k, t in enumerate(tangents) if t is not None]
    ir, extras, fo = _call_jvp_body(body, nz)
    outs = bind(checkpoint_p, *operands, *[tangents[k] for k in nz], *extras, body=ir)
    t_out = [None] * len(out)
    for m, j in enumerate(fo):
        t_out[j] = outs[m]
    return t_out


defjvp(scan_p, _scan_jvp)
defjvp(while_p, _while_jvp)
defjvp(cond_p, _cond_jvp)
defjvp(checkpoint_p, _checkpoint_jvp)
