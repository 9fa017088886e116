"""From an IR to a program: kernels of bounded size, each a content-addressed module, and the runner
that calls them in order.

Numba's compile time and memory grow faster than a kernel (LLVM optimises a whole function at
once), so an IR with more than `MAX_KERNEL_EQNS` equations is split into consecutive parts, each
compiled on its own (in parallel, by the compiler's worker processes) and cached on its own: a part
that two programs share (the same source text) compiles once. Parts are cut where the fewest values
cross, and a value that crosses is an output of one part and an input of the next. A program of one
part is exactly the single kernel of the IR.

`prepare` does all of this in plain Python (no Numba): it returns a `Program` whose `kernels` a
worker can compile from their files alone, and whose `load()` (in the calling process) imports
Numba, loads or compiles each kernel, and returns the runner.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tracegrad.ir import IR, Lit, Var, free_vars_used

from . import cache
from .emit import generate
from .fuse import Plan
from .lowering.control import UnsupportedControlFlow, check_run_time_sizes

MAX_KERNEL_EQNS = int(os.environ.get("TRACEGRAD_MAX_KERNEL_EQNS", "400"))
# A part whose generated source is longer than this many lines is not compiled: it would take
# more than the compile-memory budget (about 1 GB; measured: Numba/LLVM need ~0.3 MB per line of a
# straight-line kernel, and far more once a function passes ~3,000 lines).
MAX_KERNEL_LINES = int(os.environ.get("TRACEGRAD_MAX_KERNEL_LINES", "3000"))


class NotCompilable(NotImplementedError):
    """This IR runs on the interpreter tier; the message says why (shown by `cache_info()`)."""


@dataclass
class Kernel:
    """One compiled unit: a generated module, compiled from its file alone."""
    name: str               # module name: the content hash of the source
    path: str
    signature: list         # (dtype, ndim) per kernel parameter (ndim -1: a scalar)
    parallel: bool
    gen: object             # emit.Generated (for error messages and the runner)

    def job(self) -> dict:
        """What a worker process needs to compile this kernel (JSON-able)."""
        return {"name": self.name, "path": self.path, "parallel": self.parallel,
                "signature": [[np.dtype(dt).str, nd] for dt, nd in self.signature]}


@dataclass
class Part:
    ir: IR
    kernel: Kernel
    inputs: list            # indices into the program's value list
    outputs: list


class Program:
    def __init__(self, ir, check_finite, parts, n_values, out_slots, source):
        self.ir, self.check_finite = ir, check_finite
        self.parts, self.n_values, self.out_slots = parts, n_values, out_slots
        self.source = source

    @property
    def kernels(self) -> list:
        return [p.kernel for p in self.parts]

    def load(self):
        """The native runner: each kernel loaded from the disk cache (compiled here if missing)."""
        from . import build          # (imports Numba: only what runs native code pays for it)
        runners = [build.load_part(p.ir, p.kernel, self.check_finite) for p in self.parts]
        if len(runners) == 1:
            run = runners[0]
        else:
            run = _chain(self.parts, runners, len(self.ir.inputs), self.n_values, self.out_slots)
        run.source = self.source
        run.ir = self.ir
        run.check_finite = self.check_finite
        run.from_disk_cache = all(getattr(r, "from_disk_cache", False) for r in runners)
        return run


def why_not_compiled(ir) -> str | None:
    """Why Numba cannot run `ir` at all (the interpreter tier runs it), or None."""
    odd = _unsupported_dtypes(ir)
    if odd:
        return "Numba has no " + ", ".join(sorted(d.name for d in odd)) + " type"
    try:
        check_run_time_sizes(ir)
    except UnsupportedControlFlow as e:
        return str(e)
    return None


def prepare(ir, check_finite: bool = False) -> Program:
    """Plan, split and emit `ir`; write each kernel's module file. Raises NotCompilable."""
    why = why_not_compiled(ir)
    if why:
        raise NotCompilable(why)
    chunks = split(ir, MAX_KERNEL_EQNS)
    parts, slot = [], {v: k for k, v in enumerate(ir.inputs)}
    for chunk in chunks:
        sub, ins, outs = chunk
        gen = generate(Plan(sub, check_finite))
        lines = gen.source.count("\n")
        if lines > MAX_KERNEL_LINES:
            raise NotCompilable(f"a kernel of {len(sub.eqns)} equations ({lines} lines of generated "
                                f"code) would exceed the compile-memory budget (limit "
                                f"{MAX_KERNEL_LINES} lines, TRACEGRAD_MAX_KERNEL_LINES)")
        name = cache.key(gen.source)
        path = cache.ensure_source(name, gen.source)
        kernel = Kernel(name, path, gen.signature, gen.parallel, gen)
        for v in outs:
            slot[v] = len(slot)
        parts.append(Part(sub, kernel, [slot[v] for v in ins], [slot[v] for v in outs]))
    out_slots = [("lit", a) if isinstance(a, Lit) else ("slot", slot[a]) for a in ir.outputs]
    source = parts[0].kernel.gen.source if len(parts) == 1 else _program_source(parts, ir)
    return Program(ir, check_finite, parts, len(slot), out_slots, source)


