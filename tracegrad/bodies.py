"""Loop and branch bodies as closed sub-IRs: tracing a body once (values it closes over become
explicit operands), copying one with fresh variables, and giving several one signature."""
from __future__ import annotations

import numpy as np

from .errors import TracerError
from .ir import IR, Var
from .childtrace import eval_ir, trace_child
from .trace import Tracer, aval_of

INDEX = np.dtype(np.int64)   # loop counters and trip counts


def trace_closed(fn, avals, weaks=None, n_lead=None):
    """Trace `fn(*tracers) -> (leaves, aux)` in a child builder into a closed, constant-free IR.

    Values the function closes over (enclosing tracers, NumPy arrays) become extra inputs, inserted
    after the first `n_lead` declared inputs (default: after all). Returns (ir, extras, aux): the
    operands to pass for the extra inputs, in order (unused ones dropped).
    """
    def body(*ins):
        try:
            return fn(*ins)
        except TracerError as e:
            if _BODY_NOTE in str(e):
                raise
            raise TracerError(f"{e}\n{_BODY_NOTE}") from None

    child = trace_child(body, avals, weak=weaks if weaks is not None else [False] * len(avals))
    ir, extras = child.closed(n_lead)
    return ir, extras, child.aux


_BODY_NOTE = ("  (loop, cond and checkpoint bodies are traced once into IR, also in eager mode: inside "
              "them use tg.cond / tnp.where for value-dependent choices and tg.debug.print to print)")


def copy_ir(ir, extra_outputs=()):
    """`ir` with fresh variables (no Var shared with another sub-IR), plus `extra_outputs` (indices
    of inputs to return as well)."""
    def fn(*a):
        return eval_ir(ir, *a) + [a[k] for k in extra_outputs], None
    new, extras, _ = trace_closed(fn, ir.in_avals)
    assert not extras
    return new


def _extra_key(x):
    return ("t", id(x.node)) if isinstance(x, Tracer) else ("c", id(x))


def merge_extras(traced):
    """Give several closed IRs (each `(ir, extras)` with its extras as trailing inputs) one common
    signature: the union of their extras. Returns (irs, extras)."""
    all_extras, index = [], {}
    for _, extras in traced:
        for x in extras:
            k = _extra_key(x)
            if k not in index:
                index[k] = len(all_extras)
                all_extras.append(x)
    irs = []
    for ir, extras in traced:
        n_decl = len(ir.inputs) - len(extras)
        mine = {index[_extra_key(x)]: ir.inputs[n_decl + j] for j, x in enumerate(extras)}
        evars = tuple(mine[k] if k in mine else Var(aval_of(all_extras[k]))
                      for k in range(len(all_extras)))
        irs.append(IR(ir.inputs[:n_decl] + evars, (), ir.eqns, ir.outputs))
    return irs, all_extras
