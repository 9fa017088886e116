"""The interpreter tier: an IR turned into straight-line Python that calls the NumPy impl rules.

`runner(ir, check_finite)` returns `run(*inputs) -> tuple of arrays` (0-d arrays for scalars).
The IR becomes the source of one Python function, one line per equation, calling each primitive's
impl rule with its params bound in advance: there is no per-equation dispatch (no rule lookup,
no environment dictionary), so a traced function's first calls run at NumPy speed while native
code is being built, and loop bodies run this way in eager mode. With `check_finite`, the first
equation producing NaN/Inf raises `AnomalyError` naming it (primitive, phase, the user's lines).
Runners are memoised on the IR object (an IR is immutable), per `check_finite`.
"""
from __future__ import annotations

import builtins
import functools
import keyword

import numpy as np

from .errors import MissingRuleError, check_finite
from .ir import IR, Lit, _pretty, format_src
from .primitives import impl_rules


_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {"np", "run"}


def runner(ir: IR, check_finite: bool = False):
    """A callable evaluating `ir` with the NumPy impls (see the module docstring)."""
    key = ("interpret", bool(check_finite))
    run = ir.memo.get(key)
    if run is None:
        run = ir.memo[key] = _build(ir, bool(check_finite))
    return run


def source(ir: IR, check_finite: bool = False) -> str:
    return runner(ir, check_finite).source


def _build(ir: IR, check: bool):
    names: dict = {}
    _pretty(ir, names, 0)                  # the printer's names, so the source reads like the IR
    glob = {"np": np, "_check": check_finite}

    def name(v):
        if v not in names:
            names[v] = f"v{len(names)}"
        n = names[v]
        return n + "_" if n in _RESERVED else n

    def atom(a):
        if isinstance(a, Lit):
            k = f"_k{len(glob)}"
            glob[k] = a.value
            return k
        return name(a)

    params = ", ".join(name(v) for v in ir.inputs)
    lines = [f"def run({params}):"]
    for k, (v, value) in enumerate(ir.consts):
        glob[f"_c{k}"] = value
        lines.append(f"    {name(v)} = _c{k}")
    for i, e in enumerate(ir.eqns):
        impl = impl_rules.get(e.prim)
        if impl is None:
            raise MissingRuleError(f"primitive '{e.prim.name}' has no impl rule (add it in tracegrad/rules/)")
        fn = f"_f{i}"
        glob[fn] = functools.partial(impl, **e.params) if e.params else impl
        args = ", ".join(atom(a) for a in e.inputs)
        outs = [name(v) for v in e.outs]
        lhs = (", ".join(outs) + ("," if len(outs) == 1 else "")) if e.prim.multiple_results else outs[0]
        if e.prim.multiple_results and not outs:
            lhs = "_"
        where = format_src(e.src) if e.fwd_src is None else f"bwd {format_src(e.fwd_src)}"
        lines.append(f"    {lhs} = {fn}({args})".ljust(56) + f"  # {e.prim.name}  {where}")
        if check and any(v.aval.is_float for v in e.outs):
            outs_t = "(" + "".join(o + ", " for o in outs) + ")"
            ins_t = "(" + "".join(atom(a) + ", " for a in e.inputs) + ")"
            lines.append(f"    _check({e.prim.name!r}, {e.src!r}, {e.fwd_src!r}, {ins_t}, {outs_t})")
    rets = []
    for k, a in enumerate(ir.outputs):
        glob[f"_t{k}"] = a.aval.dtype
        rets.append(f"np.asarray({atom(a)}, _t{k})")
    lines.append(f"    return ({''.join(r + ', ' for r in rets)})")
    text = "\n".join(lines) + "\n"
    exec(compile(text, f"<tracegrad interpreter: {len(ir.eqns)} equations>", "exec"), glob)
    run = glob["run"]
    run.source = text
    return run
