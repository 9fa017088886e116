"""Staging: how a transformed function runs at the top level.

Inside a trace, a transform just emits IR. At the top level it either runs in eager mode (a root
eager builder: every op computed as it is recorded) or is traced once per signature (pytree
structure, shapes, dtypes, static values) into an IR that is compiled and cached. This module
owns that dispatch, the signature cache and `cache_info()`.
"""
from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass, field

import numpy as np

from .config import anomaly_enabled, eager_enabled
from .ir import IR, dce
from .pytree import tree_flatten, tree_unflatten
from .trace import Builder, Tracer, aval_of, current_builder, eval_ir

_SCALARS = (bool, int, float)


def backend() -> str:
    """`numba` (default) or `interpret` (the NumPy interpreter; set TRACEGRAD_BACKEND=interpret)."""
    return os.environ.get("TRACEGRAD_BACKEND", "numba")


def compile_ir(ir: IR, check_finite: bool = False):
    """A callable running `ir` on its (non-constant) inputs, returning the list of outputs.

    With `check_finite`, the first equation producing NaN/Inf raises AnomalyError.
    """
    from .passes import inline_calls
    ir = inline_calls(ir)   # custom-derivative call equations: their sub-IRs, inlined (no lowering)
    if backend() == "interpret":
        consts = [c for _, c in ir.consts]
        inputs = ir.inputs

        flat_ir = IR(inputs + tuple(v for v, _ in ir.consts), (), ir.eqns, ir.outputs)

        def run(*args):
            return [np.asarray(o) for o in eval_ir(flat_ir, *args, *consts)]
        run.source = None
        return run
    import compiler
    return compiler.compile_ir(ir, check_finite=check_finite)


def param_names(fun) -> list:
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def check_leaf(leaf, where: str):
    if isinstance(leaf, (np.ndarray, np.generic, Tracer)) or type(leaf) in _SCALARS:
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
    """An argument the fast signature does not handle (the general path takes over)."""


_ND = np.ndarray


def _fast_signature(args, leaves: list, key: list):
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
            _fast_signature(a, leaves, key)
        elif t is float or t is int or t is bool:
            leaves.append(np.asarray(a))
            key.append(t)
        elif t is dict:
            ks = sorted(a)
            key.append(tuple(ks))
            _fast_signature([a[k] for k in ks], leaves, key)
        elif isinstance(a, np.generic):
            leaves.append(np.asarray(a))
            key.append(())
            key.append(a.dtype)
        else:
            raise _Unusual


@dataclass
class CacheInfo:
    hits: int = 0
    misses: int = 0
    reasons: list = field(default_factory=list)

    def __repr__(self):
        return f"CacheInfo(hits={self.hits}, misses={self.misses}, reasons={self.reasons})"


class _Entry:
    __slots__ = ("ir", "run", "out_tree", "source", "finish")

    def __init__(self, ir, run, out_tree):
        self.ir, self.run, self.out_tree = ir, run, out_tree
        self.source = getattr(run, "source", None)
        if out_tree.nodetype is None:
            self.finish = lambda outs: outs[0]
        else:
            self.finish = lambda outs: tree_unflatten(out_tree, outs)


