"""IR → IR passes run on a finished trace before it is compiled.

`inline_calls` replaces every equation whose primitive is marked `inline_before_compile` (the call
primitives of custom derivatives, `custom_vjp_call` / `custom_jvp_call`) by the equations of the
sub-IR in its `call` param. All differentiation is finished when a top-level trace ends, so the user
rules those equations carry are no longer needed, and the compiler never sees them.
"""
from __future__ import annotations

import numpy as np

from .ir import IR, Eqn, Lit, Var, dce


def _needs_inlining(ir: IR) -> bool:
    for e in ir.eqns:
        if e.prim.inline_before_compile or any(_param_needs(v) for v in e.params.values()):
            return True
    return False


def _param_needs(v) -> bool:
    if isinstance(v, IR):
        return _needs_inlining(v)
    if isinstance(v, tuple):
        return any(_param_needs(x) for x in v)
    return False


def _inline_param(v):
    """Nested IRs (loop and branch bodies, alone or in tuples) are inlined too; their interface
    (inputs, output avals) is unchanged."""
    if isinstance(v, IR):
        return inline_calls(v)
    if isinstance(v, tuple):
        return tuple(_inline_param(x) for x in v)
    return v


def inline_calls(ir: IR) -> IR:
    """`ir` with every `inline_before_compile` equation replaced by its sub-IR's equations.

    Returns `ir` itself when there is nothing to inline. Inlined equations get fresh variables (the
    same sub-IR may be inlined more than once), keep their own source lines, and inherit the call's
    backward attribution (`fwd_src`) when they have none. Dead code (e.g. residuals a custom VJP
    computed for a derivative that was never taken) is removed afterwards.
    """
    if not _needs_inlining(ir):
        return ir
    subst: dict = {}                 # outer Var -> atom replacing it
    consts = list(ir.consts)
    eqns = []

    def outer(a):
        return subst.get(a, a) if isinstance(a, Var) else a

    for e in ir.eqns:
        ins = tuple(outer(a) for a in e.inputs)
        params = {k: _inline_param(v) for k, v in e.params.items()}
        if not e.prim.inline_before_compile:
            changed = ins != e.inputs or any(params[k] is not e.params[k] for k in params)
            eqns.append(Eqn(e.prim, ins, e.outs, params, e.src, e.fwd_src) if changed else e)
            continue
        sub = params["call"]          # already inlined recursively by _inline_param
        env = dict(zip(sub.inputs, ins))
        for v, value in sub.consts:
            nv = Var(v.aval)
            consts.append((nv, value))
            env[v] = nv

        def inner(a):
            return env.get(a, a) if isinstance(a, Var) else a

        for se in sub.eqns:
            outs = tuple(Var(v.aval) for v in se.outs)
            new_in = tuple(inner(a) for a in se.inputs)
            eqns.append(Eqn(se.prim, new_in, outs, se.params, se.src,
                            se.fwd_src if se.fwd_src is not None else e.fwd_src))
            env.update(zip(se.outs, outs))
        for o, so in zip(e.outs, sub.outputs):
            subst[o] = inner(so)
    outputs = tuple(outer(a) for a in ir.outputs)
    return dce(IR(ir.inputs, tuple(consts), tuple(eqns), outputs))


# ---------------------------------------------------------------- simplification before compiling

def _zero(a, consts) -> bool:
    """Is atom `a` known to be all zeros (a literal, a broadcast literal, a zero constant)?"""
    if isinstance(a, Lit):
        return a.value == 0
    v = consts.get(a)
    return v is not None and v.size <= 4096 and not np.any(v)


def _one(a) -> bool:
    return isinstance(a, Lit) and a.value == 1


def _simplified(e, ins, consts, zeros):
    """An atom equal to `e`'s output computed from `ins` (None if no rule applies).

    Only rewrites that keep the output's exact value, dtype and shape: `x * 1`, `x + 0`, `x - 0`,
    `x / 1`, selects on constant masks, identity reshapes/transposes/conversions."""
    out = e.outs[0] if len(e.outs) == 1 else None
    if out is None:
        return None
    same = lambda a: a if a.aval == out.aval else None   # noqa: E731
    name = e.prim.name
    if name == "mul":
        x, y = ins
        return same(x) if _one(y) else same(y) if _one(x) else None
    if name == "add":
        x, y = ins
        return same(x) if (y in zeros or _zero(y, consts)) else \
            same(y) if (x in zeros or _zero(x, consts)) else None
    if name == "sub":
        x, y = ins
        return same(x) if (y in zeros or _zero(y, consts)) else None
    if name == "div":
        return same(ins[0]) if _one(ins[1]) else None
    if name == "select" and isinstance(ins[0], Lit):
        return same(ins[1] if bool(ins[0].value) else ins[2])
    if name == "select" and ins[0] in consts:
        mask = consts[ins[0]]
        if mask.all():
            return same(ins[1])
        if not mask.any():
            return same(ins[2])
    if name in ("reshape", "broadcast_to", "convert", "stop_gradient"):
        return same(ins[0])
    if name == "transpose" and tuple(e.params["perm"]) == tuple(range(len(e.params["perm"]))):
        return same(ins[0])
    return None


def _cse_key(e, ins):
    if e.prim.effectful or e.prim.family in ("control", "call"):
        return None
    key = []
    for a in ins:
        key.append(("lit", a.aval.dtype.str, a.value.tobytes()) if isinstance(a, Lit) else ("var", id(a)))
    try:
        params = tuple(sorted(e.params.items()))
        hash(params)
    except TypeError:
        return None
    return (e.prim, tuple(key), params)


def simplify(ir: IR) -> IR:
    """`ir` ready for the compiler: custom-derivative calls inlined, then common subexpressions
    merged and value-preserving identities removed (x*1, x+0, selects on constant masks, zeros
    that only feed adds, identity reshapes), and dead code dropped. Nested bodies are simplified
    too. Returns `ir` itself when nothing changes."""
    ir = inline_calls(ir)
    consts = {v: np.asarray(c) for v, c in ir.consts}
    subst: dict = {}
    seen: dict = {}
    zeros: set = set()
    eqns = []
    changed = False
    for e in ir.eqns:
        ins = tuple(subst.get(a, a) if isinstance(a, Var) else a for a in e.inputs)
        params = {k: _simplify_param(v) for k, v in e.params.items()}
        if ins != e.inputs or any(params[k] is not e.params[k] for k in params):
            e = Eqn(e.prim, ins, e.outs, params, e.src, e.fwd_src)
            changed = True
        rep = _simplified(e, ins, consts, zeros)
        if rep is not None:
            subst[e.outs[0]] = rep
            changed = True
            continue
        key = _cse_key(e, ins)
        if key is not None:
            prev = seen.get(key)
            if prev is not None:
                subst.update(zip(e.outs, prev.outs))
                changed = True
                continue
            seen[key] = e
        if e.prim.name == "broadcast_to" and (ins[0] in zeros or _zero(ins[0], consts)):
            zeros.add(e.outs[0])
        eqns.append(e)
    if not changed:
        return ir
    outputs = tuple(subst.get(a, a) if isinstance(a, Var) else a for a in ir.outputs)
    return dce(IR(ir.inputs, ir.consts, tuple(eqns), outputs))


def _simplify_param(v):
    if isinstance(v, IR):
        return simplify(v) if v.inputs or v.eqns else v
    if isinstance(v, tuple) and any(isinstance(x, IR) for x in v):
        return tuple(_simplify_param(x) for x in v)
    return v
