"""The interpreter tier: an IR run with the NumPy impl rules.

`runner(ir, check_finite)` returns `run(*inputs) -> tuple of arrays` (0-d arrays for scalars).
Its first calls evaluate the equations one by one (an environment dictionary, each impl looked up
and called): nothing to prepare, so a traced function's first call costs its tracing and one pass
over the equations. A runner called more than `BUILD_AFTER` times (a function called in a loop while
native code is built, a loop body) turns the IR into the source of one Python function, one line per
equation of the simplified IR (passes.simplify: exact values kept), calling each primitive's impl
rule with its params bound in advance: no per-equation dispatch, no environment dictionary. With `check_finite`, the first equation producing NaN/Inf
raises `AnomalyError` naming it (primitive, phase, the user's lines). Runners are memoised on the IR
object (an IR is immutable), per `check_finite`; `run.source` is the generated source.
"""
from __future__ import annotations

import builtins
import functools
import keyword

import numpy as np

from .errors import MissingRuleError, check_finite
from .ir import IR, Lit, _pretty, format_src
from .passes import simplify
from .primitives import impl_rules


_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {"np", "run"}
BUILD_AFTER = 16


def runner(ir: IR, check_finite: bool = False):
    """A callable evaluating `ir` with the NumPy impls (see the module docstring)."""
    key = ("interpret", bool(check_finite))
    run = ir.memo.get(key)
    if run is None:
        run = ir.memo[key] = Runner(ir, bool(check_finite))
    return run


def source(ir: IR, check_finite: bool = False) -> str:
    return runner(ir, check_finite).source


class Runner:
    """`run(*inputs)`: evaluated equation by equation, then by generated code (module docstring)."""
    __slots__ = ("ir", "check", "calls", "built")

    def __init__(self, ir, check):
        self.ir, self.check, self.calls, self.built = ir, check, 0, None

    def __call__(self, *args):
        built = self.built
        if built is not None:
            return built(*args)
        self.calls += 1
        if self.calls > BUILD_AFTER:
            built = self.built = _build(simplify(self.ir), self.check)
            return built(*args)
        return _evaluate(self.ir, self.check, args)

    @property
    def source(self) -> str:
        if self.built is None:
            self.built = _build(simplify(self.ir), self.check)
        return self.built.source


def _evaluate(ir: IR, check: bool, args):
    if len(args) != len(ir.inputs):
        raise TypeError(f"run() takes {len(ir.inputs)} arguments, got {len(args)}")
    env = dict(zip(ir.inputs, args))
    env.update(ir.consts)
    rules = impl_rules
    for e in ir.eqns:
        impl = rules.get(e.prim)
        if impl is None:
            raise MissingRuleError(f"primitive '{e.prim.name}' has no impl rule (add it in tracegrad/rules/)")
        ins = [a.value if type(a) is Lit else env[a] for a in e.inputs]
        out = impl(*ins, **e.params) if e.params else impl(*ins)
        if e.prim.multiple_results:
            env.update(zip(e.outs, out))
            outs = out
        else:
            env[e.outs[0]] = out
            outs = (out,)
        if check and any(v.aval.is_float for v in e.outs):
            check_finite(e.prim.name, e.src, e.fwd_src, tuple(ins), tuple(outs))
    return tuple([np.asarray(a.value if type(a) is Lit else env[a], a.aval.dtype) for a in ir.outputs])


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
