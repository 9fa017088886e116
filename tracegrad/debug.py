"""Debugging aids: `steps` (a step debugger over forward and backward equations) and `print`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops
from . import primitives as P
from .ir import Eqn, Lit, format_src
from .pytree import tree_flatten
from .staging import check_leaf, new_root_input
from .primitives import checkpoint_p, cond_p, scan_p, while_p
from .trace import Builder, Tracer, bind, current_builder, impl_of, no_trace
from .transforms import _Traced


@dataclass(frozen=True)
class Step:
    """One executed equation with its concrete inputs and outputs."""
    index: int
    eqn: Eqn
    inputs: tuple
    outputs: tuple
    where: str = ""     # inside control flow: e.g. "scan i=3" or "while i=2 > cond branch=1"

    @property
    def primitive(self) -> str:
        return self.eqn.prim.name

    @property
    def phase(self) -> str:
        return self.eqn.phase

    @property
    def source(self) -> str:
        return self.eqn.src

    @property
    def forward_source(self):
        return self.eqn.fwd_src

    @property
    def params(self) -> dict:
        return dict(self.eqn.params)

    def __str__(self):
        def show(v):
            a = np.asarray(v)
            return f"{a.dtype.name}{list(a.shape)} {np.array2string(a, threshold=6, precision=4)}"
        where = format_src(self.source) if self.phase == "forward" else f"bwd of {format_src(self.forward_source)}"
        ins = ", ".join(show(v) for v in self.inputs)
        outs = ", ".join(show(v) for v in self.outputs)
        inside = f" [{self.where}]" if self.where else ""
        return f"[{self.index:3d}] {self.phase:8s} {self.primitive:<12s} {where}{inside}: ({ins}) -> {outs}"


def steps(fun, *args):
    """Run `fun(*args)` eagerly and yield every equation executed, in order, with its values.

    If `fun` returns a floating-point scalar (one element), the backward pass (gradient w.r.t. every floating-point
    argument, as `loss.backward()` would) is run too and its equations follow the forward ones.
    A control-flow equation (loop, cond, checkpoint) is preceded by the equations executed inside
    it, each with `where` naming the iteration or branch ("scan i=3").
    """
    leaves, tree = tree_flatten(args)
    for i, leaf in enumerate(leaves):
        check_leaf(leaf, f"argument {i} of debug.steps")
    with Builder(eager=True) as root:
        ins = [new_root_input(root, l) for l in leaves]
        tr = _Traced(fun, ins, tree, False, getattr(fun, "__name__", "function"), reverse=True)
        if len(tr.outs) == 1 and isinstance(tr.outs[0], Tracer) and tr.outs[0].size == 1 \
                and tr.outs[0].dtype.kind == "f":
            tr.backward([ops.ones_like(tr.outs[0])])
    i = 0
    for e in root.eqns:
        ins = tuple(root.value_of(a) for a in e.inputs)
        if _has_steps(e):   # loops, branches, checkpoints: the equations executed inside, re-run
            for sub, sub_ins, sub_outs, where in _expand_steps(e, ins):
                yield Step(i, sub, sub_ins, sub_outs, where)
                i += 1
        yield Step(i, e, ins, tuple(root.values[v] for v in e.outs))
        i += 1


# ---------------------------------------------------------------- inside control-flow equations

def _has_steps(eqn) -> bool:
    return eqn.prim in _STEPPERS


def _expand_steps(eqn, ins, where=""):
    """Yield `(eqn, inputs, outputs, where)` for every equation executed inside control-flow
    equation `eqn` run on concrete `ins`, in execution order (nested constructs recursively, each
    followed by its own step)."""
    with no_trace():
        yield from _STEPPERS[eqn.prim](eqn, list(ins), where)


def _step_ir(ir, args, where):
    env = dict(zip(ir.inputs, args))
    env.update(ir.consts)
    for e in ir.eqns:
        ins = [a.value if isinstance(a, Lit) else env[a] for a in e.inputs]
        if e.prim in _STEPPERS:
            outs = yield from _STEPPERS[e.prim](e, ins, where + " > " if where else "")
        else:
            outs = impl_of(e.prim)(*ins, **e.params)
            outs = tuple(outs) if e.prim.multiple_results else (outs,)
        yield e, tuple(ins), tuple(outs), where
        env.update(zip(e.outs, outs))
    return [a.value if isinstance(a, Lit) else env[a] for a in ir.outputs]


def _scan_steps(e, ins, where):
    p = e.params
    n = p["length"]
    if n is None:
        n, ins = int(ins[0]), ins[1:]
    nc, nk = p["n_consts"], p["n_carry"]
    consts, carry, xs = ins[:nc], ins[nc:nc + nk], ins[nc + nk:]
    ys = [[None] * n for _ in range(len(p["body"].outputs) - nk)]
    for i in (range(n - 1, -1, -1) if p["reverse"] else range(n)):
        outs = yield from _step_ir(p["body"], [np.int64(i), *consts, *carry, *[x[i] for x in xs]],
                                   f"{where}scan i={i}")
        carry = outs[:nk]
        for y, o in zip(ys, outs[nk:]):
            y[i] = o
    return tuple(carry) + tuple(np.array(y) for y in ys)


def _while_steps(e, ins, where):
    p = e.params
    ncc, nbc = p["n_cond_consts"], p["n_body_consts"]
    cc, bc, carry = ins[:ncc], ins[ncc:ncc + nbc], ins[ncc + nbc:]
    nk = len(carry)
    ys = [[] for _ in range(len(p["body"].outputs) - nk)]
    i = 0
    while True:
        ok = yield from _step_ir(p["cond"], [*cc, *carry], f"{where}while cond i={i}")
        if not ok[0]:
            break
        outs = yield from _step_ir(p["body"], [*bc, *carry], f"{where}while i={i}")
        carry = outs[:nk]
        for y, o in zip(ys, outs[nk:]):
            y.append(o)
        i += 1
    if p["record"]:
        return tuple(carry) + (np.int64(i),) + tuple(np.array(y) for y in ys)
    return tuple(carry)


def _cond_steps(e, ins, where):
    k = int(bool(ins[0]))
    outs = yield from _step_ir(e.params["branches"][k], ins[1:], f"{where}cond branch={k}")
    return tuple(outs)


def _checkpoint_steps(e, ins, where):
    outs = yield from _step_ir(e.params["body"], ins, f"{where}checkpoint")
    return tuple(outs)


_STEPPERS = {scan_p: _scan_steps, while_p: _while_steps, cond_p: _cond_steps,
             checkpoint_p: _checkpoint_steps}



def print(fmt: str, *args):
    """Print values from inside traced or compiled code: `tg.debug.print("x = {}", x)`."""
    leaves, _ = tree_flatten(args)
    if current_builder() is None and not any(isinstance(l, Tracer) for l in leaves):
        __builtins__["print"](fmt.format(*leaves)) if isinstance(__builtins__, dict) else \
            __builtins__.print(fmt.format(*leaves))
        return
    bind(P.debug_print_p, *leaves, fmt=fmt)
