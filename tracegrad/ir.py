"""The IR: typed SSA equations, each remembering the user's source line.

An `IR` is immutable: inputs, constants (concrete arrays the traced function closed over), a flat
list of `Eqn`s and outputs. Variables are identity objects; the printer names them, so there is no
global counter and the printed text is deterministic (it doubles as the compile-cache key).
Parameters are hashable and may hold nested `IR`s (loop and branch bodies).
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field

import numpy as np

from .primitives import shape_rules

_SHORT_DTYPE = {
    "float16": "f16", "float32": "f32", "float64": "f64",
    "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64", "bool": "bool",
}


_SHORT_BY_DTYPE: dict = {}


def short_dtype(dtype) -> str:
    short = _SHORT_BY_DTYPE.get(dtype)
    if short is None:
        name = np.dtype(dtype).name
        short = _SHORT_BY_DTYPE[dtype] = _SHORT_DTYPE.get(name, name)
    return short


_AVALS: dict = {}      # (shape, dtype) as given -> Aval (bounded, cleared when full)
_CANONICAL = weakref.WeakValueDictionary()   # (shape tuple, np.dtype) -> the live Aval for it


class Aval:
    """Abstract value: the static shape and dtype of an array.

    Immutable, and canonical: at most one live Aval per (shape, dtype), so equality is identity and
    the hash is the object's (tracing compares and hashes avals for every recorded equation).
    """
    __slots__ = ("shape", "dtype", "__weakref__")

    def __new__(cls, shape, dtype):
        try:
            return _AVALS[shape, dtype]
        except (KeyError, TypeError):
            pass
        norm, dt = tuple([int(d) for d in shape]), np.dtype(dtype)
        self = _CANONICAL.get((norm, dt))
        if self is None:
            self = object.__new__(cls)
            object.__setattr__(self, "shape", norm)
            object.__setattr__(self, "dtype", dt)
            _CANONICAL[norm, dt] = self
        try:
            if len(_AVALS) > 20_000:
                _AVALS.clear()
            _AVALS[shape, dtype] = self
        except TypeError:               # (an unhashable shape, e.g. a list)
            pass
        return self

    def __setattr__(self, name, value):
        raise AttributeError("Aval is immutable")

    def __reduce__(self):
        return Aval, (self.shape, self.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_float(self) -> bool:
        return self.dtype.kind == "f"

    def __str__(self):
        return f"{short_dtype(self.dtype)}[{','.join(map(str, self.shape))}]"

    __repr__ = __str__


class Var:
    """An SSA variable. Compared by identity; named only when printed."""
    __slots__ = ("aval",)

    def __init__(self, aval: Aval):
        self.aval = aval

    def __repr__(self):
        return f"Var({self.aval})"


class Lit:
    """A scalar literal with an exact dtype (printed as `0.01:f32`)."""
    __slots__ = ("value", "aval")

    def __init__(self, value, dtype):
        t = type(value)
        if isinstance(value, np.generic) and (value.dtype is dtype or value.dtype == dtype):
            self.value = value
        elif (t is float or t is int or t is bool) and isinstance(dtype, np.dtype):
            self.value = dtype.type(value)         # (as np.asarray(value, dtype)[()], faster)
        else:
            self.value = np.asarray(value, dtype=dtype)[()]
        self.aval = Aval((), self.value.dtype)

    def __str__(self):
        v = self.value
        if self.aval.dtype.kind == "b":
            text = "True" if v else "False"
        elif self.aval.dtype.kind == "f":
            text = repr(float(v))
        else:
            text = str(int(v))
        return f"{text}:{short_dtype(self.aval.dtype)}"

    __repr__ = __str__


_SCALAR_AVALS: dict = {}


def scalar_lit(v) -> Lit:
    """A Lit holding the NumPy scalar `v` (what tracing makes of every Python scalar operand)."""
    lit = object.__new__(Lit)
    lit.value = v
    dt = v.dtype
    a = _SCALAR_AVALS.get(dt)
    if a is None:
        a = _SCALAR_AVALS[dt] = Aval((), dt)
    lit.aval = a
    return lit


Atom = "Var | Lit"


class Eqn:
    """`outs = prim[params](*inputs)`, created at the user's `src` line.

    Equations produced by differentiation carry `fwd_src`, the line of the forward equation whose
    derivative they compute; their phase is then "backward". Treated as immutable (compared by
    identity); a plain slotted class because tracing creates one per recorded operation.
    """
    __slots__ = ("prim", "inputs", "outs", "params", "src", "fwd_src")

    def __init__(self, prim, inputs: tuple, outs: tuple, params: dict, src: str, fwd_src=None):
        self.prim = prim
        self.inputs = inputs
        self.outs = outs
        self.params = params
        self.src = src
        self.fwd_src = fwd_src

    def __repr__(self):
        return (f"Eqn(prim={self.prim!r}, inputs={self.inputs!r}, outs={self.outs!r}, "
                f"params={self.params!r}, src={self.src!r}, fwd_src={self.fwd_src!r})")

    @property
    def phase(self) -> str:
        return "forward" if self.fwd_src is None else "backward"


@dataclass(frozen=True, eq=False)
class IR:
    inputs: tuple          # Var
    consts: tuple          # (Var, ndarray) pairs: closed-over arrays, passed as arguments when compiled
    eqns: tuple            # Eqn
    outputs: tuple         # Var | Lit
    # what is derived from this (immutable) IR once and reused: its printed text, interpreter runners
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __str__(self):
        return pretty(self)

    __repr__ = __str__

    def __hash__(self):
        return hash(pretty(self))

    def __eq__(self, other):
        return isinstance(other, IR) and pretty(self) == pretty(other)

    @property
    def in_avals(self):
        return tuple(v.aval for v in self.inputs)

    @property
    def out_avals(self):
        return tuple(v.aval for v in self.outputs)


class IRError(ValueError):
    """An IR failed `verify`."""


# ---------------------------------------------------------------- printing

def _name(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = letters[r] + s
    return s


_FORMATTED: dict = {}


def format_src(src: str | None) -> str:
    if not src:
        return "?"
    short = _FORMATTED.get(src)
    if short is None:
        path, _, line = src.rpartition(":")
        short = f"{os.path.basename(path)}:{line}"
        if len(_FORMATTED) < 100_000:
            _FORMATTED[src] = short
    return short


def _format_param(v, names, indent) -> str:
    if isinstance(v, IR):
        return "\n" + _pretty(v, names, indent + 4)
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, type) and issubclass(v, np.generic):
        return np.dtype(v).name
    return repr(v)


def _pretty(ir: IR, names: dict, indent: int) -> str:
    pad = " " * indent

    def n(a):
        if isinstance(a, Lit):
            return str(a)
        if a not in names:
            names[a] = _name(len(names))
        return names[a]

    def decl(v):
        return f"{n(v)}:{v.aval}"

    head = " ".join(decl(v) for v in ir.inputs)
    if ir.consts:
        head += " ; " + " ".join(decl(v) for v, _ in ir.consts)
    lines = [f"{pad}{{ lambda {head} ."]
    body = []
    for e in ir.eqns:
        params = ""
        if e.params:
            params = "[" + ", ".join(f"{k}={_format_param(v, names, indent)}"
                                     for k, v in sorted(e.params.items())) + "]"
        lhs = " ".join(decl(v) for v in e.outs)
        rhs = " ".join(n(a) for a in e.inputs)
        where = format_src(e.src) if e.fwd_src is None else f"bwd {format_src(e.fwd_src)}"
        body.append((f"{pad}    {lhs} = {e.prim.name}{params} {rhs}".rstrip(), where))
    width = max((len(t) for t, _ in body if "\n" not in t), default=0)
    for text, where in body:
        lines.append(f"{text.ljust(width)}   # {where}")
    lines.append(f"{pad}  return {' '.join(n(a) for a in ir.outputs)} }}")
    return "\n".join(lines)


def pretty(ir: IR) -> str:
    """Deterministic text form: names are assigned in order of appearance."""
    text = ir.memo.get("text")
    if text is None:
        text = ir.memo["text"] = _pretty(ir, {}, 0)
    return text


# ---------------------------------------------------------------- checking

def verify(ir: IR) -> None:
    """Type-check `ir`: single assignment, defined-before-use, and avals agree with shape rules."""

    defined = set()
    for v in ir.inputs + tuple(v for v, _ in ir.consts):
        if v in defined:
            raise IRError(f"variable {v} bound twice as an input")
        defined.add(v)
    for v, value in ir.consts:
        if np.shape(value) != v.aval.shape or np.asarray(value).dtype != v.aval.dtype:
            raise IRError(f"constant {v} holds {np.shape(value)} {np.asarray(value).dtype}")
    for i, e in enumerate(ir.eqns):
        for a in e.inputs:
            if isinstance(a, Var) and a not in defined:
                raise IRError(f"equation {i} ({e.prim.name}) uses an undefined variable")
        rule = shape_rules.get(e.prim)
        if rule is None:
            raise IRError(f"primitive {e.prim.name} has no shape rule")
        expect = rule(*[a.aval for a in e.inputs], **e.params)
        expect = expect if isinstance(expect, tuple) else (expect,)
        got = tuple(v.aval for v in e.outs)
        if expect != got:
            raise IRError(f"equation {i} ({e.prim.name}) declares {got}, shape rule says {expect}")
        for v in e.outs:
            if v in defined:
                raise IRError(f"equation {i} ({e.prim.name}) rebinds a variable")
            defined.add(v)
        for p in e.params.values():
            if isinstance(p, IR):
                verify(p)
            hash(p)
    for a in ir.outputs:
        if isinstance(a, Var) and a not in defined:
            raise IRError("an output is not defined")


def free_vars_used(eqns) -> list:
    """Variables read by `eqns` (in first-use order)."""
    seen, out = set(), []
    for e in eqns:
        for a in e.inputs:
            if isinstance(a, Var) and a not in seen:
                seen.add(a)
                out.append(a)
    return out


def dce(ir: IR) -> IR:
    """Drop equations whose outputs are never used (all primitives are pure)."""
    live = {a for a in ir.outputs if type(a) is Var}
    kept = []
    add = live.add
    for e in reversed(ir.eqns):
        outs = e.outs
        if (outs[0] in live if len(outs) == 1 else any(v in live for v in outs)) or e.prim.effectful:
            kept.append(e)
            for a in e.inputs:
                if type(a) is Var:
                    add(a)
    consts = tuple((v, c) for v, c in ir.consts if v in live)
    return IR(ir.inputs, consts, tuple(reversed(kept)), ir.outputs)