# ---------------------------------------------------------------- splitting

def _weight(e) -> int:
    """Equations, nested bodies included: what a kernel's size grows with."""
    n = 1
    for p in e.params.values():
        for sub in (p if isinstance(p, tuple) else (p,)):
            if isinstance(sub, IR):
                n += sum(_weight(x) for x in sub.eqns)
    return n


def split(ir, max_eqns: int):
    """[(part IR, input Vars, output Vars)]: consecutive equations, at most ~`max_eqns` each.

    Each part's inputs are the program inputs, constants and earlier parts' values it reads; its
    outputs are its values that later parts or the program's outputs read. A cut is placed where
    the fewest values are live, within the last quarter of a part's budget.
    """
    eqns = ir.eqns
    weights = [_weight(e) for e in eqns]
    if sum(weights) <= max_eqns:
        return [(ir, list(ir.inputs), [a for a in ir.outputs if isinstance(a, Var)])]
    last_use = {}
    for i, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var):
                last_use[a] = i
    for a in ir.outputs:
        if isinstance(a, Var):
            last_use[a] = len(eqns)
    # live[i]: values defined before equation i and read at or after it (what a cut there passes)
    delta = [0] * (len(eqns) + 2)
    for i, e in enumerate(eqns):
        for v in e.outs:
            end = last_use.get(v, -1)
            if end > i:
                delta[i + 1] += 1
                delta[end + 1] -= 1
    live, alive = [], 0
    for i in range(len(eqns) + 1):
        alive += delta[i]
        live.append(alive)
    cuts, start, acc = [], 0, 0
    for i, w in enumerate(weights):
        if acc + w > max_eqns and i > start:
            lo = max(start + 1, i - max(1, max_eqns // 4))
            best = min(range(lo, i + 1), key=lambda k: (live[k], -k))
            cuts.append(best)
            start, acc = best, sum(weights[best:i])
        acc += w
    bounds = [0] + cuts + [len(eqns)]
    consts = {v: c for v, c in ir.consts}
    program_out = {a for a in ir.outputs if isinstance(a, Var)}
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        body = eqns[lo:hi]
        defined = {v for e in body for v in e.outs}
        reads = [v for v in free_vars_used(body) if v not in defined]
        part_consts = tuple((v, consts[v]) for v in reads if v in consts)
        ins = [v for v in reads if v not in consts]
        outs = [v for e in body for v in e.outs if v in program_out or last_use.get(v, -1) >= hi]
        parts.append((IR(tuple(ins), part_consts, tuple(body), tuple(outs)), ins, outs))
    return parts


def _program_source(parts, ir) -> str:
    names = {}
    for p in parts:
        for v in list(p.ir.inputs) + list(p.ir.outputs):
            names.setdefault(v, f"v{len(names)}")
    lines = [f"# A program of {len(parts)} kernels (parts of at most ~{MAX_KERNEL_EQNS} equations, "
             f"compiled and cached one by one); each kernel's module follows.",
             f"def run({', '.join(names.get(v, '_') for v in ir.inputs)}):"]
    for k, p in enumerate(parts):
        outs = ", ".join(names[v] for v in p.ir.outputs)
        lines.append(f"    {outs}{',' if len(p.ir.outputs) == 1 else ''} = part{k}({', '.join(names[v] for v in p.ir.inputs)})"
                     f"   # {len(p.ir.eqns)} equations: {p.kernel.name}")
    lines.append(f"    return ({''.join((str(a) if isinstance(a, Lit) else names[a]) + ', ' for a in ir.outputs)})")
    text = "\n".join(lines) + "\n"
    for k, p in enumerate(parts):
        text += f"\n\n# ======== part{k}: {p.kernel.path}\n" + p.kernel.gen.source
    return text


def _chain(parts, runners, n_inputs, n_values, out_slots):
    """One runner calling each part's runner in order (the program's values in a list)."""
    plan = [(r, p.inputs, p.outputs) for p, r in zip(parts, runners)]
    outs = [(kind, x) for kind, x in out_slots]

    def run(*args):
        vals = list(args) + [None] * (n_values - n_inputs)
        for r, ins, dst in plan:
            res = r(*[vals[k] for k in ins])
            for k, v in zip(dst, res):
                vals[k] = v
        return tuple(np.array(x.value, dtype=x.aval.dtype) if kind == "lit" else vals[x]
                     for kind, x in outs)
    return run


def _unsupported_dtypes(ir) -> set:
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


