"""Random draws in traced functions: `numpy.random`'s functions and the methods of `Generator` and
`RandomState` become `random` equations, so a compiled function draws fresh samples on every call,
from the same generator objects, in the same order and with the same values as eager mode.

Interception (random_intercept.py, with the trace-time patches of patching.py): while a trace is
open, the methods of `Generator` and `RandomState`, the `numpy.random` module functions (bound to
NumPy's global RandomState), `default_rng` and the generator and bit-generator classes in
`numpy.random` are replaced. A call made while a builder records becomes one equation `random[draw=...]` whose `Draw`
param names the generator (`Source`), the method and its static arguments:
  * eager mode: the draw is made on the generator at once and recorded with its value (so
    `tg.debug.steps` shows it), and the caller gets NumPy's own result (a constant it may modify in
    place); calls that return no array (`bytes`, `shuffle` of a NumPy array, `get_state`) run as
    they are;
  * compiling: the draw is made on a copy of the generator, only to learn the result's shape and
    dtype (the generator itself must not advance); `seed`/`set_state` become effects without
    outputs; a call returning something else is a TracerError. A generator (or bit generator) the
    traced function creates (`np.random.default_rng(0)`, `np.random.RandomState(0)`) is created
    again on every run from the same arguments, as eager mode does.
Draws whose parameters are traced are rewritten into a draw with static parameters and traced
arithmetic (draws_params.py). Draws inside loop, cond and checkpoint bodies are refused.

Running (tiers.Entry): `hoist` removes the leading draws from the IR given to the interpreter tier
and to the compiler, making their outputs extra inputs; `with_draws` makes those draws on the live
generators, in IR order, before each call and passes them in. Draws after a `pure_callback` (which
may draw from the same generator) stay in the IR and run in order, by the impl or, natively,
through object mode.

Detection: when a compiling trace ends, the state of NumPy's global RandomState and of every
generator a draw was recorded from must be what it was when the trace began (all trace-time draws
went to copies). A change means a draw tracegrad did not see (`from numpy.random import normal`, a
bound method `rng.normal` taken before tracing, the bit generator used directly): the generator is
put back and a TracerError is raised, so an implicitly compiled function runs eagerly instead of
freezing the samples, and tg.jit names the problem.
"""
from __future__ import annotations

import copy
import ctypes
import inspect
import sys
from contextvars import ContextVar

import numpy as np

from . import bodies
from . import primitives as P
from .errors import TracerError
from .ir import IR, Aval
from .trace import Tracer, bind_at, no_trace

GENERATOR, RANDOM_STATE = np.random.Generator, np.random.RandomState
GLOBAL = np.random.mtrand._rand                   # the RandomState behind np.random.normal & co.
_DEFAULT_RNG = np.random.default_rng
_BIT_GENERATORS = (np.random.MT19937, np.random.PCG64, np.random.PCG64DXSM, np.random.Philox,
                   np.random.SFC64)


def _public_methods(cls) -> dict:
    return {k: v for k, v in vars(cls).items() if not k.startswith("_") and callable(v)}


ORIGINAL = {GENERATOR: _public_methods(GENERATOR), RANDOM_STATE: _public_methods(RANDOM_STATE)}
# Calls that mutate or return something other than an array.
_NOT_DRAWS = {"bytes", "spawn", "get_state", "shuffle"}
_EFFECTS = {"seed", "set_state"}                   # mutate the generator; recorded without outputs


def kind_of(gen):
    return GENERATOR if isinstance(gen, GENERATOR) else RANDOM_STATE


# ---------------------------------------------------------------- what an equation names

class Born:
    """How the traced function created a generator or bit generator: made again on each run."""
    __slots__ = ("obj", "ctor", "args", "kwargs", "label")

    def __init__(self, obj, ctor, args, kwargs, label):
        self.obj, self.ctor, self.args, self.kwargs, self.label = obj, ctor, args, kwargs, label

    def build(self, made: dict):
        obj = made.get(id(self))
        if obj is None:
            args = [a.build(made) if isinstance(a, Born) else a for a in self.args]
            kwargs = {k: (v.build(made) if isinstance(v, Born) else v) for k, v in self.kwargs.items()}
            obj = made[id(self)] = self.ctor(*args, **kwargs)
        return obj


class Source:
    """The generator an equation draws from: a live object, or one the traced function creates."""
    __slots__ = ("obj", "born", "label")

    def __init__(self, obj, born, label):
        self.obj, self.born, self.label = obj, born, label

    def resolve(self, made: dict):
        return self.obj if self.born is None else self.born.build(made)

    def __repr__(self):
        return self.label


def _label(gen, born) -> str:
    if born is not None:
        return born.label
    if gen is GLOBAL:
        return "np.random"
    bit = getattr(gen, "bit_generator" if isinstance(gen, GENERATOR) else "_bit_generator", None)
    return f"{type(gen).__name__}({type(bit).__name__ if bit is not None else ''})"


