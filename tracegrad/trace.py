"""Tracing: `Tracer` values, the `Builder` that records equations, and `bind`.

A Builder records equations into an IR. The current builder lives in a ContextVar; builders nest
(a transform traced inside another opens a child builder, and a tracer of an enclosing builder used
inside becomes an implicit input of the child). In eager mode a builder also computes every
equation's value as it is recorded, so Python code sees concrete values (`print`, `if`,
`breakpoint()`), and the recorded equations are what the backward pass and `tg.debug.steps` replay.
With no builder at all, `bind` simply runs the NumPy impl: that is the interpreter.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar

import numpy as np

from .config import anomaly_enabled
from .errors import MissingRuleError, TracerError, check_finite, user_source
from .ir import IR, Aval, Eqn, Lit, Var, dce, free_vars_used
from .primitives import impl_rules, shape_rules

PY_SCALARS = (bool, int, float)   # weakly typed operands (NEP 50), as JAX's weak types
_FOLD_MAX = 1   # constant-fold operations on scalar literals (never materialise arrays)
_builder: ContextVar = ContextVar("tracegrad_builder", default=None)
_source: ContextVar = ContextVar("tracegrad_source", default=None)   # (src, fwd_src) override
_rebind: ContextVar = ContextVar("tracegrad_rebind", default=None)   # {Var: operand}, see rebinding
# `hook(root_builder) -> done(exception or None)`, run when a builder with no parent is entered and
# exited (tracegrad.patching registers the trace-time patches of NumPy entry points here)
ROOT_HOOKS: list = []


def current_builder():
    return _builder.get()


@contextlib.contextmanager
def no_trace():
    """Run with no current builder: `bind` computes with the NumPy impls and records nothing (what
    an impl or a user callback running inside an eager trace needs)."""
    token = _builder.set(None)
    try:
        yield
    finally:
        _builder.reset(token)


@contextlib.contextmanager
def source_scope(src: str, fwd_src: str | None):
    """Equations bound inside are attributed to `src` (and, if given, are backward of `fwd_src`)."""
    token = _source.set((src, fwd_src))
    try:
        yield
    finally:
        _source.reset(token)


@contextlib.contextmanager
def rebinding(mapping: dict):
    """Inside, a tracer of a finished trace whose Var is in `mapping` stands for the mapped operand.

    Custom derivative rules (tracegrad.custom) run after the trace of the function they belong to
    was inlined into an enclosing one; this lets them use the values they closed over.
    """
    outer = _rebind.get()
    token = _rebind.set(mapping if outer is None else {**outer, **mapping})
    try:
        yield
    finally:
        _rebind.reset(token)


class Tracer:
    """A traced array: an IR variable of one builder, plus its concrete value in eager mode.

    Arithmetic, NumPy protocol and array methods are installed by `tracegrad.numpy`.
    """
    __slots__ = ("node", "builder", "value", "weak")
    __array_priority__ = 1000

    def __init__(self, node: Var, builder: "Builder", value=None, weak=False):
        self.node = node
        self.builder = builder
        self.value = value
        self.weak = weak   # from a Python scalar: promotes like one (NEP 50), as JAX's weak types

    aval = property(lambda self: self.node.aval)
    shape = property(lambda self: self.node.aval.shape)
    dtype = property(lambda self: self.node.aval.dtype)
    ndim = property(lambda self: self.node.aval.ndim)
    size = property(lambda self: self.node.aval.size)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object (a 0-d traced array)")
        return self.shape[0]

    __hash__ = object.__hash__

    def _concrete(self, what: str):
        if self.value is not None:
            return self.value
        raise TracerError(
            f"{what} of a traced value {self.aval} at {user_source(3)}: its value is not known while "
            f"the function is being compiled. Use tnp.where / tg.cond for value-dependent choices, "
            f"mark the argument with static_argnums, or run in eager mode (tg.eager()).")

    def __bool__(self):
        return bool(self._concrete("bool()"))

    def __float__(self):
        return float(self._concrete("float()"))

    def __int__(self):
        return int(self._concrete("int()"))

    def __index__(self):
        v = self._concrete("using as an index / int")
        return int(v)

    def __complex__(self):
        return complex(self._concrete("complex()"))

    def __array__(self, dtype=None, copy=None):
        if self.value is not None and self.dtype.kind in "biu":
            # eager integer/bool values carry no gradient: NumPy may use them (`ndarray[indices]`)
            return np.asarray(self.value, dtype)
        raise TracerError(
            f"np.asarray()/np.array() of a traced value {self.aval} at {user_source(2)} would leave "
            f"the graph and silently lose its gradient. Use tnp.asarray (tracegrad.numpy), or "
            f"tg.stop_gradient if a constant is really meant.")

    def __repr__(self):
        if self.value is not None:
            return f"Tracer({np.array2string(np.asarray(self.value), separator=', ')}, dtype={self.dtype})"
        return f"Traced<{self.aval}>"

    def __str__(self):
        if self.value is not None:
            return str(self.value)
        return f"Traced<{self.aval}>"

    def __format__(self, spec):
        if self.value is not None:
            return format(self.value, spec)
        return format(str(self), spec)


class Builder:
    """Records equations (and in eager mode computes them) for one traced function."""

    def __init__(self, eager: bool = False, reverse: bool = False):
        self.parent = _builder.get()
        self.eager = eager
        self.reverse = reverse          # reverse mode will differentiate what is recorded here
        self.inputs: list = []
        self.eqns: list = []
        self.consts: list = []
        self._const_index: dict = {}
        self.captured: list = []        # outer tracers read inside this builder
        self.capture_vars: list = []    # the local input var standing for each
        self._capture_index: dict = {}
        self.values: dict = {}          # eager mode: Var -> ndarray
        self.extensions: dict = {}      # first output Var -> (key, payload, extra output tracers)

    def __enter__(self):
        self._token = _builder.set(self)
        # an outermost trace starts: trace-time patches (tracegrad.patching) go in for its duration
        self._on_exit = [hook(self) for hook in ROOT_HOOKS] if self.parent is None else ()
        return self

    def __exit__(self, *exc):
        _builder.reset(self._token)
        for done in reversed(self._on_exit):
            done(exc[1])
        return False

    def is_ancestor(self, other) -> bool:
        b = self.parent
        while b is not None:
            if b is other:
                return True
            b = b.parent
        return False

    def in_reverse_mode(self) -> bool:
        b = self
        while b is not None:
            if b.reverse:
                return True
            b = b.parent
        return False

    # ------------------------------------------------------------ extending recorded equations
    # A derivative rule may need more from an equation than its outputs (a loop's per-iteration
    # residuals): the equation is given extra outputs once, so the forward work is done once.

    def extension(self, outs):
        """(key, payload, extra tracers) recorded for the equation whose outputs begin with `outs`."""
        return self.extensions.get(outs[0].node) if outs and isinstance(outs[0], Tracer) else None

    def note_extension(self, outs, key, payload, extra):
        self.extensions[outs[0].node] = (key, payload, list(extra))

    def extend_equation(self, outs, key, build):
        """(payload, extra output tracers) for the recorded equation whose outputs are `outs`.

        `build() -> (payload, params, extra_avals)`: the equation is rewritten in place with `params`
        and extra trailing outputs of `extra_avals` (in eager mode computed now); `key(params)` is
        noted with the payload (see `extension`).
        None if `outs` are not exactly the outputs of an equation of this builder, or the equation
        was extended already.
        """
        if self.extension(outs) is not None:
            return None
        idx = self._equation_of(outs)
        if idx is None:
            return None
        payload, params, extra_avals = build()
        e = self.eqns[idx]
        new = tuple(Var(a) for a in extra_avals)
        self.eqns[idx] = Eqn(e.prim, e.inputs, e.outs + new, params, e.src, e.fwd_src)
        values = [None] * len(new)
        if self.eager:
            with no_trace():
                allv = impl_of(e.prim)(*[self.value_of(a) for a in e.inputs], **params)
            values = [np.asarray(v, dtype=a.dtype) for v, a in zip(allv[len(e.outs):], extra_avals)]
            self.values.update(zip(new, values))
        extra = [Tracer(v, self, val) for v, val in zip(new, values)]
        self.note_extension(outs, key(params), payload, extra)
        return payload, extra

    def _equation_of(self, outs):
        if not outs or not all(isinstance(o, Tracer) and o.builder is self for o in outs):
            return None
        first = outs[0].node
        for idx in range(len(self.eqns) - 1, -1, -1):
            e = self.eqns[idx]
            if e.outs and e.outs[0] is first:
                same = len(e.outs) == len(outs) and all(v is o.node for v, o in zip(e.outs, outs))
                return idx if same else None
        return None

    def new_input(self, aval: Aval, value=None) -> Tracer:
        v = Var(aval)
        self.inputs.append(v)
        if value is not None:
            self.values[v] = value
        return Tracer(v, self, value)

    def lift(self, x):
        """Turn an operand into an atom of this builder (Var or Lit)."""
        if isinstance(x, Tracer):
            if x.builder is self:
                return x.node
            if self.is_ancestor(x.builder):
                return self._capture(x)
            stale = _rebind.get()
            if stale is not None and x.node in stale:
                return self.lift(stale[x.node])
            raise TracerError(
                f"a traced value {x.aval} is used outside the transform that created it (it leaked, "
                f"e.g. through a global or a closure kept after the call) at {user_source(3)}")
        if isinstance(x, Lit):
            return x
        if isinstance(x, (np.ndarray, np.generic)) and np.ndim(x) == 0:
            return Lit(x, np.asarray(x).dtype)
        if isinstance(x, np.ndarray):
            return self._const(x)
        if isinstance(x, PY_SCALARS):
            return Lit(x, np.asarray(x).dtype)
        raise TypeError(f"cannot use {type(x).__name__} as an array operand at {user_source(3)}")

    def _capture(self, x: Tracer) -> Var:
        # An enclosing builder's tracer becomes an implicit input here; when this builder's IR is
        # inlined into its parent, the parent lifts the same tracer in turn.
        v = self._capture_index.get(id(x.node))
        if v is None:
            v = Var(x.aval)
            self._capture_index[id(x.node)] = v
            self.captured.append(x)
            self.capture_vars.append(v)
            if x.value is not None:
                self.values[v] = x.value
        return v

    def _const(self, arr: np.ndarray) -> Var:
        hit = self._const_index.get(id(arr))
        if hit is not None and hit[1] is arr:
            return hit[0]
        v = Var(Aval(arr.shape, arr.dtype))
        self._const_index[id(arr)] = (v, arr)
        self.consts.append((v, arr))
        if self.eager:
            self.values[v] = arr
        return v

    def value_of(self, atom):
        return atom.value if isinstance(atom, Lit) else self.values[atom]

    def to_ir(self, outputs) -> IR:
        outs = tuple(self.lift(o) for o in outputs)
        return IR(tuple(self.inputs) + tuple(self.capture_vars), tuple(self.consts),
                  tuple(self.eqns), outs)


def impl_of(prim):
    rule = impl_rules.get(prim)
    if rule is None:
        raise MissingRuleError(f"primitive '{prim.name}' has no impl rule (add it in tracegrad/rules/)")
    return rule


def bind(prim, *args, **params):
    """Record (or, outside any trace, run) `prim` on `args`; returns Tracer(s) or array(s)."""
    override = _source.get()
    if override is None:
        src, fwd_src = user_source(2), None
    else:
        src, fwd_src = override
    return bind_at(prim, args, params, src, fwd_src)


def bind_at(prim, args, params, src, fwd_src, values=None):
    builder = _builder.get()
    if builder is None:
        ins = [a.value if isinstance(a, Lit) else a for a in args]
        out = impl_of(prim)(*ins, **params)
        if anomaly_enabled():
            check_finite(prim.name, src, fwd_src, ins, out if prim.multiple_results else (out,))
        return out
    if not prim.effectful and prim.foldable and \
            not any(isinstance(a, Tracer) for a in args) and \
            all(np.size(a.value if isinstance(a, Lit) else a) <= _FOLD_MAX for a in args):
        # constant folding: tiny all-constant operations are computed now, not recorded
        ins = [a.value if isinstance(a, Lit) else a for a in args]
        out = impl_of(prim)(*ins, **params)
        outs = out if prim.multiple_results else (out,)
        if all(np.ndim(o) == 0 for o in outs):
            return out
    atoms = tuple(builder.lift(a) for a in args)
    rule = shape_rules.get(prim)
    if rule is None:
        raise MissingRuleError(f"primitive '{prim.name}' has no shape rule (add it in tracegrad/rules/)")
    try:
        out_avals = rule(*[a.aval for a in atoms], **params)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{prim.name}: {e}\n  at {src}") from None
    multiple = prim.multiple_results
    out_avals = out_avals if multiple else (out_avals,)
    outs = tuple(Var(a) for a in out_avals)
    builder.eqns.append(Eqn(prim, atoms, outs, dict(params), src, fwd_src))
    traced = [a for a in args if isinstance(a, Tracer)]
    weak = bool(traced) and all(t.weak for t in traced)
    if builder.eager:
        if values is None:
            ins = [builder.value_of(a) for a in atoms]
            values = impl_of(prim)(*ins, **params)
            values = values if multiple else (values,)
            values = tuple(np.asarray(v, dtype=a.dtype) if np.ndim(v) == 0 or
                           np.asarray(v).dtype != a.dtype else v for v, a in zip(values, out_avals))
            if anomaly_enabled():
                check_finite(prim.name, src, fwd_src, ins, values)
        for v, val in zip(outs, values):
            builder.values[v] = val
        tracers = tuple(Tracer(v, builder, val, weak) for v, val in zip(outs, values))
    else:
        tracers = tuple(Tracer(v, builder, None, weak) for v in outs)
    return tracers if multiple else tracers[0]


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


# ---------------------------------------------------------------- tracing a function

class ChildTrace:
    """A function recorded in a child builder of the current context.

    `ir`: inputs are the declared inputs, then one stand-in per outer tracer the function read
    (`captured`, in the same order); `ir.consts` are the arrays it closed over. `aux` is whatever
    the function returned beside its output leaves; in eager mode `values` maps the child's
    variables to the values already computed.
    """
    __slots__ = ("ir", "captured", "aux", "values", "n_declared", "extensions")

    def __init__(self, ir, captured, aux, values, n_declared, extensions):
        self.ir, self.captured, self.aux, self.values = ir, captured, aux, values
        self.n_declared = n_declared
        self.extensions = extensions

    def replay(self, args) -> dict:
        """Evaluate the recorded equations in the current context on `args` (one per declared
        input); returns the environment (Var -> operand), reusing eager values."""
        env = dict(zip(self.ir.inputs, list(args) + list(self.captured)))
        env.update(self.ir.consts)
        eval_eqns(self.ir.eqns, env, self.values)
        builder = _builder.get()
        if builder is not None:   # what derivative rules added to equations carries over too
            for first, (key, payload, extra) in self.extensions.items():
                if isinstance(env.get(first), Tracer):
                    builder.note_extension([env[first]], key, payload, [env[t.node] for t in extra])
        return env

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


def aval_of(x) -> Aval:
    if isinstance(x, Tracer):
        return x.aval
    arr = np.asarray(x)
    return Aval(arr.shape, arr.dtype)
