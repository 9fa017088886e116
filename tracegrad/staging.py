"""Staging: how a transformed function runs at the top level.

Inside a trace, a transform just emits IR. At the top level it either runs in eager mode (a root
eager builder: every op computed as it is recorded) or is traced once per signature (pytree
structure, shapes, dtypes, static values) into an IR whose `tiers.Entry` runs it: at once on the
interpreter tier, natively once the compiler has built it (see tiers.py). This module owns that
dispatch, the signature cache, `cache_info()`, `lower().compile()`, and the eager fallback: a
function the user did not explicitly `tg.jit` that meets a value-dependent construct while being
traced (a Python `if` on a traced value) runs in eager mode instead, with one warning.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np

from .config import anomaly_enabled, eager_enabled
from .errors import EagerFallbackWarning, TracerError
from .ir import dce
from .pytree import tree_flatten, tree_unflatten
from .tiers import Entry, compile_mode
from .trace import PY_SCALARS, Builder, Tracer, aval_of, current_builder


def param_names(fun) -> list:
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def check_leaf(leaf, where: str):
    if isinstance(leaf, (np.ndarray, np.generic, Tracer)) or type(leaf) in PY_SCALARS:
        if isinstance(leaf, (np.ndarray, np.generic)) and leaf.dtype.kind not in "biuf":
            raise TypeError(f"{where}: arrays of dtype {leaf.dtype} are not supported "
                            f"(use float, int or bool arrays)")
        return leaf
    raise TypeError(f"{where}: expected an array, a scalar or a pytree of them, "
                    f"got {type(leaf).__name__} ({leaf!r:.60})")


def new_root_input(builder: Builder, leaf):
    arr = np.asarray(leaf)
    t = builder.new_input(aval_of(arr), arr if builder.eager else None)
    t.weak = type(leaf) in (int, float)
    return t


def unwrap_output(o, where: str):
    if isinstance(o, Tracer):
        return np.asarray(o.value)
    check_leaf(o, where)
    return np.asarray(o)


class _Unusual(Exception):
    """An argument the flat signature does not handle (the pytree path takes over)."""


_ND = np.ndarray


def _flat_signature(args, leaves: list, key: list):
    """Append `args`' leaves to `leaves` and a flat signature to `key`, in one tight pass.

    Handles arrays, Python scalars, NumPy scalars, lists, tuples and dicts: what training loops pass
    on every call. Anything else raises _Unusual and the general (pytree) path is used instead.
    """
    for a in args:
        t = type(a)
        if t is _ND:
            leaves.append(a)
            key.append(a.shape)
            key.append(a.dtype)
        elif t is list or t is tuple:
            key.append(t)
            key.append(len(a))
            _flat_signature(a, leaves, key)
        elif t is float or t is int or t is bool:
            leaves.append(np.asarray(a))
            key.append(t)
        elif t is dict:
            ks = sorted(a)
            key.append(tuple(ks))
            _flat_signature([a[k] for k in ks], leaves, key)
        elif isinstance(a, np.generic):
            leaves.append(np.asarray(a))
            key.append(())
            key.append(a.dtype)
        else:
            raise _Unusual


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


class _Signature:
    """A call's dynamic leaves, their tree and names, its static arguments, and the cache key."""
    __slots__ = ("args", "kwargs", "leaves", "tree", "names", "static", "static_pos", "key")


class _EagerEntry:
    """A signature that runs in eager mode (a value-dependent construct under implicit compile)."""
    tier, compile_s = "eager", None

    def __init__(self, staged, sig, why):
        self.why = why
        self.ir = None
        self.finish = lambda out: out
        py = [is_py for _, _, is_py in sig.key[1]]    # Python scalars stay weakly typed
        self.run = lambda *leaves: staged._run_eager(
            sig, [l.item() if p else l for l, p in zip(leaves, py)])


