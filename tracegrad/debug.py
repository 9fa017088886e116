"""Debugging aids: `steps` (a step debugger over forward and backward equations) and `print`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops
from . import primitives as P
from .ir import Eqn, format_src
from .pytree import tree_flatten
from .staging import check_leaf, new_root_input
from .control_flow import expand_steps, has_steps
from .trace import Builder, Tracer, bind, current_builder
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

    If `fun` returns a floating-point scalar, the backward pass (gradient w.r.t. every floating-point
    argument, as `loss.backward()` would) is run too and its equations follow the forward ones.
    A control-flow equation (loop, cond, checkpoint) is preceded by the equations executed inside
    it, each with `where` naming the iteration or branch ("scan i=3").
    """
    leaves, tree = tree_flatten(args)
    for i, leaf in enumerate(leaves):
        check_leaf(leaf, f"argument {i} of debug.steps")
    with Builder(eager=True) as root:
        ins = [new_root_input(root, l) for l in leaves]
        tr = _Traced(fun, ins, tree, False, getattr(fun, "__name__", "function"))
        if len(tr.outs) == 1 and isinstance(tr.outs[0], Tracer) and tr.outs[0].shape == () \
                and tr.outs[0].dtype.kind == "f":
            tr.backward([ops.ones_like(tr.outs[0])])
    i = 0
    for e in root.eqns:
        ins = tuple(root.value_of(a) for a in e.inputs)
        if has_steps(e):   # loops, branches, checkpoints: the equations executed inside, re-run
            for sub, sub_ins, sub_outs, where in expand_steps(e, ins):
                yield Step(i, sub, sub_ins, sub_outs, where)
                i += 1
        yield Step(i, e, ins, tuple(root.values[v] for v in e.outs))
        i += 1


def print(fmt: str, *args):
    """Print values from inside traced or compiled code: `tg.debug.print("x = {}", x)`."""
    leaves, _ = tree_flatten(args)
    if current_builder() is None and not any(isinstance(l, Tracer) for l in leaves):
        __builtins__["print"](fmt.format(*leaves)) if isinstance(__builtins__, dict) else \
            __builtins__.print(fmt.format(*leaves))
        return
    bind(P.debug_print_p, *leaves, fmt=fmt)
