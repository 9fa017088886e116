"""IR → IR passes run on a finished trace before it is compiled.

`inline_calls` replaces every equation whose primitive is marked `inline_before_compile` (the call
primitives of custom derivatives, `custom_vjp_call` / `custom_jvp_call`) by the equations of the
sub-IR in its `call` param. All differentiation is finished when a top-level trace ends, so the user
rules those equations carry are no longer needed, and the compiler never sees them.
"""
from __future__ import annotations

from .ir import IR, Eqn, Var, dce


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
