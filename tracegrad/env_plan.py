"""Environment walks compiled to straight-line code, one per code object: the fast path of the key.

`environment.walk` visits a function's environment generically (type dispatch, a seen-table, the
budget) at ~1 µs per few nodes. A traced function's environment usually keeps its structure from call
to call (the same globals, the same kinds of values in its cells), so for a function target the walk
is specialised into a Python function (`plan_for(fn)`), generated from the environment as it is
now: `plan(fn, leaves, dyn)` re-reads every slot the walk reads, checks that it still holds what
the static description says (a type and length, a value, an identity by id, a code object), appends
the arrays to `leaves` and their shapes and dtypes to `dyn`, and returns the interned id of the
static description; None when anything differs, and the caller walks generically.

A plan is structural, like the walk: it starts from whatever function object it is given, so every
function made from the same code (a fresh `lambda z: h(z)` per call) shares it. Plans hold no user
object (identities are compared by id; a dead object's id can only lead to an evicted cache entry
and a new trace), so a plan never keeps anything alive; it is dropped with its code object. Each
plan is checked once against the generic walk when made (the same id, arrays and shapes), and a
function whose structure keeps changing is re-planned a few times, then walked generically.
"""
from __future__ import annotations

import re
import weakref

import numpy as np

from . import environment as env
from .environment import (MISSING, USER, VALUE, WALKERS,
                          Walker, _FUNC, _METHOD, _MODULE, _ND, _PARTIAL, _VALUE_TYPES, _kind_of_type,
                          _memo, _plan_of, _user_module, intern)

MAX_REPLANS = 4
MISSES_BEFORE_REPLAN = 16
MAX_SHARED_SHORTCUTS = 16   # call shortcuts made per code object for transform objects built per call
# id(code) -> ([plan or None, misses, replans, {transform key: shared call shortcut}, shortcuts left],
# weakref): see the module doc and staging.Staged._call
_PLANS: dict = {}


class NoPlan(Exception):
    """This environment is not planned (walked generically instead)."""


