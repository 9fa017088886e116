"""Reverse and forward mode as passes over recorded equations.

Both passes run in the current builder: they bind the VJP/JVP rules (written with traceable ops), so
the derivative equations land in the same IR as the forward ones, attributed to the forward
equation's source line. Because the rules are traced, derivatives of derivatives come for free.
Broadcasting is undone here, in one place (`sum_to_shape`), so rules may return cotangents at the
broadcast output shape.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .errors import MissingRuleError
from .ir import Lit, Var
from .primitives import jvp_rules, vjp_rules
from .trace import Tracer, _source

_ND = np.ndarray


def _operand(env, a):
    return a.value if isinstance(a, Lit) else env[a]


def _accumulate(ct_env: dict, var: Var, ct):
    if ct is None or isinstance(var, Lit):
        return
    aval = var.aval
    if aval.dtype.kind != "f":
        return
    if not (isinstance(ct, Tracer) and ct.node.aval is aval) and \
            not ((type(ct) is _ND or isinstance(ct, np.generic)) and ct.shape == aval.shape
                 and ct.dtype is aval.dtype):
        # (the usual cases, a tracer or an array of the variable's aval, need nothing)
        ct = ops.sum_to_shape(ct, aval.shape)
        if ops.dtype_of(ct) != aval.dtype:
            ct = ops.convert(ct, aval.dtype)
    prev = ct_env.get(var)
    ct_env[var] = ct if prev is None else ops.add(prev, ct)


def _active_vars(eqns, wanted) -> set:
    """Vars that depend on a `wanted` var: only their cotangents can reach one."""
    active = {v for v in wanted if isinstance(v, Var)}
    for e in eqns:
        for a in e.inputs:
            if a in active:          # (Lits are never in it)
                active.update(e.outs)
                break
    return active


def backward_pass(eqns, env: dict, out_cts: dict, wanted) -> list:
    """Cotangents of `wanted` vars, given cotangents of some outputs of `eqns` (evaluated in `env`).

    Equations none of whose inputs depend on `wanted` are skipped: their cotangents could never be
    used, and skipping them means an op with no derivative (pure_callback) applied to constants is
    not asked for one. Primitives with `vjp_needs_active` get `active=` (one bool per input), and
    so do rules marked `accepts_active` when some input needs no cotangent (it is not computed).
    """
    active = _active_vars(eqns, wanted)
    ct_env: dict = {}
    for var, ct in out_cts.items():
        _accumulate(ct_env, var, ct)
    pop = ct_env.pop
    for e in reversed(eqns):
        prim = e.prim
        if prim.multiple_results:
            cts = [pop(v, None) for v in e.outs]
            if all(c is None for c in cts):
                continue
        else:
            ct = pop(e.outs[0], None)
            if ct is None:
                continue
        if not prim.differentiable:
            continue
        mask = tuple([type(a) is Var and a in active for a in e.inputs])
        if True not in mask:
            continue
        rule = vjp_rules.get(prim)
        if rule is None:
            raise MissingRuleError(f"primitive '{prim.name}' (used at {e.src}) has no VJP rule; "
                                   f"add one in tracegrad/rules/")
        ins = [a.value if type(a) is Lit else env[a] for a in e.inputs]
        if prim.multiple_results:
            ct_arg, out = cts, tuple(env[v] for v in e.outs)
        else:
            ct_arg, out = ct, env[e.outs[0]]
        token = _source.set((e.src, e.src))       # (source_scope, without a generator per equation)
        try:
            if prim.vjp_needs_active or (False in mask and getattr(rule, "accepts_active", False)):
                in_cts = rule(ct_arg, *ins, out=out, active=mask, **e.params)
            else:
                in_cts = rule(ct_arg, *ins, out=out, **e.params)
            for a, c in zip(e.inputs, in_cts):
                if c is not None and type(a) is Var:
                    _accumulate(ct_env, a, c)
        finally:
            _source.reset(token)
    return [ct_env.get(v) for v in wanted]


def jvp_pass(eqns, env: dict, tangents: dict) -> dict:
    """Extend `tangents` (Var -> tangent; absent means zero) through `eqns` evaluated in `env`."""
    tan = dict(tangents)
    for e in eqns:
        ts = [tan.get(a) if isinstance(a, Var) else None for a in e.inputs]
        if all(t is None for t in ts) or not e.prim.differentiable:
            continue
        rule = jvp_rules.get(e.prim)
        if rule is None:
            raise MissingRuleError(f"primitive '{e.prim.name}' (used at {e.src}) has no JVP rule; "
                                   f"add one in tracegrad/rules/")
        ins = [_operand(env, a) for a in e.inputs]
        out = tuple(env[v] for v in e.outs) if e.prim.multiple_results else env[e.outs[0]]
        token = _source.set((e.src, e.src))
        try:
            t_out = rule(ts, *ins, out=out, **e.params)
            t_outs = t_out if e.prim.multiple_results else (t_out,)
            for v, t in zip(e.outs, t_outs):
                if t is None or not v.aval.is_float:
                    continue
                if ops.shape_of(t) != v.aval.shape:
                    t = ops.broadcast_to(t, v.aval.shape)
                if ops.dtype_of(t) != v.aval.dtype:
                    t = ops.convert(t, v.aval.dtype)
                tan[v] = t
        finally:
            _source.reset(token)
    return tan