class Staged:
    """A function that is traced per signature and compiled (or run eagerly in eager mode)."""

    def __init__(self, fun, static_argnums=(), static_argnames=(), name=None, names_from=None):
        if not callable(fun):
            raise TypeError(f"expected a callable, got {type(fun).__name__}")
        self.fun = fun
        self.name = name or getattr(fun, "__name__", "function")
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self._names = param_names(names_from or fun)
        self._cache: dict = {}
        self._fast: dict = {}       # flat signature -> entry, for the common all-array call
        self._latest = None
        self._info = CacheInfo()
        functools.update_wrapper(self, names_from or fun, updated=())

    # ------------------------------------------------------------ signature
    def _arg_name(self, i: int) -> str:
        return self._names[i] if i < len(self._names) else f"args[{i}]"

    def _split(self, args, kwargs):
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
        return dyn, dyn_names, dyn_kw, static, static_pos

    def _leaves(self, dyn, dyn_names, dyn_kw):
        leaves, tree = tree_flatten((dyn, dyn_kw))
        # name each leaf by its parameter for error messages and cache reasons
        names = []
        for name, a in list(zip(dyn_names, dyn)) + sorted(dyn_kw.items()):
            sub = tree_flatten(a)[0]
            names += [name if len(sub) == 1 else f"{name}[{j}]" for j in range(len(sub))]
        for leaf, name in zip(leaves, names):
            check_leaf(leaf, f"argument '{name}' of {self.name}")
        return leaves, tree, names

    @staticmethod
    def _leaf_sig(leaf):
        if type(leaf) in _SCALARS:
            return ((), np.asarray(leaf).dtype, True)
        return (leaf.shape, leaf.dtype, False)

    # ------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        if current_builder() is not None:
            return self.fun(*args, **kwargs)
        if not kwargs and not self.static_argnums and not eager_enabled():
            leaves, key = [], [anomaly_enabled()]
            try:
                _fast_signature(args, leaves, key)
            except _Unusual:
                pass
            else:
                key = tuple(key)
                entry = self._fast.get(key)
                if entry is not None:
                    self._info.hits += 1
                    return entry.finish(entry.run(*leaves))
                out = self._call(args, kwargs)
                self._fast[key] = self._latest
                return out
        return self._call(args, kwargs)

    def _call(self, args, kwargs):
        dyn, dyn_names, dyn_kw, static, static_pos = self._split(args, kwargs)
        leaves, tree, names = self._leaves(dyn, dyn_names, dyn_kw)
        if eager_enabled():
            return self._run_eager(args, kwargs, leaves, tree, static_pos)
        key = (tree, tuple(self._leaf_sig(l) for l in leaves), static, anomaly_enabled())
        entry = self._cache.get(key)
        if entry is None:
            self._info.misses += 1
            self._info.reasons.append(self._why(key, names))
            entry = self._trace(args, kwargs, leaves, tree, static_pos)
            self._cache[key] = entry
        else:
            self._info.hits += 1
        self._latest = entry
        return entry.finish(entry.run(*[np.asarray(l) if type(l) in _SCALARS else l for l in leaves]))

    def _rebuild(self, args, kwargs, tree, flat, static_pos):
        dyn, dyn_kw = tree_unflatten(tree, flat)
        it = iter(dyn)
        full = [a if i in static_pos else next(it) for i, a in enumerate(args)]
        kw = {k: (v if k in self.static_argnames else dyn_kw[k]) for k, v in kwargs.items()}
        return full, kw

    def _run_eager(self, args, kwargs, leaves, tree, static_pos):
        with Builder(eager=True) as root:
            flat = [new_root_input(root, l) for l in leaves]
            full, kw = self._rebuild(args, kwargs, tree, flat, static_pos)
            out = self.fun(*full, **kw)
        out_leaves, out_tree = tree_flatten(out)
        return tree_unflatten(out_tree, [unwrap_output(o, f"output of {self.name}") for o in out_leaves])

    def trace_ir(self, args, kwargs, leaves, tree, static_pos):
        with Builder(eager=False) as root:
            flat = [new_root_input(root, l) for l in leaves]
            full, kw = self._rebuild(args, kwargs, tree, flat, static_pos)
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

    def _trace(self, args, kwargs, leaves, tree, static_pos):
        ir, out_tree = self.trace_ir(args, kwargs, leaves, tree, static_pos)
        return _Entry(ir, compile_ir(ir, check_finite=anomaly_enabled()), out_tree)

    def _why(self, key, names) -> str:
        """Why `key` missed: the difference from the most similar signature seen before."""
        if not self._cache:
            return "first call"
        tree1, sig1, static1, anom1 = key
        same_tree = [k for k in self._cache if k[0] == tree1]
        tree0, sig0, static0, anom0 = (same_tree or list(self._cache))[-1]
        if tree0 != tree1:
            return f"argument structure changed: {tree0} -> {tree1}"
        for name, a, b in zip(names, sig0, sig1):
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
    def _entry_for(self, args, kwargs):
        dyn, dyn_names, dyn_kw, static, static_pos = self._split(args, kwargs)
        leaves, tree, names = self._leaves(dyn, dyn_names, dyn_kw)
        key = (tree, tuple(self._leaf_sig(l) for l in leaves), static, anomaly_enabled())
        entry = self._cache.get(key)
        if entry is None:
            ir, out_tree = self.trace_ir(args, kwargs, leaves, tree, static_pos)
            entry = _Entry(ir, None, out_tree)
        return entry, (args, kwargs, leaves, tree, static_pos)

    def ir(self, *args, **kwargs) -> str:
        """The printed IR (forward and backward) compiled for these arguments."""
        return str(self._entry_for(args, kwargs)[0].ir)

    def source(self, *args, **kwargs) -> str:
        """The generated Numba source compiled for these arguments."""
        entry, call = self._entry_for(args, kwargs)
        if entry.run is None:
            entry = self._trace(*call)
        if entry.source is None:
            raise RuntimeError("no generated source: the 'interpret' backend is active "
                               "(TRACEGRAD_BACKEND=interpret)")
        return entry.source

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._info.hits, self._info.misses, list(self._info.reasons))

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)