class _Planner:
    """Generates the plan's source while walking the live environment (mirrors Walker)."""

    def __init__(self, mono=False):
        self.mono = mono        # (mono_for: arrays are checked against their shape and dtype now)
        self.leaf_vars = []
        self.lines = []
        self.consts = {"ND": _ND, "FUNC": _FUNC, "MISSING": MISSING, "tuple": tuple, "list": list,
                       "dict": dict, "MODULE": _MODULE, "METHOD": _METHOD, "PARTIAL": _PARTIAL}
        self.n = 0
        self.seen = {}          # id(obj) -> variable holding it
        self.budget = env.BUDGET

    def var(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def const(self, value) -> str:
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, line):
        self.lines.append("        " + line)

    def fail_unless(self, cond):
        self.emit(f"if not ({cond}): return None")

    def _seen(self, v, x) -> bool:
        prev = self.seen.get(id(v))
        if prev is not None:
            self.fail_unless(f"{x} is {prev}")
            return True
        self.seen[id(v)] = x
        self.budget -= 1
        if self.budget < 0:
            raise NoPlan
        return False

    def identity(self, v, x):
        # Compared by id, holding nothing: an identity-keyed object is watched by the trace cache
        # (its entries go, and EPOCH moves, when it dies) or pinned by the entry that keys on it,
        # so a live object with a dead one's id never reaches that dead one's entry.
        self.fail_unless(f"id({x}) == {id(v)}")

    def visit(self, v, x):
        t = type(v)
        if t is _ND:
            if self._seen(v, x):
                return
            if v.dtype.kind not in "biuf":
                self.identity(v, x)
                return
            if self.mono:
                self.array_check(v, x)
            else:
                self.fail_unless(f"type({x}) is ND and {x}.dtype.kind in 'biuf'")
                self.emit(f"leaves.append({x}); dyn.append({x}.shape); dyn.append({x}.dtype)")
        elif t in _VALUE_TYPES:
            if v is None or v is Ellipsis:
                self.fail_unless(f"{x} is {self.const(v)}")
            else:
                self.fail_unless(f"type({x}) is {self.const(t)} and {x} == {self.const(v)}")
        elif t is _FUNC:
            self.function(v, x)
        elif t is tuple or t is list:
            if self._seen(v, x):
                return
            self.fail_unless(f"type({x}) is {t.__name__} and len({x}) == {len(v)}")
            for i, item in enumerate(v):
                y = self.var()
                self.emit(f"{y} = {x}[{i}]")
                self.visit(item, y)
        elif t is dict:
            self.mapping(v, x)
        elif t is _MODULE:
            self.identity(v, x)
        else:
            self.other(v, t, x)

    def array_check(self, v, x):
        d = self.const(v.dtype)
        self.fail_unless(f"type({x}) is ND and {x}.shape == {self.const(v.shape)} and "
                         f"({x}.dtype is {d} or {x}.dtype == {d})")
        self.leaf_vars.append(x)

    def argument(self, a, x):
        """Checks mirroring staging._flat_signature for one argument."""
        t = type(a)
        if t is _ND:
            self.array_check(a, x)
        elif t is list or t is tuple:
            self.fail_unless(f"type({x}) is {t.__name__} and len({x}) == {len(a)}")
            for i, item in enumerate(a):
                y = self.var()
                self.emit(f"{y} = {x}[{i}]")
                self.argument(item, y)
        elif t is float or t is int or t is bool:
            self.fail_unless(f"type({x}) is {self.const(t)}")
            self.leaf_vars.append(f"asarray({x})")
        elif t is dict:
            self.fail_unless(f"type({x}) is dict and len({x}) == {len(a)}")
            for k in sorted(a):
                y = self.var()
                self.emit(f"{y} = {x}[{self.const(k)}]")
                self.argument(a[k], y)
        elif isinstance(a, np.generic):
            self.fail_unless(f"type({x}) is {self.const(t)}")
            self.leaf_vars.append(f"asarray({x})")
        else:
            raise NoPlan

    def mapping(self, d, x):
        if self._seen(d, x):
            return
        self.fail_unless(f"type({x}) is dict and len({x}) == {len(d)}")
        for k, item in list(d.items()):
            y = self.var()
            self.emit(f"{y} = {x}.get({self.const(k)}, MISSING)")
            self.visit(item, y)

    def function(self, f, x):
        if self._seen(f, x):
            return
        code = f.__code__
        plan = _plan_of(code) if env._PLANS.get(id(code)) is None else env._PLANS[id(code)][0]
        if plan.library:
            self.identity(f, x)
            return
        self.fail_unless(f"type({x}) is FUNC and id({x}.__code__) == {id(code)}")
        defaults = f.__defaults__
        d = self.var()
        self.emit(f"{d} = {x}.__defaults__")
        if defaults:
            self.fail_unless(f"type({d}) is tuple and len({d}) == {len(defaults)}")
            for i, item in enumerate(defaults):
                y = self.var()
                self.emit(f"{y} = {d}[{i}]")
                self.visit(item, y)
        else:
            self.fail_unless(f"not {d}")
        kw = f.__kwdefaults__
        k = self.var()
        self.emit(f"{k} = {x}.__kwdefaults__")
        if kw:
            self.mapping(kw, k)
        else:
            self.fail_unless(f"not {k}")
        cells = f.__closure__
        if cells:
            c = self.var()
            self.emit(f"{c} = {x}.__closure__")
            for i, cell in enumerate(cells):
                try:
                    item = cell.cell_contents
                except ValueError:
                    raise NoPlan from None
                y = self.var()
                self.emit(f"{y} = {c}[{i}].cell_contents")
                self.visit(item, y)
        g = f.__globals__
        gv = self.var()
        self.emit(f"{gv} = {x}.__globals__")
        named = {}
        for name in plan.names:
            item = g.get(name, MISSING)
            y = self.var()
            self.emit(f"{y} = {gv}.get({name!r}, MISSING)")
            if item is MISSING:
                self.fail_unless(f"{y} is MISSING")
            else:
                self.visit(item, y)
            named[name] = (item, y)
        for name, attrs in plan.attrs:
            mod, y = named.get(name, (None, None))
            if y is None:
                mod = g.get(name)
                y = self.var()
                self.emit(f"{y} = {gv}.get({name!r})")
                if type(mod) is _MODULE:
                    self.identity(mod, y)        # (the generic walk reads it without keying it)
                else:
                    self.fail_unless(f"type({y}) is not MODULE")
            if type(mod) is _MODULE and _user_module(mod):
                md = self.var()
                self.emit(f"{md} = {y}.__dict__")
                for a in attrs:
                    item = mod.__dict__.get(a, MISSING)
                    z = self.var()
                    self.emit(f"{z} = {md}.get({a!r}, MISSING)")
                    if item is MISSING:
                        self.fail_unless(f"{z} is MISSING")
                    else:
                        self.visit(item, z)

    def other(self, v, t, x):
        if WALKERS.get(t) is not None:
            raise NoPlan           # (tracegrad's own callables: walked generically)
        if t is _METHOD:
            self.fail_unless(f"type({x}) is METHOD")
            y, z = self.var(), self.var()
            self.emit(f"{y} = {x}.__func__; {z} = {x}.__self__")
            self.visit(v.__func__, y)
            self.visit(v.__self__, z)
            return
        if t is _PARTIAL:
            self.fail_unless(f"type({x}) is PARTIAL")
            ys = [self.var() for _ in range(3)]
            self.emit(f"{ys[0]} = {x}.func; {ys[1]} = {x}.args; {ys[2]} = {x}.keywords")
            self.visit(v.func, ys[0])
            self.visit(v.args, ys[1])
            self.visit(v.keywords, ys[2])
            return
        hit = env._TYPE_KIND.get(id(t))
        kind = hit[0] if hit is not None else _kind_of_type(t)
        if kind == VALUE:
            self.fail_unless(f"type({x}) is {self.const(t)} and {x} == {self.const(v)}")
        elif kind == USER:
            if self._seen(v, x):
                return
            self.identity(v, x)
            d = getattr(v, "__dict__", None)
            if type(d) is dict:
                y = self.var()
                self.emit(f"{y} = {x}.__dict__")
                self.mapping(d, y)
            call = getattr(t, "__call__", None)
            if type(call) is _FUNC:
                y = self.var()
                self.emit(f"{y} = type({x}).__call__")
                self.function(call, y)
        else:
            self.identity(v, x)


