"""The NumPy path for IRs Numba cannot type at all (float16 values): the impl rules, equation by
equation. Same calling convention and anomaly reporting as a compiled kernel."""
from __future__ import annotations

import numpy as np

from tracegrad.errors import AnomalyError
from tracegrad.ir import IR, Lit
from tracegrad.primitives import impl_rules


def unsupported_dtypes(ir: IR) -> set:
    """dtypes in `ir` (sub-IRs included) that Numba has no type for."""
    found = set()

    def visit(ir):
        for v in ir.inputs + tuple(v for v, _ in ir.consts):
            if v.aval.dtype == np.float16:
                found.add(v.aval.dtype)
        for e in ir.eqns:
            for v in e.outs:
                if v.aval.dtype == np.float16:
                    found.add(v.aval.dtype)
            for p in e.params.values():
                for sub in (p if isinstance(p, tuple) else (p,)):
                    if isinstance(sub, IR):
                        visit(sub)
    visit(ir)
    return found


def interpreted(ir: IR, check_finite: bool, why: str):
    consts = {v: c for v, c in ir.consts}

    def run(*args):
        if len(args) != len(ir.inputs):
            raise TypeError(f"compiled function takes {len(ir.inputs)} arguments, got {len(args)}")
        env = dict(consts)
        env.update((v, np.asarray(a, dtype=v.aval.dtype)) for v, a in zip(ir.inputs, args))
        for e in ir.eqns:
            ins = [a.value if isinstance(a, Lit) else env[a] for a in e.inputs]
            out = impl_rules[e.prim](*ins, **e.params)
            outs = out if e.prim.multiple_results else (out,)
            for v, o in zip(e.outs, outs):
                o = np.asarray(o, dtype=v.aval.dtype)
                if check_finite and o.dtype.kind == "f" and not np.isfinite(o).all():
                    raise AnomalyError(e.prim.name, e.phase, e.src, e.fwd_src)
                env[v] = o
        return tuple(np.array(a.value, dtype=a.aval.dtype) if isinstance(a, Lit) else np.array(env[a])
                     for a in ir.outputs)

    run.source = f"# not compiled ({why}): the equations run with their NumPy impls\n"
    run.from_disk_cache = False
    run.path = None
    run.ir = ir
    run.check_finite = check_finite
    return run
