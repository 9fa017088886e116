"""Staging: how a transformed function runs at the top level.

Inside a trace, a transform just emits IR. At the top level it either runs in eager mode (a root
eager builder: every op computed as it is recorded) or is traced once per cache key into an IR whose
`tiers.Entry` runs it: at once on the interpreter tier, natively once the compiler has built it (see
tiers.py). The key (trace_cache.py) names the transform, what the function is (its code and what it
reads: environment.py) and the arguments' signature (pytree structure, shapes, dtypes, static
values), so `tg.grad(h)(x)` written inline, or with a fresh `lambda z: h(z)`, reuses the trace.

Arrays the function closes over (cells, defaults, globals, attributes of the user's objects) are
run-time inputs of the trace, read at every call: during the trace their slots hold tracers, so
`W.T @ x` or `W * 2` on a closed-over `W` is recorded, and mutating `W` in place or rebinding it is
seen by the next call, on every tier. When tracing with tracers there fails (the function needs a
closed-over array's value while tracing, say `int(n[0])`), the trace is redone with the arrays as
constants, and that entry checks their contents on every call (a change traces again).
`tg.jit(f, freeze_closure=True)` asks for constants: closed-over arrays are keyed by identity and
baked in (the compiler may specialise on them); mutating one in place is then not seen.

A call computes its key with the function's environment plan (env_plan.py: the walk compiled per
code object) and its arguments' flat signature; a staged object called again with the same
environment and signature takes a shortcut generated for it (`_make_mono`), which checks exactly
that and calls the entry. The shortcut holds no user object, so it is shared through the code
object's plan state: a transform object built per call (`tg.grad(lambda z: f(z, k))(x)` in a loop)
takes on its first call the shortcut an earlier object of the same code and transform made. This module owns that dispatch and the eager fallback: a function the user
did not explicitly `tg.jit` that meets a value-dependent construct while being traced (a Python `if`
on a traced value) runs in eager mode instead, with one warning. `cache_info()` and
`lower().compile()`: introspect.py.
"""
from __future__ import annotations

import contextlib
import inspect
import warnings

import numpy as np

from . import env_plan, trace_cache
from .config import anomaly_enabled, call_mode, compile_env, eager_enabled
from .environment import TooLarge, Walker, WALKERS, intern, walk
from .substitution import Record, substituted
from .errors import EagerFallbackWarning, TracerError
from .introspect import Introspection
from .ir import Aval, dce
from .pytree import tree_flatten, tree_unflatten
from .tiers import Entry, compile_mode
from .trace import PY_SCALARS, Builder, EnvTracer, Tracer, _builder

_ENTRIES = trace_cache.ENTRIES
_EPOCH = trace_cache.EPOCH
_MISS = env_plan.MISS
_ARGS = object()         # separates the environment from the arguments in a key
_FUNC = type(lambda: None)
_TKEYS: dict = {}        # transform description -> small int (keys hash an int, not a nested tuple)
_TKEYS_PLAIN: dict = {}  # the same for the default options, by the transform's own key (Staged.transform)
_PLAIN = ((), (), None, False, False)
CHURN = 8                # traces of one function for one signature after which it is not compiled


def param_names(fun) -> list:
    if type(fun) is _FUNC and not hasattr(fun, "__signature__") and not hasattr(fun, "__wrapped__"):
        # (what inspect.signature says for a plain function, read from its code: 50x faster)
        code = fun.__code__
        return list(code.co_varnames[:code.co_argcount])      # (co_argcount counts positional-only)
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
    t = type(leaf)
    arr = leaf if t is _ND else np.asarray(leaf)
    tracer = builder.new_input(Aval(arr.shape, arr.dtype), arr if builder.eager else None)
    if t is int or t is float:
        tracer.weak = True
    return tracer


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