def _make(fn):
    """A checked plan for `fn`'s environment as it is now, or None."""
    p = _Planner()
    try:
        p.visit(fn, "f")
    except (NoPlan, RecursionError):
        return None
    leaves = []
    w = Walker(leaves)
    try:
        w.visit(fn)
    except env.TooLarge:
        return None
    sid = intern(tuple(w.key))
    src = ("def plan(f, leaves, dyn):\n    try:\n" + "\n".join(p.lines or ["        pass"]) +
           f"\n    except Exception:\n        return None\n    return {sid}\n")
    glob = dict(p.consts)
    exec(compile(src, f"<tracegrad environment plan of {getattr(fn, '__qualname__', '?')}>", "exec"), glob)
    plan = glob["plan"]
    plan.source = src
    got_leaves, got_dyn = [], []
    if plan(fn, got_leaves, got_dyn) != sid or got_dyn != w.dyn or \
            len(got_leaves) != len(leaves) or any(a is not b for a, b in zip(got_leaves, leaves)):
        return None                     # (the plan must agree with the walk; if not, walk)
    return plan


def mono_for(fn, args, entry, guards):
    """A function `fast(args, s)` for calls of a staged object `s` whose target is `fn` or any
    function made from the same code, with `entry`: `entry`'s result when `guards` hold (builder,
    call mode, cache epoch) and the target's environment and `args` match what `fn`'s and `args`
    are now (structure, identities by id, values, every array's shape and dtype); `MISS`
    otherwise. None when not plannable. It holds no user object (nor the entry, weakly held), so
    every staged object of the same code and transform may share it (staging keeps it in the
    code's plan state); a hit counts in `s._hits`."""
    p = _Planner(mono=True)
    try:
        arg_vars = [p.var() for _ in args]
        if args:         # (another number of arguments raises ValueError: MISS)
            p.lines.append(f"        {''.join(v + ', ' for v in arg_vars)}= args")
        else:
            p.lines.append("        if args: return MISS")
        n_lines = len(p.lines)
        for a, y in zip(args, arg_vars):
            p.argument(a, y)
        arg_lines, arg_leaves = p.lines[n_lines:], p.leaf_vars
        p.lines, p.leaf_vars = p.lines[:n_lines], []
        p.visit(fn, "f")
    except (NoPlan, RecursionError):
        return None
    leaves = ", ".join(p.leaf_vars + arg_leaves)
    body = [line.replace("return None", "return MISS") for line in _fused(p.lines + arg_lines)]
    tree = getattr(entry, "out_tree", None)
    single = tree is not None and tree.nodetype is None         # entry.finish(outs) is outs[0]
    result = f"E.run({leaves})[0]" if single else f"E.finish(E.run({leaves}))"
    # (the entry is held weakly: an evicted entry moves EPOCH, and must not be kept alive by this)
    src = ("def fast(args, s):\n"
           "    if builder() is not None or EPOCH[0] != EPOCH0 or call_mode() != MODE:\n"
           "        return MISS\n"
           "    E = ER()\n"
           "    if E is None:\n"
           "        return MISS\n"
           "    f = s.target\n"
           "    try:\n" + "\n".join(body) + "\n    except Exception:\n        return MISS\n"
           f"    s._hits += 1\n    return {result}\n")
    glob = dict(p.consts)
    glob.update(guards, asarray=np.asarray, ER=weakref.ref(entry), MISS=MISS)
    exec(compile(src, f"<tracegrad call shortcut of {getattr(fn, '__qualname__', '?')}>", "exec"), glob)
    fast = glob["fast"]
    fast.source = src
    return fast


