"""Functions recorded in a child builder, and recorded equations replayed into the current one.

`trace_child(fn, inputs)` records `fn` on fresh input tracers of a child builder of the current
context; the `ChildTrace` holds the IR (its inputs: the declared ones, then one per outer tracer it
read), what it captured, and in eager mode the values computed. `replay(args)` inlines the recording
into the current builder: by adoption when the arguments are tracers (the recorded equations join
the builder as they are, only their reads of the inputs renamed), else equation by equation through
`bind_at` (`eval_eqns`), which is also how an IR is evaluated outside any trace (`eval_ir`).
"""
from __future__ import annotations

import numpy as np

from .ir import IR, Aval, Eqn, Lit, Var, dce, free_vars_used
from .trace import PY_SCALARS, Builder, Tracer, _builder, aval_of, bind_at


def eval_eqns(eqns, env: dict, values: dict | None = None) -> None:
    """Replay `eqns` in the current context, reading and extending `env` (Var -> operand).

    Source lines are preserved. `values` (an eager builder's Var -> value) lets eager replay reuse
    the values already computed instead of recomputing them.
    """
    builder = _builder.get()
    reuse = values is not None and builder is not None and builder.eager
    for e in eqns:
        ins = [a if isinstance(a, Lit) else env[a] for a in e.inputs]
        pre = None
        if reuse and all(v in values for v in e.outs):
            pre = tuple(values[v] for v in e.outs)
        out = bind_at(e.prim, ins, e.params, e.src, e.fwd_src, pre)
        outs = out if e.prim.multiple_results else (out,)
        for v, o in zip(e.outs, outs):
            env[v] = o


def read(env: dict, atom):
    return atom.value if isinstance(atom, Lit) else env[atom]


def eval_ir(ir: IR, *args) -> list:
    """The outputs of `ir` on `args`, evaluated in the current context: recorded into the current
    builder (so inlining a sub-IR is evaluating it), or computed with NumPy outside any trace."""
    if len(args) != len(ir.inputs):
        raise TypeError(f"IR takes {len(ir.inputs)} inputs, got {len(args)}")
    env = dict(zip(ir.inputs, args))
    env.update(ir.consts)
    eval_eqns(ir.eqns, env)
    return [read(env, a) for a in ir.outputs]