class Staged:
    """A function that is traced per signature and run by its signature's `Entry` (or eagerly)."""

    def __init__(self, fun, static_argnums=(), static_argnames=(), name=None, names_from=None,
                 compile=None, explicit=False):
        if not callable(fun):
            raise TypeError(f"expected a callable, got {type(fun).__name__}")
        self.fun = fun
        self.name = name or getattr(fun, "__name__", "function")
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.compile = compile_mode(compile) if compile is not None else None
        self.explicit = explicit        # tg.jit: value-dependent Python is an error, not a fallback
        self._names = param_names(names_from or fun)
        self._cache: dict = {}          # signature key -> Entry
        self._fast: dict = {}           # flat signature -> Entry, for the common all-array call
        self._hits = 0
        self._reasons: list = []
        functools.update_wrapper(self, names_from or fun, updated=())

    # ------------------------------------------------------------ calling

    def __call__(self, *args, **kwargs):
        if current_builder() is not None:
            return self.fun(*args, **kwargs)
        if not kwargs and not self.static_argnums and not eager_enabled():
            leaves, key = [], [anomaly_enabled()]
            try:
                _flat_signature(args, leaves, key)
            except _Unusual:
                pass
            else:
                key = tuple(key)
                entry = self._fast.get(key)
                if entry is None:
                    entry = self._fast[key] = self._entry(self._signature(args, kwargs), count=True)
                else:
                    self._hits += 1
                return entry.finish(entry.run(*leaves))
        sig = self._signature(args, kwargs)
        if eager_enabled():
            return self._run_eager(sig, sig.leaves)
        entry = self._entry(sig, count=True)
        return entry.finish(entry.run(*[np.asarray(l) if type(l) in PY_SCALARS else l
                                        for l in sig.leaves]))

    def _entry(self, sig, count=False):
        entry = self._cache.get(sig.key)
        if entry is not None:
            if count:
                self._hits += 1
            return entry
        if count:
            self._reasons.append(self._why(sig))
        entry = self._cache[sig.key] = self._trace(sig)
        return entry

    def _trace(self, sig, mode=None):
        try:
            ir, out_tree = self.trace_ir(sig)
        except TracerError as e:
            if self.explicit:
                raise
            return self._fall_back(sig, e)
        return Entry(ir, out_tree, anomaly_enabled(), mode or self.compile or compile_mode())

    def _fall_back(self, sig, err):
        first = str(err).split("\n")[0]
        why = f"eager mode: a value-dependent construct while tracing for compilation ({first})"
        warnings.warn(f"{self.name} runs in eager mode (it is not compiled): {first}. Use "
                      f"tnp.where / tg.cond for value-dependent choices, or mark the argument with "
                      f"static_argnums, to compile it; under tg.jit this is an error.",
                      EagerFallbackWarning, stacklevel=4)
        return _EagerEntry(self, sig, why)

    # ------------------------------------------------------------ signature

    def _arg_name(self, i: int) -> str:
        return self._names[i] if i < len(self._names) else f"args[{i}]"

    def _signature(self, args, kwargs) -> _Signature:
        n = len(args)
        static_pos = {i % n if n else i for i in self.static_argnums if -n <= i < n}
        for i in self.static_argnums:
            if not -max(n, 1) <= i < max(n, 1) and i not in (0,):
                raise ValueError(f"static_argnums {i} is out of range for {n} positional arguments")
        dyn = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_names = tuple(self._arg_name(i) for i in range(n) if i not in static_pos)
        static = tuple((self._arg_name(i), args[i]) for i in sorted(static_pos))
        dyn_kw = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        static += tuple(sorted((k, v) for k, v in kwargs.items() if k in self.static_argnames))
        for name, v in static:
            try:
                hash(v)
            except TypeError:
                raise TypeError(f"static argument '{name}' of {self.name} must be hashable, "
                                f"got {type(v).__name__}") from None
        leaves, tree = tree_flatten((dyn, dyn_kw))
        names = []      # each leaf named by its parameter, for errors and cache reasons
        for name, a in list(zip(dyn_names, dyn)) + sorted(dyn_kw.items()):
            sub = tree_flatten(a)[0]
            names += [name if len(sub) == 1 else f"{name}[{j}]" for j in range(len(sub))]
        for leaf, name in zip(leaves, names):
            check_leaf(leaf, f"argument '{name}' of {self.name}")
        sig = _Signature()
        sig.args, sig.kwargs, sig.leaves, sig.tree, sig.names = args, kwargs, leaves, tree, names
        sig.static, sig.static_pos = static, static_pos
        sig.key = (tree, tuple(_leaf_sig(l) for l in leaves), static, anomaly_enabled())
        return sig

    def _rebuild(self, sig, flat):
        dyn, dyn_kw = tree_unflatten(sig.tree, flat)
        it = iter(dyn)
        full = [a if i in sig.static_pos else next(it) for i, a in enumerate(sig.args)]
        kw = {k: (v if k in self.static_argnames else dyn_kw[k]) for k, v in sig.kwargs.items()}
        return full, kw

    def _run_eager(self, sig, leaves):
        with Builder(eager=True) as root:
            flat = [new_root_input(root, l) for l in leaves]
            full, kw = self._rebuild(sig, flat)
            out = self.fun(*full, **kw)
        out_leaves, out_tree = tree_flatten(out)
        return tree_unflatten(out_tree, [unwrap_output(o, f"output of {self.name}") for o in out_leaves])

    def trace_ir(self, sig):
        with Builder(eager=False) as root:
            flat = [new_root_input(root, l) for l in sig.leaves]
            full, kw = self._rebuild(sig, flat)
            out = self.fun(*full, **kw)
            out_leaves, out_tree = tree_flatten(out)
            for o in out_leaves:
                if not isinstance(o, Tracer):
                    check_leaf(o, f"output of {self.name}")
            ir = root.to_ir([o if isinstance(o, Tracer) else np.asarray(o) for o in out_leaves])
            # Under anomaly detection every recorded equation runs (as in eager mode), so a NaN in a
            # forward value that the gradient does not need is still reported where it arises.
            ir = ir if anomaly_enabled() else dce(ir)
        return ir, out_tree

    def _why(self, sig) -> str:
        """Why `sig` missed: the difference from the most similar signature seen before."""
        if not self._cache:
            return "first call"
        tree1, sig1, static1, anom1 = sig.key
        same_tree = [k for k in self._cache if k[0] == tree1]
        tree0, sig0, static0, anom0 = (same_tree or list(self._cache))[-1]
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
        """The entry for these arguments: the cached one, else a fresh one that is not cached
        (introspection never changes what calls run)."""
        sig = self._signature(args, kwargs)
        entry = self._cache.get(sig.key)
        return entry if entry is not None else self._trace(sig, mode="never")

    def ir(self, *args, **kwargs) -> str:
        """The printed IR (forward and backward) compiled for these arguments."""
        return str(self._probe(args, kwargs).ir)

    def source(self, *args, **kwargs) -> str:
        """The generated Numba source compiled for these arguments."""
        entry = self._probe(args, kwargs)
        if entry.ir is None:
            return f"# not compiled ({entry.why})\n"
        return entry.source()

    def lower(self, *args, **kwargs) -> "Lowered":
        """JAX's ahead-of-time spelling: `cf.lower(*args).compile()` waits for native code."""
        sig = self._signature(args, kwargs)
        return Lowered(self, self._entry(sig), sig.key)

    def cache_info(self) -> CacheInfo:
        entries = [EntryInfo(_describe(k), e.tier, e.compile_s, e.why) for k, e in self._cache.items()]
        return CacheInfo(self._hits, len(self._reasons), list(self._reasons), entries)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


def _leaf_sig(leaf):
    if type(leaf) in PY_SCALARS:
        return ((), np.asarray(leaf).dtype, True)
    return (leaf.shape, leaf.dtype, False)


def _describe(key) -> str:
    _, leaves, static, _ = key
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
    """Native code for one signature, called with the staged function's arguments."""

    def __init__(self, staged, entry, key, native):
        self._staged, self._entry, self._key, self._native = staged, entry, key, native

    def __call__(self, *args, **kwargs):
        sig = self._staged._signature(args, kwargs)
        if sig.key != self._key:
            raise TypeError(f"this compiled {self._staged.name} was lowered for other arguments "
                            f"(shapes, dtypes or static values); call {self._staged.name} itself, or "
                            f"lower it for these")
        leaves = [np.asarray(l) if type(l) in PY_SCALARS else l for l in sig.leaves]
        return self._entry.finish(self._native(*leaves))
