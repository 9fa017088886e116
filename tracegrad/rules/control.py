"""Rules for the control-flow primitives `cond`, `scan`, `while`, `checkpoint` (impl, shape, VJP, JVP).

Semantics: docs/primitives.md.

Reverse mode through `scan` and `while` is in loop_vjp.py; `cond`'s and `checkpoint`'s are here.

Forward mode: a loop over (primal, tangent) carries; the tangent carries are the carries whose
tangent can be non-zero (a fixpoint over the body). The JVP equation recomputes the primal values.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autodiff import backward_pass, jvp_pass
from ..bodies import INDEX, copy_ir, merge_extras, trace_closed
from ..ir import IR, Aval, Lit, Var
from ..primitives import checkpoint_p, cond_p, scan_p, while_p
from ..config import anomaly_enabled
from ..interpret import runner
from ..childtrace import eval_eqns, read
from ..trace import Tracer, bind, no_trace
from .common import defimpl, defjvp, defshape, defvjp


def as_aval(v, aval):
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
    run = runner(body, anomaly_enabled())
    with no_trace():
        for i in (range(n - 1, -1, -1) if reverse else range(n)):
            outs = run(np.int64(i), *consts, *carry, *[x[i] for x in xs])
            carry = outs[:n_carry]
            for y, o in zip(ys, outs[n_carry:]):
                y[i] = o
    c_avals = body.in_avals[1 + n_consts:1 + n_consts + n_carry]
    return tuple(as_aval(c, a) for c, a in zip(carry, c_avals)) + tuple(ys)


def _while_impl(*args, cond, body, n_cond_consts, n_body_consts, record, saved):
    cc = args[:n_cond_consts]
    bc = args[n_cond_consts:n_cond_consts + n_body_consts]
    carry = list(args[n_cond_consts + n_body_consts:])
    nk = len(carry)
    y_avals = body.out_avals[nk:]
    bufs = [[] for _ in y_avals]          # the growable buffers (a list; compiled: doubling arrays)
    count = 0
    test, run = runner(cond, anomaly_enabled()), runner(body, anomaly_enabled())
    with no_trace():
        while bool(test(*cc, *carry)[0]):
            outs = run(*bc, *carry)
            carry = outs[:nk]
            for b, o in zip(bufs, outs[nk:]):
                b.append(o)
            count += 1
    c_avals = body.in_avals[n_body_consts:]
    res = tuple(as_aval(c, a) for c, a in zip(carry, c_avals))
    if not record:
        return res
    stacked = tuple(np.array(b, dtype=a.dtype).reshape((count,) + a.shape) for b, a in zip(bufs, y_avals))
    return res + (np.int64(count),) + stacked


def _cond_impl(pred, *ops_, branches):
    ir = branches[1] if bool(pred) else branches[0]
    with no_trace():
        return runner(ir, anomaly_enabled())(*ops_)


def _checkpoint_impl(*args, body):
    with no_trace():
        return runner(body, anomaly_enabled())(*args)


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


# ---------------------------------------------------------------- VJP of cond and checkpoint

def wants(x, act=None) -> bool:
    """Does this operand need a cotangent? `act` is autodiff's answer to "does it depend on what is
    differentiated" (None if unknown: then concrete arrays -- hoisted constants -- do not)."""
    return (isinstance(x, Tracer) if act is None else bool(act)) and ops.dtype_of(x).kind == "f"


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
    want = [k for k, x in enumerate(operands) if wants(x, act[1 + k])]
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
    want = [k for k, x in enumerate(operands) if wants(x, act[k])]
    present = [j for j, c in enumerate(cts) if c is not None]
    result = [None] * len(operands)
    if not want or not present:
        return result
    ir, extras = _call_vjp_body(body, operands, present, want)
    outs = bind(checkpoint_p, *operands, *[cts[j] for j in present], *extras, body=ir)
    for k, c in zip(want, outs):
        result[k] = c
    return result


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
            outs = [read(env, o) for o in body.outputs]
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
        outs = [read(env, o) for o in ir.outputs]
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