class ChildTrace:
    """A function recorded in a child builder of the current context.

    `ir`: inputs are the declared inputs, then one stand-in per outer tracer the function read
    (`captured`, in the same order); `ir.consts` are the arrays it closed over. `aux` is whatever
    the function returned beside its output leaves; in eager mode `values` maps the child's
    variables to the values already computed.
    """
    __slots__ = ("ir", "captured", "aux", "values", "n_declared", "extensions", "adopted")

    def __init__(self, ir, captured, aux, values, n_declared, extensions):
        self.ir, self.captured, self.aux, self.values = ir, captured, aux, values
        self.n_declared = n_declared
        self.extensions = extensions
        self.adopted = False

    def replay(self, args) -> dict:
        """Evaluate the recorded equations in the current context on `args` (one per declared
        input); returns the environment (Var -> operand), reusing eager values."""
        env = dict(zip(self.ir.inputs, list(args) + list(self.captured)))
        env.update(self.ir.consts)
        builder = _builder.get()
        if builder is not None and not self.adopted and all(isinstance(a, Tracer) for a in args):
            self._adopt(builder, env)
        else:
            eval_eqns(self.ir.eqns, env, self.values)
        if builder is not None:   # what derivative rules added to equations carries over too
            for first, (key, payload, extra) in self.extensions.items():
                if isinstance(env.get(first), Tracer):
                    builder.note_extension([env[first]], key, payload, [env[t.node] for t in extra])
        return env

    def _adopt(self, builder, env):
        """Replay by adoption: the recorded equations join `builder` as they are (their variables
        are used nowhere else), with only their reads of the inputs renamed, and one tracer per
        variable. What replaying through `bind_at` would give (the same equations, values and weak
        flags; shapes were checked and tiny constants folded when recording), at a fraction of the
        cost. Done once per trace (its variables must not be defined twice)."""
        self.adopted = True
        ir = self.ir
        lift = builder.lift
        rename = {v: lift(env[v]) for v in ir.inputs}
        for v, _ in ir.consts:
            rename[v] = lift(env[v])
        values = self.values
        eager = builder.eager
        bvals = builder.values
        eqns = builder.eqns
        for e in ir.eqns:
            ins = e.inputs
            traced, weak, changed = False, True, False
            for a in ins:
                if type(a) is Var:
                    if a in rename:
                        changed = True
                    op = env[a]
                    if isinstance(op, Tracer):
                        traced = True
                        if not op.weak:
                            weak = False
            if changed:
                e = Eqn(e.prim, tuple([rename.get(a, a) if type(a) is Var else a for a in ins]),
                        e.outs, e.params, e.src, e.fwd_src)
            eqns.append(e)
            weak = traced and weak
            for v in e.outs:
                val = None
                if eager:
                    val = bvals[v] = values[v]
                env[v] = Tracer(v, builder, val, weak)

    def closed(self, n_lead: int | None = None, keep_unused: bool = False):
        """(IR, extras): the IR with no constants and no captures, and the operands to pass for them.

        Captured tracers and closed-over arrays become explicit inputs, inserted after the first
        `n_lead` declared inputs (default: after all of them); unless `keep_unused`, equations
        whose results are not needed and extras nothing reads are dropped.
        """
        ir = self.ir
        n_decl = self.n_declared
        n_lead = n_decl if n_lead is None else n_lead
        declared = list(ir.inputs[:n_decl])
        extra_vars = list(ir.inputs[n_decl:]) + [v for v, _ in ir.consts]
        extras = list(self.captured) + [c for _, c in ir.consts]
        eqns = ir.eqns if keep_unused else dce(IR((), (), ir.eqns, ir.outputs)).eqns
        if not keep_unused:
            used = set(free_vars_used(eqns)) | {a for a in ir.outputs if isinstance(a, Var)}
            keep = [k for k, v in enumerate(extra_vars) if v in used]
            extra_vars = [extra_vars[k] for k in keep]
            extras = [extras[k] for k in keep]
        inputs = tuple(declared[:n_lead] + extra_vars + declared[n_lead:])
        return IR(inputs, (), tuple(eqns), ir.outputs), extras


def trace_child(fn, inputs, *, eager: bool = False, weak=None, reverse: bool = False) -> ChildTrace:
    """Record `fn(*tracers) -> (output leaves, aux)` in a child builder of the current context.

    `inputs` are avals (abstract inputs) or operands (their avals; in eager mode their values too);
    `weak[k]` marks input k as a weakly typed Python scalar (default: operands that are Python
    scalars or weak tracers). Output leaves may be tracers, arrays or Python scalars. `reverse`: the
    recording will be differentiated in reverse mode (eager loops then save their residuals).
    """
    b = Builder(eager=eager, reverse=reverse)
    with b:
        ins = []
        for k, x in enumerate(inputs):
            if isinstance(x, Aval):
                t = b.new_input(x)
            else:
                value = (x.value if isinstance(x, Tracer) else np.asarray(x)) if eager else None
                t = b.new_input(aval_of(x), value)
                t.weak = isinstance(x, Tracer) and x.weak or type(x) in PY_SCALARS
            if weak is not None:
                t.weak = bool(weak[k])
            ins.append(t)
        leaves, aux = fn(*ins)
        outs = tuple(b.lift(x if isinstance(x, Tracer) or type(x) in PY_SCALARS else np.asarray(x))
                     for x in leaves)
    ir = IR(tuple(b.inputs) + tuple(b.capture_vars), tuple(b.consts), tuple(b.eqns), outs)
    return ChildTrace(ir, list(b.captured), aux, b.values if eager else None, len(b.inputs),
                      b.extensions)