def _short(v) -> str:
    if isinstance(v, (np.ndarray, Tracer)):
        return f"<{Aval(np.shape(v), v.dtype)}>"
    if isinstance(v, Born):
        return v.label
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"<{type(v).__name__} of {len(v)}>"
    return repr(v)


def describe_call(name, args, kwargs) -> str:
    return f"{name}({', '.join([_short(a) for a in args] + [f'{k}={_short(v)}' for k, v in kwargs.items()])})"


class Draw:
    """The `draw` param of a `random` equation: `source.method(*args, **kwargs)`, its result's aval
    (None for an effect without output). Compared by identity."""
    __slots__ = ("source", "kind", "method", "args", "kwargs", "aval")

    def __init__(self, source, kind, method, args, kwargs, aval):
        self.source, self.kind, self.method = source, kind, method
        self.args, self.kwargs, self.aval = tuple(args), dict(kwargs), aval

    def run(self, made: dict):
        gen = self.source.resolve(made)
        out = ORIGINAL[self.kind][self.method](gen, *self.args, **self.kwargs)
        return None if self.aval is None else np.asarray(out, self.aval.dtype)

    def __call__(self):
        """The draw as compiled code calls it (object mode): a tuple of arrays."""
        v = self.run(_made())
        return () if v is None else (v,)

    def __repr__(self):
        return f"{self.source.label}.{describe_call(self.method, self.args, self.kwargs)}"


_MADE: ContextVar = ContextVar("tracegrad_made_generators", default=None)


def _made() -> dict:
    """Generators the running function created (one set per call, see with_draws)."""
    made = _MADE.get()
    return {} if made is None else made


# ---------------------------------------------------------------- one session per root trace

class _Session:
    def __init__(self, eager: bool):
        self.eager = eager
        self.sources: dict = {}      # id(generator) -> Source
        self.shadows: dict = {}      # id(generator) -> copy the trace-time draws are made on
        self.snapshots: dict = {}    # id(generator) -> (generator, state when first seen)
        self.born: dict = {}         # id(object) -> Born

    def source(self, gen) -> Source:
        s = self.sources.get(id(gen))
        if s is None:
            born = self.born.get(id(gen))
            s = self.sources[id(gen)] = Source(gen, born, _label(gen, born))
            if born is None and not self.eager:
                self.snapshot(gen)
        return s

    def snapshot(self, gen):
        if id(gen) not in self.snapshots:
            self.snapshots[id(gen)] = (gen, _get_state(gen))

    def target(self, gen):
        """What a trace-time draw runs on: the generator in eager mode (the draw is real), else a
        copy (also of a generator the trace created: it may share a live bit generator)."""
        if self.eager:
            return gen
        shadow = self.shadows.get(id(gen))
        if shadow is None:
            self.source(gen)
            with no_trace():                # (its __reduce__ calls get_state)
                shadow = self.shadows[id(gen)] = copy.deepcopy(gen)
        return shadow

    def note_born(self, obj, ctor, args, kwargs, name):
        args = tuple(self.born.get(id(a), a) for a in args)
        kwargs = {k: self.born.get(id(v), v) for k, v in kwargs.items()}
        self.born[id(obj)] = Born(obj, ctor, args, kwargs, describe_call(name, args, kwargs))

    def check(self):
        for gen, state in self.snapshots.values():
            if _frozen(_get_state(gen)) != _frozen(state):
                _set_state(gen, state)          # as if the trace had not run
                raise TracerError(
                    f"the state of {_label(gen, None)} changed while a function was traced for "
                    f"compilation, but tracegrad recorded no draw from it: a NumPy random function "
                    f"was called through a reference tracegrad cannot intercept (`from numpy.random "
                    f"import normal`, a bound method such as `draw = rng.normal` taken before "
                    f"tracing, the bit generator used directly, or compiled code). Its samples would "
                    f"be frozen into the compiled function. Call the generator at the call site "
                    f"(`np.random.normal(...)`, `rng.normal(...)`), or run in eager mode (tg.eager()).")


def _bit_generator(gen):
    return gen._bit_generator if isinstance(gen, RANDOM_STATE) else gen.bit_generator


_MT_STATE_BYTES = 624 * 4 + 4       # numpy's mt19937_state: uint32 key[624]; int pos


def _get_state(gen):
    """A generator's state, cheaply: MT19937's (NumPy's global RandomState, ~100 us through
    `.state`) as the bytes of its C struct, other bit generators' `.state` dicts. (A RandomState's
    cached second normal deviate is not part of it.)"""
    bit = _bit_generator(gen)
    if isinstance(bit, np.random.MT19937):
        return ctypes.string_at(bit.ctypes.state_address, _MT_STATE_BYTES)
    return bit.state


def _set_state(gen, state):
    bit = _bit_generator(gen)
    if isinstance(state, bytes):
        ctypes.memmove(bit.ctypes.state_address, state, _MT_STATE_BYTES)
    else:
        bit.state = state


def _frozen(obj):
    if isinstance(obj, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in obj.items()))
    if isinstance(obj, np.ndarray):
        return (obj.dtype.str, obj.shape, obj.tobytes())
    return obj