def _eager_inputs(root, args):
    """`args` with every array (or scalar) leaf replaced by an input tracer of `root`, containers
    rebuilt as `tree_unflatten` rebuilds them (dicts in sorted key order); _Unusual otherwise."""
    out = []
    for a in args:
        t = type(a)
        if t is _ND:
            if a.dtype.kind not in "biuf":
                raise _Unusual
            out.append(new_root_input(root, a))
        elif t is float or t is int or t is bool or isinstance(a, np.generic):
            if t is not float and t is not int and t is not bool and a.dtype.kind not in "biuf":
                raise _Unusual
            out.append(new_root_input(root, a))
        elif t is list or t is tuple:
            out.append(t(_eager_inputs(root, a)))
        elif t is dict:
            ks = sorted(a)
            out.append(dict(zip(ks, _eager_inputs(root, [a[k] for k in ks]))))
        elif a is None:
            out.append(None)
        else:
            raise _Unusual
    return out


class _Signature:
    """A call's dynamic leaves, their tree and names, its static arguments, and the cache key."""
    __slots__ = ("args", "kwargs", "leaves", "tree", "names", "static", "static_pos", "key")


class _EagerEntry:
    """A signature that runs in eager mode (a value-dependent construct under implicit compile)."""
    tier, compile_s = "eager", None

    def __init__(self, staged, sig, why, n_env):
        self.why = why
        self.ir = None
        self.finish = lambda out: out
        py = [is_py for _, _, is_py in sig.key[1]]    # Python scalars stay weakly typed
        self.run = lambda *leaves: staged._run_eager(
            sig, [l.item() if p else l for l, p in zip(leaves[n_env:], py)])


