"""Tracing: `Tracer` values, the `Builder` that records equations, and `bind`.

A Builder records equations into an IR. The current builder lives in a ContextVar; builders nest
(a transform traced inside another opens a child builder, and a tracer of an enclosing builder used
inside becomes an implicit input of the child: childtrace.py). In eager mode a builder also computes every
equation's value as it is recorded, so Python code sees concrete values (`print`, `if`,
`breakpoint()`), and the recorded equations are what the backward pass and `tg.debug.steps` replay.
With no builder at all, `bind` simply runs the NumPy impl: that is the interpreter.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar

import numpy as np

from .config import _K_NANS, _anomaly_get, _env_flag, _get_raw, anomaly_enabled
from .errors import MissingRuleError, TracerError, check_finite, user_source
from .ir import IR, Aval, Eqn, Lit, Var, scalar_lit
from .primitives import impl_rules, shape_rules

PY_SCALARS = (bool, int, float)   # weakly typed operands (NEP 50), as JAX's weak types
_FOLD_MAX = 1   # constant-fold operations on scalar literals (never materialise arrays)
_F64, _I64, _BOOL = np.float64, np.int64, np.bool_
_builder: ContextVar = ContextVar("tracegrad_builder", default=None)
_source: ContextVar = ContextVar("tracegrad_source", default=None)   # (src, fwd_src) override
_rebind: ContextVar = ContextVar("tracegrad_rebind", default=None)   # {Var: operand}, see rebinding
# `hook(root_builder) -> done(exception or None)`, run when a builder with no parent is entered and
# exited (tracegrad.patching registers the trace-time patches of NumPy entry points here)
ROOT_HOOKS: list = []


_builder_get = _builder.get


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


def _inplace(name):
    def op(self, other):
        raise TypeError(f"in-place `{name}` on an array the function closes over, at {user_source(2)}: "
                        f"inside a traced function it would write into your array, which the trace "
                        f"reads at every call; use the returned value instead (x = x + y rebinds)")
    return op


class EnvTracer(Tracer):
    """The tracer standing for a closed-over array while its function is traced (staging.py
    substitutes it in the array's slot). In-place operators on it are errors, as writing a traced
    value into a NumPy array is in eager mode."""
    __slots__ = ()
    __iadd__, __isub__, __imul__ = _inplace("+="), _inplace("-="), _inplace("*=")
    __itruediv__, __ifloordiv__, __imod__ = _inplace("/="), _inplace("//="), _inplace("%=")
    __ipow__, __imatmul__ = _inplace("**="), _inplace("@=")
    __iand__, __ior__, __ixor__ = _inplace("&="), _inplace("|="), _inplace("^=")


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
        # id(closed-over array) -> the root input standing for it (set by staging for a trace whose
        # closed-over arrays are run-time inputs; children inherit it)
        self.env = None if self.parent is None else self.parent.env
        self.final = False      # a root whose equations nothing differentiates (eager top level)
        self._producers: dict = {}      # Var -> the recorded equation computing it (see producer)
        self._n_indexed = 0

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

    # ------------------------------------------------------------ looking back at what was recorded

    def producer(self, v: Var):
        """The recorded equation of this builder that computes `v` (None for an input, a capture or
        a constant). Equations are only ever appended (or extended in place, keeping their inputs),
        so the index is extended lazily."""
        eqns = self.eqns
        if self._n_indexed < len(eqns):
            index = self._producers
            for e in eqns[self._n_indexed:]:
                for o in e.outs:
                    index[o] = e
            self._n_indexed = len(eqns)
        return self._producers.get(v)

    def captured_tracer(self, v: Var):
        """The enclosing builder's tracer that the implicit input `v` stands for (None if `v` is
        not one)."""
        for cv, t in zip(self.capture_vars, self.captured):
            if cv is v:
                return t
        return None

    def new_input(self, aval: Aval, value=None) -> Tracer:
        v = Var(aval)
        self.inputs.append(v)
        if value is not None:
            self.values[v] = value
        return Tracer(v, self, value)

    def lift(self, x):
        """Turn an operand into an atom of this builder (Var or Lit)."""
        t = type(x)
        if t is float:
            return scalar_lit(_F64(x))
        if t is Tracer or t is EnvTracer:
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
        if isinstance(x, np.ndarray):
            if self.env is not None:
                t = self.env.get(id(x))
                if t is not None:
                    return self.lift(t)
            if x.ndim == 0:
                return Lit(x, x.dtype)
            return self._const(x)
        if isinstance(x, np.generic):
            return scalar_lit(x)
        if t is int or t is bool:
            try:
                return scalar_lit(_I64(x) if t is int else _BOOL(x))
            except OverflowError:
                return Lit(x, np.asarray(x).dtype)
        if isinstance(x, Tracer):
            return self.lift(Tracer(x.node, x.builder, x.value, x.weak))   # (a subclass)
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
    if _builder_get() is None:       # no trace: the impl runs (what bind_at does, without the hops)
        impl = impl_rules.get(prim) or impl_of(prim)
        out = impl(*args, **params) if params else impl(*args)
        a = _anomaly_get()        # (anomaly_enabled(), inlined: this runs for every operation)
        if a or (a is None and (r := _get_raw(_K_NANS)) is not None and _env_flag(r)):
            src, fwd_src = _source.get() or (user_source(2), None)
            check_finite(prim.name, src, fwd_src, args, out if prim.multiple_results else (out,))
        return out
    override = _source.get()
    if override is None:
        return bind_at(prim, args, params, user_source(2), None)
    return bind_at(prim, args, params, override[0], override[1])


# Shape rules are pure functions of (primitive, input avals, params): their results are memoised
# (avals are shared objects with cached hashes, so the key is cheap); bounded, cleared when full.
_SHAPES: dict = {}
_NO_MEMO = ("control", "call")      # (params holding sub-IRs: hashing them prints them)


def out_avals_of(prim, atoms, params, src):
    n = len(atoms)
    if not params:
        key = (prim, atoms[0].aval, atoms[1].aval) if n == 2 else \
            (prim, atoms[0].aval) if n == 1 else (prim, *[a.aval for a in atoms])
    elif prim.family in _NO_MEMO:
        key = None
    else:
        key = (prim, *[a.aval for a in atoms], *params.items())
    if key is not None:
        try:
            hit = _SHAPES.get(key)
        except TypeError:            # an unhashable parameter
            key, hit = None, None
        if hit is not None:
            return hit
    rule = shape_rules.get(prim)
    if rule is None:
        raise MissingRuleError(f"primitive '{prim.name}' has no shape rule (add it in tracegrad/rules/)")
    try:
        out = rule(*[a.aval for a in atoms], **params)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{prim.name}: {e}\n  at {src}") from None
    out = out if prim.multiple_results else (out,)
    if key is not None:
        if len(_SHAPES) > 20_000:
            _SHAPES.clear()
        _SHAPES[key] = out
    return out


_ND = np.ndarray


def bind_at(prim, args, params, src, fwd_src, values=None):
    builder = _builder.get()
    if builder is None:
        ins = [a.value if type(a) is Lit else a for a in args]
        impl = impl_rules.get(prim) or impl_of(prim)
        out = impl(*ins, **params) if params else impl(*ins)
        if anomaly_enabled():
            check_finite(prim.name, src, fwd_src, ins, out if prim.multiple_results else (out,))
        return out
    traced, weak = False, True
    for a in args:
        if isinstance(a, Tracer):
            traced = True
            if not a.weak:
                weak = False
    if not traced and not prim.effectful and prim.foldable and \
            all(np.size(a.value if isinstance(a, Lit) else a) <= _FOLD_MAX for a in args):
        # constant folding: tiny all-constant operations are computed now, not recorded
        ins = [a.value if isinstance(a, Lit) else a for a in args]
        out = impl_of(prim)(*ins, **params)
        outs = out if prim.multiple_results else (out,)
        if all(np.ndim(o) == 0 for o in outs):
            return out
    weak = traced and weak
    atoms = tuple([a.node if type(a) is Tracer and a.builder is builder else builder.lift(a)
                   for a in args])
    out_avals = out_avals_of(prim, atoms, params, src)
    eager = builder.eager
    if eager and values is None:
        vals = builder.values
        ins = [a.value if type(a) is Lit else vals[a] for a in atoms]
        impl = impl_rules.get(prim) or impl_of(prim)
        values = impl(*ins, **params) if params else impl(*ins)
        # (impls may return NumPy scalars or other dtypes for 0-d results: values are exact arrays)
        if not prim.multiple_results:
            dt = out_avals[0].dtype
            if not (type(values) is _ND and values.ndim and values.dtype is dt):
                values = np.asarray(values, dtype=dt)
            values = (values,)
        else:
            values = tuple([v if type(v) is _ND and v.ndim and (v.dtype is a.dtype or v.dtype == a.dtype)
                            else np.asarray(v, dtype=a.dtype) for v, a in zip(values, out_avals)])
        a = _anomaly_get()
        if a or (a is None and (r := _get_raw(_K_NANS)) is not None and _env_flag(r)):
            check_finite(prim.name, src, fwd_src, ins, values)
    if not prim.multiple_results:                   # (the common case, without the loops)
        v = Var(out_avals[0])
        builder.eqns.append(Eqn(prim, atoms, (v,), dict(params) if params else params, src, fwd_src))
        if eager:
            val = builder.values[v] = values[0]
            return Tracer(v, builder, val, weak)
        return Tracer(v, builder, None, weak)
    outs = tuple([Var(a) for a in out_avals])
    builder.eqns.append(Eqn(prim, atoms, outs, dict(params) if params else params, src, fwd_src))
    if eager:
        vals = builder.values
        tracers = []
        for v, val in zip(outs, values):
            vals[v] = val
            tracers.append(Tracer(v, builder, val, weak))
        return tuple(tracers)
    return tuple([Tracer(v, builder, None, weak) for v in outs])


def aval_of(x) -> Aval:
    if isinstance(x, Tracer):
        return x.aval
    arr = np.asarray(x)
    return Aval(arr.shape, arr.dtype)
