"""Reverse mode through the loop primitives `scan` and `while`.

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
"""
from __future__ import annotations


from .. import ops
from ..autodiff import backward_pass
from ..bodies import INDEX, copy_ir, trace_closed
from ..ir import IR, Aval, Var, dce
from ..primitives import scan_p, while_p
from ..childtrace import eval_eqns, eval_ir, read, trace_child
from ..trace import Tracer, bind, current_builder
from .common import defvjp
from .control import wants


# ---------------------------------------------------------------- linearizing a loop body

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
        outs = [read(env, a) for a in body.outputs]
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


class _Want:
    """Which loop operands need cotangents: consts, xs and carries (indices).

    As the key of saved residuals it also names the loop bodies they serve (the body the VJP was
    asked for and the residual-saving one that replaced it) and how many outputs the loop had: residuals saved for a wider set serve a narrower one (the extra
    cotangents are not used), as long as no cotangent reaches the residual outputs themselves
    (differentiating the residual-saving loop again, at second order, needs its own)."""
    __slots__ = ("consts", "xs", "carry", "bodies", "n_out")

    def __init__(self, consts, xs, carry):
        self.consts, self.xs, self.carry = tuple(consts), tuple(xs), tuple(carry)
        self.bodies, self.n_out = (), None

    def saved_for(self, bodies, n_out):
        key = _Want(self.consts, self.xs, self.carry)
        key.bodies, key.n_out = tuple(bodies), n_out
        return key

    def serves(self, want, body, cts) -> bool:
        return (any(b is body for b in self.bodies) and all(c is None for c in cts[self.n_out:])
                and set(want.consts) <= set(self.consts) and set(want.xs) <= set(self.xs)
                and set(want.carry) <= set(self.carry))


def _owner(out):
    """The open builder that recorded the loop equation producing `out` (None if unreachable)."""
    if not out or not isinstance(out[0], Tracer):
        return None
    b, cur = out[0].builder, current_builder()
    return b if cur is not None and (cur is b or cur.is_ancestor(b)) else None


def _saved(prim, ins, out, cts, body, want, build):
    """(payload, residual values): the forward loop that produced `out` also saves residuals.

    Residuals saved already (when the loop ran in eager reverse mode, see `bind_loop`, or by an
    earlier VJP) are reused when they serve; otherwise the recorded forward equation is extended in
    place (its builder's `extend_equation`), or, if it cannot be reached or was extended for
    something else, the residual-saving forward is emitted anew.
    """
    b = _owner(out)
    if b is not None:
        hit = b.extension(out)
        if hit is not None and hit[0].serves(want, body, cts):
            return hit[1], hit[2]
        if hit is None:
            got = b.extend_equation(out, lambda params: want.saved_for((body, params["body"]), len(out)),
                                    lambda: build(want))
            if got is not None:
                return got
    payload, params, _ = build(want)
    outs = bind(prim, *ins, **params)
    return payload, list(outs[len(out):])


def bind_loop(prim, operands, params):
    """Bind a `scan`/`while` equation (what control_flow calls). In eager mode under reverse-mode
    differentiation the loop runs once, saving the residuals its VJP will need (else the VJP would
    run the forward loop a second time to get them); returns the primal outputs."""
    b = current_builder()
    if b is None or not b.eager or not b.in_reverse_mode():
        return bind(prim, *operands, **params)
    spec = _LOOPS[prim]
    want = spec.want(operands, None, params)
    if not spec.any_active(want, params):
        return bind(prim, *operands, **params)
    payload, new_params, extra_avals = spec.build(want, params)
    outs = bind(prim, *operands, **new_params)
    n = len(outs) - len(extra_avals)
    b.note_extension(outs[:n], want.saved_for((params["body"], new_params["body"]), n), payload, outs[n:])
    return outs[:n]


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

def _want(n_lead, n_consts, n_carry, ins, act):
    """Which consts, xs and carries of a loop equation with these operands need cotangents.

    `act` is autodiff's per-operand activity, or None when binding (then: the float tracers)."""
    binding = act is None
    act = act or (None,) * len(ins)
    k0, x0 = n_lead + n_consts, n_lead + n_consts + n_carry
    consts = [k for k in range(n_consts) if wants(ins[n_lead + k], act[n_lead + k])]
    xs = [k for k in range(len(ins) - x0) if wants(ins[x0 + k], act[x0 + k])]
    if binding:
        carry = [k for k in range(n_carry) if isinstance(ins[k0 + k], Tracer)]
    else:
        carry = [k for k in range(n_carry) if act[k0 + k] is not False]
    return _Want(consts, xs, carry)


