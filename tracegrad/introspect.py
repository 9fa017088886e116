"""What a staged function says about itself: `cache_info()` (hits, misses and why, one record per
traced signature), its IR and generated source for given arguments, and JAX's ahead-of-time
spelling `lower(*args).compile()`. A mixin of `staging.Staged`; introspection never changes what
calls run (an entry made to answer it is not cached).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import trace_cache
from .config import anomaly_enabled, compile_env
from .ir import IR, dce
from .substitution import Record
from .trace import PY_SCALARS

_ENTRIES = trace_cache.ENTRIES


@dataclass
class EntryInfo:
    """One signature: which tier runs it, how long native compilation took, why it is not native."""
    signature: str
    tier: str
    compile_s: float | None
    why: str | None


@dataclass
class CacheInfo:
    hits: int = 0
    misses: int = 0
    reasons: list = field(default_factory=list)
    entries: list = field(default_factory=list)

    def __repr__(self):
        return (f"CacheInfo(hits={self.hits}, misses={self.misses}, reasons={self.reasons}, "
                f"entries={self.entries})")


class Introspection:
    """cache_info, ir, source and lower of a staged function (see the module docstring)."""

    def _why(self, sig, family, names, env, env_key) -> str:
        """Why this call missed: the difference from the most similar entry of this function."""
        seen = trace_cache.family_entries(family)
        if not seen and not self._reasons:
            return "first call"
        if not seen:
            return "new signature"
        same_sig = [e for e in seen if e.sig_key == sig.key]
        if same_sig:
            return _env_change(same_sig[-1], names, env, env_key)
        tree1, sig1, static1, anom1 = sig.key
        same_tree = [e.sig_key for e in seen if e.sig_key[0] == tree1]
        tree0, sig0, static0, anom0 = (same_tree or [e.sig_key for e in seen])[-1]
        if tree0 != tree1:
            return f"argument structure changed: {tree0} -> {tree1}"
        for name, a, b in zip(sig.names, sig0, sig1):
            if a[0] != b[0]:
                return f"{name}: shape {a[0]} -> {b[0]}"
            if a[1] != b[1]:
                return f"{name}: dtype {a[1].name} -> {b[1].name}"
            if a[2] != b[2]:
                kinds = {True: "Python scalar", False: "array"}
                return f"{name}: {kinds[a[2]]} -> {kinds[b[2]]}"
        for (name, a), (_, b) in zip(static0, static1):
            if a != b:
                return f"{name}: static value {a!r} -> {b!r}"
        if anom0 != anom1:
            return f"anomaly detection {'on' if anom1 else 'off'}"
        return "new signature"

    # ------------------------------------------------------------ introspection

    def _probe(self, args, kwargs):
        """(entry, env arrays) for these arguments: the cached entry, else a fresh one that is not
        cached (introspection never changes what calls run)."""
        sig = self._signature(args, kwargs)
        env = []
        w, key = self._general_key(sig, env)
        entry = _ENTRIES.get(key)
        if entry is None:
            rec = None if (self._opaque or self.freeze_closure) else Record()
            if rec is not None:
                self._walk([], [], rec)
            entry = self._trace(sig, env, rec, mode="never")
        return entry, env

    def ir_for(self, args, kwargs) -> IR:
        """The IR for these arguments, closed-over arrays shown as its constants."""
        entry, env = self._probe(args, kwargs)
        if entry.ir is None:
            return self.trace_ir(self._signature(args, kwargs))[0]
        return with_env_consts(entry.ir, env)

    def ir(self, *args, **kwargs) -> str:
        """The printed IR (forward and backward) compiled for these arguments."""
        return str(self.ir_for(args, kwargs))

    def source(self, *args, **kwargs) -> str:
        """The generated Numba source compiled for these arguments."""
        entry, _ = self._probe(args, kwargs)
        if entry.ir is None:
            return f"# not compiled ({entry.why})\n"
        return entry.source()

    def lower(self, *args, **kwargs) -> "Lowered":
        """JAX's ahead-of-time spelling: `cf.lower(*args).compile()` waits for native code."""
        sig = self._signature(args, kwargs)
        env = []
        w, key = self._general_key(sig, env)
        entry = _ENTRIES.get(key)
        if entry is None or (entry.guard is not None and not entry.guard(self, w, env)):
            entry = self._make(sig, key, w, env)
        return Lowered(self, entry, key)

    def cache_info(self) -> CacheInfo:
        key = [self._tk, anomaly_enabled(), compile_env()]
        w = self._walk([], key)
        family = (self._tk, key[2], tuple(w.key[:2]))
        entries = [EntryInfo(_describe(e), e.tier, e.compile_s, e.why)
                   for e in trace_cache.family_entries(family) + list({id(e): e for e in self._eager.values()}.values())]
        return CacheInfo(self._hits, len(self._reasons), list(self._reasons),
                         entries)



def with_env_consts(ir: IR, env) -> IR:
    """`ir` with its first len(env) inputs (closed-over arrays) turned into constants holding `env`."""
    n = len(env)
    if not n:
        return ir
    consts = tuple(zip(ir.inputs[:n], env)) + tuple(ir.consts)
    return dce(IR(ir.inputs[n:], consts, ir.eqns, ir.outputs))


def _env_change(entry, names, env, env_key) -> str:
    old = dict(zip(entry.env_names, entry.env_shapes))
    for name, a in zip(names, env):
        prev = old.get(name)
        if prev is not None and prev[0] != a.shape:
            return f"closure {name}: shape {prev[0]} -> {a.shape}"
        if prev is not None and prev[1] != a.dtype:
            return f"closure {name}: dtype {prev[1].name} -> {a.dtype.name}"
    if entry.env_key != env_key:
        return "what the function reads changed (a closure or global value, function or object)"
    return "closed-over arrays changed (their values were needed while tracing)"


def _describe(entry) -> str:
    _, leaves, static, _ = entry.sig_key
    parts = [f"{np.dtype(dt).name}{list(shape)}" + ("(py)" if py else "") for shape, dt, py in leaves]
    parts += [f"{name}={value!r}" for name, value in static]
    return "(" + ", ".join(parts) + ")"


class Lowered:
    """A staged function at one signature; `compile()` returns its native callable."""

    def __init__(self, staged, entry, key):
        self._staged, self._entry, self._key = staged, entry, key

    def as_text(self) -> str:
        return str(self._entry.ir)

    def compile(self) -> "Compiled":
        if self._entry.ir is None:
            raise NotImplementedError(f"{self._staged.name} has no native code: {self._entry.why}")
        return Compiled(self._staged, self._entry, self._key, self._entry.wait_native())


class Compiled:
    """Native code for one signature, called with the staged function's arguments (the arrays the
    function closes over are read at each call, as for the staged function itself)."""

    def __init__(self, staged, entry, key, native):
        self._staged, self._entry, self._key, self._native = staged, entry, key, native

    def __call__(self, *args, **kwargs):
        sig = self._staged._signature(args, kwargs)
        leaves = []
        w, key = self._staged._general_key(sig, leaves)
        if key != self._key:
            raise TypeError(f"this compiled {self._staged.name} was lowered for other arguments "
                            f"(shapes, dtypes or static values); call {self._staged.name} itself, or "
                            f"lower it for these")
        leaves += [np.asarray(l) if type(l) in PY_SCALARS else l for l in sig.leaves]
        return self._entry.finish(self._native(*leaves))