class Staged(Introspection):
    """A function traced per cache key and run by its key's `Entry` (or eagerly).

    `fun` is what runs (in a trace, or when tracing); `target` is the user's function whose
    environment keys the cache (default `fun`), and `tkey` describes the transform around it.
    """

    # per-object state, class-level defaults until first changed (transforms written inline build
    # one object per call: its construction is on their path)
    _names = None
    _hits = 0
    _reasons = ()                   # (a list once there is a reason)
    _opaque = False                 # the environment is too large to walk: key on the object
    _eager = {}                     # key -> _EagerEntry: kept per object (it holds self); see _keep
    _plan = None                    # the target's environment plan (env_plan), once looked up
    _fast = None                    # the shortcut to the last calls' entry (_make_mono)
    _mono_budget = 4                # (re)made at most this often (a polymorphic caller walks)
    _calls = 0
    _name = None
    static_argnums = static_argnames = ()
    compile = None
    explicit = freeze_closure = False

    def __init__(self, fun, static_argnums=(), static_argnames=(), name=None, names_from=None,
                 compile=None, explicit=False, target=None, tkey=("jit",), freeze_closure=False):
        if not callable(fun):
            raise TypeError(f"expected a callable, got {type(fun).__name__}")
        self.fun = fun
        self.target = fun if target is None else target
        self.static_argnums = static_argnums if type(static_argnums) is tuple else \
            (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.static_argnames = static_argnames if type(static_argnames) is tuple else \
            (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.compile = compile_mode(compile) if compile is not None else None
        self.explicit = explicit        # tg.jit: value-dependent Python is an error, not a fallback
        self.freeze_closure = freeze_closure
        self.tkey = tkey
        full = (tkey, self.static_argnums, self.static_argnames, self.compile, explicit, freeze_closure)
        tk = _TKEYS.get(full)
        self._tk = tk if tk is not None else _TKEYS.setdefault(full, len(_TKEYS))
        if full[1:] == _PLAIN and type(self) is Staged:
            _TKEYS_PLAIN.setdefault(tkey, self._tk)
        self._name = name
        wrapped = names_from or fun
        self.__wrapped__ = wrapped
        self.__doc__ = getattr(wrapped, "__doc__", None)

    @classmethod
    def transform(cls, fun, target, tkey):
        """`cls(fun, names_from=target, target=target, tkey=tkey)` with the default options, built
        without normalising them: transforms written inline build one object per call."""
        tk = _TKEYS_PLAIN.get(tkey)
        if tk is None:
            return cls(fun, names_from=target, target=target, tkey=tkey)
        self = object.__new__(cls)
        self.fun = fun
        self.target = self.__wrapped__ = target
        self.tkey = tkey
        self._tk = tk
        self.__doc__ = getattr(target, "__doc__", None)
        return self

    @property
    def name(self) -> str:
        if self._name is None:
            base = getattr(self.__wrapped__, "__name__", "function")
            kind = self.tkey[0]
            self._name = base if kind == "jit" else f"{kind}({base})"
        return self._name

    def __getattr__(self, attr):        # functools.update_wrapper's attributes, on demand
        if attr in ("__name__", "__qualname__", "__module__"):
            return getattr(self.__wrapped__, attr, self.name)
        raise AttributeError(attr)

    # ------------------------------------------------------------ calling

    def __call__(self, *args, **kwargs):
        fast = self._fast
        if fast is not None and not kwargs:
            out = fast(args, self)           # the same environment and signature as last time?
            if out is not _MISS:
                return out
        return self._call(args, kwargs)

    def _call(self, args, kwargs):
        if _builder.get() is not None:
            return self.fun(*args, **kwargs)
        if kwargs or self.static_argnums:
            return self._call_general(args, kwargs)
        st = self._plan if self._plan is not None else self._find_plan()
        shared_missed = False
        if st and self._fast is None:
            # a transform object built per call (`tg.grad(h)(x)` inline): the shortcut another
            # object of the same code and transform made
            shared = st[3].get(self._tk)
            if shared is not None:
                out = shared(args, self)
                if out is not _MISS:
                    self._fast = shared
                    return out
                shared_missed = True
        mode = call_mode()
        if mode is None:
            return self._call_eager(args)
        leaves = []
        key = [self._tk, mode[0], mode[1]]
        w = None
        plan = st[0] if st else None
        sid = plan(self.target, leaves, key) if plan is not None else None
        if sid is None:
            if plan is not None:
                del leaves[:], key[3:]
                env_plan.note_miss(st, self.target)
            w = self._walk(leaves, key)
        else:
            key.insert(3, sid)
        n_env = len(leaves)
        key.append(_ARGS)
        try:
            _flat_signature(args, leaves, key)
        except _Unusual:
            return self._call_general(args, kwargs)
        key = tuple(key)
        entry = _ENTRIES.get(key)
        if entry is None or (entry.guard is not None and not entry.guard(self, w, leaves)):
            entry = self._miss(key, args, kwargs, leaves[:n_env], entry)
        else:
            self._hits += 1
        if entry.guard is None and self._mono_budget > 0 and st:
            self._calls += 1
            # called again, or the first call of an object built per call that found no shared
            # shortcut (each code object makes at most MAX_SHARED_SHORTCUTS of those)
            if self._calls >= 2 or (st[4] > 0 and (shared_missed or self._tk not in st[3])):
                self._make_mono(args, entry, mode, st)
        return entry.finish(entry.run(*leaves))

    def _make_mono(self, args, entry, mode, st):
        """The shortcut for calls like this one (env_plan.mono_for), shared through the plan state
        `st` with every staged object of the same code and transform."""
        self._calls = 0
        self._mono_budget -= 1
        guards = {"builder": _builder.get, "call_mode": call_mode, "EPOCH": _EPOCH,
                  "EPOCH0": _EPOCH[0], "MODE": mode}
        self._fast = env_plan.mono_for(self.target, args, entry, guards)
        if self._fast is not None:
            st[3][self._tk] = self._fast
            st[4] -= 1

    def _find_plan(self):
        """The environment plan of this object's target (False: none; walk generically)."""
        t = self.target
        st = False
        if type(t) is _FUNC and not self._opaque:
            st = env_plan.plan_for(t)
        self._plan = st
        return st

    def _call_general(self, args, kwargs):
        sig = self._signature(args, kwargs)
        if eager_enabled():
            return self._run_eager(sig, sig.leaves)
        leaves = []
        w, key = self._general_key(sig, leaves)
        entry = _ENTRIES.get(key) or self._eager.get(key)
        if entry is None or (entry.guard is not None and not entry.guard(self, w, leaves)):
            entry = self._make(sig, key, w, list(leaves))
        else:
            self._hits += 1
        leaves += [np.asarray(l) if type(l) in PY_SCALARS else l for l in sig.leaves]
        return entry.finish(entry.run(*leaves))

    def _walk(self, leaves, key, record=None):
        if not self._opaque:
            try:
                return walk(self.target, leaves, key, record)
            except TooLarge:
                self._opaque = True
                del leaves[:], key[3:]
        w = Walker(leaves)
        w.identity(self.target)
        key.append(intern(tuple(w.key)))
        return w

    def _general_key(self, sig, leaves):
        key = [self._tk, anomaly_enabled(), compile_env()]
        w = self._walk(leaves, key)
        key.append(_ARGS)
        key.append(sig.key)
        return w, tuple(key)

    def _miss(self, key, args, kwargs, env, stale):
        """The entry for a fast-path key that missed: the general key's, or a new trace."""
        eager = self._eager.get(key)
        if eager is not None:
            return eager
        sig = self._signature(args, kwargs)
        gw, gkey = self._general_key(sig, [])
        w = gw
        entry = (_ENTRIES.get(gkey) or self._eager.get(gkey)) if stale is None else None
        traced = entry is None or (entry.guard is not None and not entry.guard(self, gw, env))
        if traced:
            entry = self._make(sig, gkey, gw, env)
        else:
            self._hits += 1
        self._keep(key, entry, self._watched(w, env))
        if traced:        # the trace changed what the function reads (see _make): key that too
            leaves, after = [], [self._tk, anomaly_enabled(), compile_env()]
            w2 = self._walk(leaves, after)
            after.append(_ARGS)
            _flat_signature(args, leaves, after)
            if tuple(after) != key:
                self._keep(tuple(after), entry, self._watched(w2, leaves[:len(env)]))
        return entry

    def _watched(self, walker, env) -> list:
        """The objects whose death drops an entry: the walk's identity-keyed ones, and frozen
        arrays (compared by identity: watched, so that an id is never another array's)."""
        return walker.objs + list(env) if self.freeze_closure else walker.objs

    def _keep(self, key, entry, objs):
        if isinstance(entry, _EagerEntry):
            if not self._eager:
                self._eager = {}
            self._eager[key] = entry
        else:
            trace_cache.store(key, entry, objs)

    def _make(self, sig, key, w, env):
        """Trace a new entry for `key` (general form) and cache it."""
        family = (self._tk, key[2], tuple(w.key[:2]))
        rec = None if (self._opaque or self.freeze_closure) else Record()
        if rec is not None:
            self._walk([], [], rec)
        names = rec.names if rec is not None else [f"closure array {i}" for i in range(len(env))]
        env_key = key[:key.index(_ARGS)]
        if not self._reasons:
            self._reasons = []
        self._reasons.append(self._why(sig, family, names, env, env_key))
        # A function traced again and again for the same arguments (a closed-over value changing at
        # every call) is not compiled natively any more: each compile would be used once.
        churn = sum(e.sig_key == sig.key for e in trace_cache.family_entries(family)) >= CHURN
        entry = self._trace(sig, env, rec, mode="never" if churn else None)
        if churn and getattr(entry, "why", None) == "compile='never'":
            entry.why = (f"not compiled: traced {CHURN}+ times for these arguments, what the function "
                         f"reads changing every time (pass a changing value as an argument)")
        trace_cache.prepare(entry, family, sig.key, names, env_key)
        entry.env_shapes = [(a.shape, a.dtype) for a in env]
        if self.freeze_closure:           # constants by identity (the IR holds them)
            entry.guard = trace_cache.identity_guard([id(a) for a in env], arrays=True)
        elif getattr(entry, "frozen", False):
            entry.guard = trace_cache.content_guard(len(env), env)
        elif entry.ir is not None and trace_cache.captures_callables(entry.ir):
            entry.guard = trace_cache.identity_guard(w.mutable)
        self._keep(key, entry, self._watched(w, env))
        # A function that changes its own environment while traced (appends to a closed-over list,
        # counts its traces in a `nonlocal`) does so only when traced: its next call finds the
        # environment as the trace left it, so the entry is keyed by that state too.
        env2 = []
        w2, after = self._general_key(sig, env2)
        if after != key:
            self._keep(after, entry, self._watched(w2, env2))
        return entry

    def _trace(self, sig, env, rec, mode=None):
        try:
            try:
                ir, out_tree = self.trace_ir(sig, env, rec)
                frozen = False
            except Exception:
                if rec is None or not env:
                    raise
                # Tracing the closed-over arrays failed (their values are needed while tracing):
                # trace again with them as constants; the entry then checks their contents.
                ir, out_tree = self.trace_ir(sig, env, None)
                frozen = True
        except TracerError as e:
            if self.explicit:
                raise
            return self._fall_back(sig, e, len(env))
        entry = self._new_entry(ir, out_tree, mode or self.compile or compile_mode(), len(env))
        entry.frozen = frozen
        return entry

    def _new_entry(self, ir, out_tree, mode, n_env):
        return Entry(ir, out_tree, anomaly_enabled(), mode)

    def _fall_back(self, sig, err, n_env):
        first = str(err).split("\n")[0]
        why = f"eager mode: a value-dependent construct while tracing for compilation ({first})"
        warnings.warn(f"{self.name} runs in eager mode (it is not compiled): {first}. Use "
                      f"tnp.where / tg.cond for value-dependent choices, or mark the argument with "
                      f"static_argnums, to compile it; under tg.jit this is an error.",
                      EagerFallbackWarning, stacklevel=5)
        return _EagerEntry(self, sig, why, n_env)

    # ------------------------------------------------------------ signature

    def _arg_name(self, i: int) -> str:
        if self._names is None:
            self._names = param_names(self.__wrapped__)
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

    def _call_eager(self, args):
        """Eager mode for positional arrays, lists, tuples and dicts of them (the common case, without
        building a signature); anything else goes the general way."""
        root = Builder(eager=True)
        root.final = True
        try:
            with root:
                full = _eager_inputs(root, args)
        except _Unusual:
            return self._call_general(args, {})
        return self._eager_body(root, full, {})

    def _run_eager(self, sig, leaves):
        root = Builder(eager=True)
        root.final = True
        with root:
            flat = [new_root_input(root, l) for l in leaves]
        full, kw = self._rebuild(sig, flat)
        return self._eager_body(root, full, kw)

    def _eager_body(self, root, full, kw):
        """The function run in eager root builder `root` on its input tracers; concrete outputs."""
        with root:
            out = self.fun(*full, **kw)
        out_leaves, out_tree = tree_flatten(out)
        return tree_unflatten(out_tree, [unwrap_output(o, f"output of {self.name}") for o in out_leaves])

    def trace_ir(self, sig, env=(), record=None):
        """(IR, output tree) of the function at `sig`; the IR's first inputs stand for `env` (the
        closed-over arrays, substituted in their slots of `record`; None: they are constants)."""
        with Builder(eager=False) as root:
            env_in = [root.new_input(Aval(a.shape, a.dtype)) for a in env]
            if record is not None:
                for t in env_in:
                    t.__class__ = EnvTracer
                root.env = {id(a): t for a, t in zip(env, env_in)}
            flat = [new_root_input(root, l) for l in sig.leaves]
            full, kw = self._rebuild(sig, flat)
            scope = substituted(record, env, env_in) if record is not None else contextlib.nullcontext()
            with scope:
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

    def __get__(self, obj, objtype=None):
        import functools
        return self if obj is None else functools.partial(self, obj)


def _walk_staged(walker, staged):
    """A staged function in an environment is described by its transform and its target."""
    walker.key.append(Staged)
    walker.key.append(staged._tk)
    walker.visit(staged.target)


WALKERS[Staged] = _walk_staged


def _leaf_sig(leaf):
    if type(leaf) in PY_SCALARS:
        return ((), np.asarray(leaf).dtype, True)
    return (leaf.shape, leaf.dtype, False)