class _ScanVJP:
    @staticmethod
    def want(ins, act, p):
        return _want(1 if p["length"] is None else 0, p["n_consts"], p["n_carry"], ins, act)

    @staticmethod
    def outputs(want, p):
        return _active_outputs(p["body"], 1, p["n_consts"], p["n_carry"], want.consts, want.carry, want.xs)

    @classmethod
    def any_active(cls, want, p):
        return bool(cls.outputs(want, p)[0] or want.consts or want.xs)

    @classmethod
    def build(cls, want, p):
        fc, fy = cls.outputs(want, p)
        lin = _linearize(p["body"], 1, p["n_consts"], p["n_carry"], want.consts, want.xs, fc, fy)
        L = -1 if p["length"] is None else p["length"]
        params = dict(p, body=lin.fwd, saved=p["saved"] + len(lin.res_avals))
        return lin, params, [Aval((L,) + a.shape, a.dtype) for a in lin.res_avals]


class _WhileVJP:
    @staticmethod
    def want(ins, act, p):
        n_carry = len(ins) - p["n_cond_consts"] - p["n_body_consts"]
        return _want(p["n_cond_consts"], p["n_body_consts"], n_carry, ins, act)

    @staticmethod
    def outputs(want, p):
        n_carry = len(p["body"].in_avals) - p["n_body_consts"]
        return _active_outputs(p["body"], 0, p["n_body_consts"], n_carry, want.consts, want.carry, ())

    @classmethod
    def any_active(cls, want, p):
        return bool(cls.outputs(want, p)[0] or want.consts)

    @classmethod
    def build(cls, want, p):
        fc, fy = cls.outputs(want, p)
        n_carry = len(p["body"].in_avals) - p["n_body_consts"]
        lin = _linearize(p["body"], 0, p["n_body_consts"], n_carry, want.consts, (), fc, fy)
        params = dict(p, cond=copy_ir(p["cond"]), body=lin.fwd, record=True,
                      saved=p["saved"] + len(lin.res_avals))
        # a loop that did not count its trips yet gains the count, then the residual buffers
        extra = ([] if p["record"] else [Aval((), INDEX)]) + [Aval((-1,) + a.shape, a.dtype)
                                                               for a in lin.res_avals]
        return (lin, p["record"]), params, extra


_LOOPS = {scan_p: _ScanVJP, while_p: _WhileVJP}


def _scan_vjp(cts, *ins, out, active=None, **p):
    lead = 1 if p["length"] is None else 0
    n_consts, n_carry = p["n_consts"], p["n_carry"]
    result = [None] * len(ins)
    want = _ScanVJP.want(ins, active, p)
    if not _ScanVJP.any_active(want, p):
        return result
    lin, res = _saved(scan_p, ins, out, cts, p["body"], want, lambda w: _ScanVJP.build(w, p))
    consts = list(ins[lead:lead + n_consts])
    xs = list(ins[lead + n_consts + n_carry:])
    ct_init, ct_consts, ct_xs = _backward_loop(
        lin, consts, res, [xs[k] for k in lin.xs_idx], list(cts[:n_carry]), list(cts[n_carry:]),
        out[:n_carry], ins[0] if lead else None, p["length"], not p["reverse"])
    for k, c in zip(lin.want_consts, ct_consts):
        result[lead + k] = c
    for k, c in zip(lin.fc, ct_init):
        result[lead + n_consts + k] = c
    for k, c in zip(lin.want_xs, ct_xs):
        result[lead + n_consts + n_carry + k] = c
    return result


def _while_vjp(cts, *ins, out, active=None, **p):
    ncc, nbc = p["n_cond_consts"], p["n_body_consts"]
    n_carry = len(ins) - ncc - nbc
    result = [None] * len(ins)
    want = _WhileVJP.want(ins, active, p)
    if not _WhileVJP.any_active(want, p):
        return result
    (lin, counted), extra = _saved(while_p, ins, out, cts, p["body"], want,
                                   lambda w: _WhileVJP.build(w, p))
    if counted:        # the loop already counted its trips and saved ys of its own
        n_trip, res, ct_ys = out[n_carry], extra, list(cts[n_carry + 1:])
    else:
        n_trip, res, ct_ys = extra[0], extra[1:], []
    ct_init, ct_consts, _ = _backward_loop(lin, list(ins[ncc:ncc + nbc]), res, [], list(cts[:n_carry]),
                                           ct_ys, out[:n_carry], n_trip, None, True)
    for k, c in zip(lin.want_consts, ct_consts):
        result[ncc + k] = c
    for k, c in zip(lin.fc, ct_init):
        result[ncc + nbc + k] = c
    return result


defvjp(scan_p, _scan_vjp)
defvjp(while_p, _while_vjp)