MISS = env.MISSING          # what a shortcut returns when it does not apply


def _fused(lines):
    """Consecutive `if not (c): return None` lines as one `if not (c1 and c2 ...)` (fewer bytecodes
    on the dispatch path)."""
    out, conds = [], []
    head, tail = "        if not (", "): return None"
    for line in lines:
        if line.startswith(head) and line.endswith(tail):
            conds.append(line[len(head):-len(tail)])
            continue
        m = re.fullmatch(r"        (v\d+) = ([^;]+)", line)
        if m and conds:              # (an assignment between checks joins them: `(v := e) or True`)
            conds.append(f"(({m.group(1)} := {m.group(2)}) is {m.group(1)})")
            continue
        if conds:
            out.append(head + " and ".join(f"({c})" for c in conds) + tail)
            conds = []
        out.append(line)
    if conds:
        out.append(head + " and ".join(f"({c})" for c in conds) + tail)
    return out


def plan_for(fn):
    """The plan for function `fn`'s code (made now if needed), or None (walk generically)."""
    code = fn.__code__
    hit = _PLANS.get(id(code))
    if hit is None:
        state = _memo(_PLANS, code, [_make(fn), 0, 0, {}, MAX_SHARED_SHORTCUTS])
    else:
        state = hit[0]
    return state


def note_miss(state, fn):
    """A plan did not match: after repeated misses, plan again from the environment as it is now."""
    state[1] += 1
    if state[1] >= MISSES_BEFORE_REPLAN and state[2] < MAX_REPLANS:
        state[0] = _make(fn)
        state[1] = 0
        state[2] += 1