_SESSION: ContextVar = ContextVar("tracegrad_draw_session", default=None)


def _on_root(builder):
    session = _Session(builder.eager)
    if not session.eager:
        session.snapshot(GLOBAL)
    token = _SESSION.set(session)

    def done(exc):
        _SESSION.reset(token)
        if exc is None and not session.eager:
            session.check()
    return done


# ---------------------------------------------------------------- recording a call

_BODY_CODE = bodies.trace_closed.__code__


def _in_body() -> bool:
    f = sys._getframe(2)
    while f is not None:
        if f.f_code is _BODY_CODE:
            return True
        f = f.f_back
    return False


def has_tracer(x) -> bool:
    if isinstance(x, Tracer):
        return True
    if isinstance(x, (list, tuple)):
        return any(has_tracer(e) for e in x)
    if isinstance(x, dict):
        return any(has_tracer(e) for e in x.values())
    return False


def draw(session, gen, kind, name, args, kwargs, src, where):
    """Record `gen.name(*args, **kwargs)` with static arguments; returns its Tracer (or, for an
    effect, what NumPy returns)."""
    mutates_argument = name == "shuffle" or kwargs.get("out") is not None
    if not session.eager and (mutates_argument or (name in _NOT_DRAWS)):
        what = "changes its argument in place" if mutates_argument else "does not return an array"
        hint = " Use `x = rng.permutation(x)` instead of shuffle." if name == "shuffle" else ""
        raise TracerError(f"{where} {what}: it would run once, while the function is traced, and "
                          f"not on each call of the compiled function.{hint} Call it outside the "
                          f"traced function, or run in eager mode (tg.eager()).")
    target = session.target(gen)
    with no_trace():
        result = ORIGINAL[kind][name](target, *args, **kwargs)
    numeric = isinstance(result, (np.ndarray, np.generic, int, float)) and \
        np.asarray(result).dtype.kind in "biuf"
    if session.eager and (not numeric or mutates_argument):
        return result                        # made for real; nothing to record
    if not numeric:
        if name not in _EFFECTS:
            raise TracerError(f"{where} returns {type(result).__name__}, not a numeric array; it "
                              f"cannot be drawn on each call of a compiled function")
        bind_at(P.random_p, (), {"draw": Draw(session.source(gen), kind, name, args, kwargs, None)},
                src, None)
        return result
    arr = np.asarray(result)
    d = Draw(session.source(gen), kind, name, args, kwargs, Aval(arr.shape, arr.dtype))
    if session.eager:
        # recorded (tg.debug.steps shows it), but the caller gets NumPy's own result: a sample
        # is a constant, which plain NumPy code may modify in place
        bind_at(P.random_p, (), {"draw": d}, src, None, (arr,))
        return result
    (out,) = bind_at(P.random_p, (), {"draw": d}, src, None)
    if type(result) in (int, float):        # NumPy returned a Python scalar: it promotes weakly
        out = Tracer(out.node, out.builder, out.value, True)
    return out


# ---------------------------------------------------------------- running: hoisting the draws

def _runs_python(eqn) -> bool:
    """Could `eqn` run user Python (a pure_callback that may draw too) or draw itself?"""
    if eqn.prim in (P.callback_p, P.random_p):
        return True
    for v in eqn.params.values():
        for sub in (v if isinstance(v, tuple) else (v,)):
            if isinstance(sub, IR) and any(_runs_python(e) for e in sub.eqns):
                return True
    return False


def hoist(ir: IR):
    """(IR, draws): `ir` without the draws that come before anything else that may run Python, their
    outputs now trailing inputs, and those draws in order (`ir` itself and () if it has none)."""
    if not any(e.prim is P.random_p for e in ir.eqns):
        return ir, ()
    eqns, inputs, draws = [], [], []
    blocked = False
    for e in ir.eqns:
        if e.prim is P.random_p and not blocked:
            draws.append(e.params["draw"])
            inputs.extend(e.outs)
            continue
        blocked = blocked or _runs_python(e)
        eqns.append(e)
    return IR(ir.inputs + tuple(inputs), ir.consts, tuple(eqns), ir.outputs), tuple(draws)


def with_draws(run, draws, ir: IR):
    """`run`, called with the hoisted draws made first (on the live generators, in order); a
    function that creates generators gets fresh ones on every call."""
    left = any(e.prim is P.random_p for e in ir.eqns)
    if not draws and not left:
        return run

    def run_drawing(*args):
        made = {}
        token = _MADE.set(made) if left else None
        try:
            extra = [v for v in (d.run(made) for d in draws) if v is not None]
            return run(*args, *extra)
        finally:
            if token is not None:
                _MADE.reset(token)
    run_drawing.source = getattr(run, "source", None)
    return run_drawing


def signature_of(kind, name) -> inspect.Signature:
    return _SIGNATURES.get((kind, name)) or _SIGNATURES.setdefault(
        (kind, name), inspect.signature(ORIGINAL[kind][name]))


_SIGNATURES: dict = {}
