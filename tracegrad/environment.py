"""What a function reads besides its arguments: the part of the trace-cache key that says what the
function *is*, and the arrays it closes over as run-time inputs of its trace.

A traced function reads its closure cells, its default values, the module globals its code loads
(also in nested lambdas and comprehensions, and `module.attr` of the user's own modules), and through
those other functions, containers and objects. `walk(fn, leaves, key)` visits all of that in a fixed
order and describes it:

  NumPy arrays              appended to `leaves`: they are run-time inputs of the trace, read at
                            every call (never frozen), keyed by shape, dtype and aliasing
  Python and NumPy scalars, keyed by value (another value is another trace)
  strings, None, dtypes
  tuples, lists, dicts      keyed by structure, items walked
  the user's functions      keyed by code object, their environment walked in turn
  bound methods, partials   the function walked, the bound object / arguments walked
  the user's objects        keyed by identity, their instance attributes walked
  anything else             keyed by identity (modules, classes, library functions, generators...)

So `tg.grad(h)` built twice, or a fresh `lambda z: h(z)` made by the same line, reach the same
trace, while a rebound global, a rebound closure variable or another object in a cell is another
key (or, for an array, another run-time input). Objects keyed by identity are only referenced
weakly: trace_cache.watch drops every cache entry naming one when it dies (objects that cannot be
weakly referenced, such as ufuncs, are kept alive by the entry instead). Code objects too.

With a `substitution.Record` the walk also notes where each array sits (the slow path of a trace:
see substitution.py). The walk gives up (`TooLarge`) past `BUDGET` nodes; the caller then keys on
the function object.
"""
from __future__ import annotations

import dis
import functools
import itertools
import os
import sys
import sysconfig
import types
import weakref

import numpy as np

BUDGET = 2000          # nodes visited per walk before giving up (TooLarge)
_ND = np.ndarray
_FUNC = types.FunctionType
_MODULE = types.ModuleType
_METHOD = types.MethodType
_PARTIAL = functools.partial
_VALUE_TYPES = frozenset({int, float, bool, complex, str, bytes, type(None), range, type(Ellipsis)})


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


MISSING = _Marker("<missing>")     # a global name not defined (a builtin, or a NameError to come)
EMPTY = _Marker("<empty cell>")
SEEN = _Marker("<seen>")           # followed by the index of the node met before (aliasing, cycles)
IDENTITY = _Marker("<id>")         # followed by id(obj)
ARRAY = _Marker("<array>")         # an array leaf (its shape and dtype go to the dynamic part)
FUNCTION = _Marker("<function>")   # followed by id(code)


class TooLarge(Exception):
    """The environment has more than BUDGET nodes."""


# ---------------------------------------------------------------- library or user code

def _prefixes():
    here = os.path.dirname(os.path.abspath(__file__))
    paths = {here, os.path.join(os.path.dirname(here), "compiler"), os.path.dirname(os.__file__)}
    for k in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(k)
        if p:
            paths.add(p)
    return tuple(os.path.abspath(p) + os.sep for p in paths) + ("<frozen",)


_LIB = _prefixes()


def _is_library_file(name) -> bool:
    return not name or name.startswith(_LIB)


# Per-id memos (code plans, type kinds), dropped when their object dies. A dict keyed by id is much
# faster to read than a WeakKeyDictionary; the weak reference's callback removes the entry before
# the id can be reused.
_PLANS: dict = {}
_TYPE_KIND: dict = {}


def _memo(table, obj, value):
    key = id(obj)
    try:
        ref = weakref.ref(obj, lambda _, t=table, k=key: t.pop(k, None))
    except TypeError:
        ref = obj                 # not weakly referenceable: keep it (a builtin type)
    table[key] = (value, ref)
    return value


class _Plan:
    """What a code object reads from its globals: names, and `name.attr` of the user's modules."""
    __slots__ = ("names", "attrs", "library")

    def __init__(self, names, attrs, library):
        self.names, self.attrs, self.library = names, attrs, library


_OP = dis.opmap
_LOAD_GLOBAL, _EXTENDED = _OP["LOAD_GLOBAL"], _OP["EXTENDED_ARG"]
_LOAD_ATTRS = {_OP[n] for n in ("LOAD_ATTR", "LOAD_METHOD") if n in _OP}
_CACHE = _OP.get("CACHE", -1)
_RAW_SCAN = sys.version_info[:2] in ((3, 11), (3, 12), (3, 13))


def _global_loads(c):
    """(global name, attribute name or None) for each LOAD_GLOBAL of code `c` (not nested codes),
    read from the raw bytecode (dis.get_instructions costs ~100x more)."""
    if not _RAW_SCAN:
        prev = None
        for ins in dis.get_instructions(c):
            if ins.opname == "LOAD_GLOBAL":
                yield ins.argval, None
                prev = ins.argval
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and prev is not None:
                yield prev, ins.argval
                prev = None
            elif ins.opname not in ("CACHE", "EXTENDED_ARG"):
                prev = None
        return
    code, names = c.co_code, c.co_names
    ops, args = code[0::2], code[1::2]      # (C-speed slices; only LOAD_GLOBALs are visited)
    attr_shift = 0 if sys.version_info[:2] == (3, 11) else 1
    n = len(ops)
    k = ops.find(_LOAD_GLOBAL)
    while k >= 0:
        arg, j, shift = args[k], k - 1, 8
        while j >= 0 and ops[j] == _EXTENDED:
            arg |= args[j] << shift
            j, shift = j - 1, shift + 8
        name = names[arg >> 1]
        yield name, None
        j = k + 1
        while j < n and ops[j] == _CACHE:
            j += 1
        ext = 0
        while j < n and ops[j] == _EXTENDED:
            ext = (ext | args[j]) << 8
            j += 1
        if j < n and ops[j] in _LOAD_ATTRS:
            yield name, names[(ext | args[j]) >> attr_shift]
        k = ops.find(_LOAD_GLOBAL, k + 1)


def _plan_of(code) -> _Plan:
    names, attrs = [], {}

    def scan(c):
        for name, attr in _global_loads(c):
            if attr is None:
                if name not in names:
                    names.append(name)
            else:
                got = attrs.setdefault(name, [])
                if attr not in got:
                    got.append(attr)
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                scan(k)

    library = _is_library_file(code.co_filename)
    if not library:
        scan(code)
    return _memo(_PLANS, code, _Plan(tuple(names), tuple((n, tuple(a)) for n, a in attrs.items()),
                                     library))


USER, LIBRARY, VALUE = 0, 1, 2


def _kind_of_type(t) -> int:
    """USER: an instance of the user's class (identity, attributes walked); VALUE: hashable by value
    (dtypes, NumPy scalars); LIBRARY: identity only."""
    if issubclass(t, (np.generic, np.dtype)):
        kind = VALUE
    else:
        mod = sys.modules.get(getattr(t, "__module__", None) or "")
        file = getattr(mod, "__file__", None) if mod is not None else None
        user_module = mod is not None and (file is None and mod.__name__ == "__main__" or
                                           file is not None and not _is_library_file(file))
        kind = USER if user_module and getattr(t, "__dictoffset__", 0) else LIBRARY
    return _memo(_TYPE_KIND, t, kind)


_MODULE_KIND: dict = {}


def _user_module(mod) -> bool:
    hit = _MODULE_KIND.get(id(mod))
    if hit is not None:
        return hit[0]
    return _memo(_MODULE_KIND, mod, not _is_library_file(getattr(mod, "__file__", None) or ""))


WALKERS: dict = {}     # type -> walk(walker, obj): how tracegrad's own callables describe themselves


# ---------------------------------------------------------------- the walk

class Walker:
    """One walk's state: `key` gets the static description, `dyn` each array's shape and dtype.
    `record` (a Record) is set on the slow path only."""
    __slots__ = ("leaves", "key", "dyn", "objs", "seen", "budget", "record", "mutable")

    def __init__(self, leaves, record=None):
        self.leaves, self.key, self.dyn, self.record = leaves, [], [], record
        self.objs = []        # identity-keyed objects met (watched when an entry is made)
        self.mutable = []     # ids of the lists, dicts and objects met (see Entry identity binding)
        self.seen = {}
        self.budget = BUDGET

    def visit(self, v):
        t = type(v)
        if t is _ND:
            self.array(v)
        elif t in _VALUE_TYPES:
            self.key.append(t)
            self.key.append(v)
        elif t is _FUNC:
            self.function(v)
        elif t is tuple or t is list:
            self.sequence(v, t)
        elif t is dict:
            self.mapping(v)
        elif t is _MODULE:
            self.identity(v)
        else:
            self.other(v, t)

    def _seen(self, v) -> bool:
        i = id(v)
        n = self.seen.get(i)
        if n is not None:
            self.key.append(SEEN)
            self.key.append(n)
            return True
        self.seen[i] = len(self.seen)
        self.budget -= 1
        if self.budget < 0:
            raise TooLarge
        return False

    def identity(self, v):
        self.key.append(IDENTITY)
        self.key.append(id(v))
        self.objs.append(v)

    def array(self, v):
        if self._seen(v):
            if self.record is not None:
                self.record.alias()          # (another slot holding it: substituted too)
            return
        if v.dtype.kind not in "biuf":       # not a traceable array: keyed by identity
            self.identity(v)
            return
        self.leaves.append(v)
        self.key.append(ARRAY)
        self.dyn.append(v.shape)
        self.dyn.append(v.dtype)
        if self.record is not None:
            self.record.array(v)

    def sequence(self, v, t):
        if self._seen(v):
            return
        key = self.key
        key.append(t)
        key.append(len(v))
        rec = self.record
        if t is list:
            self.mutable.append(id(v))
        if rec is None:
            for x in v:
                self.visit(x)
            return
        for i, x in enumerate(v):
            with rec.at(("tuple" if t is tuple else "item", v, i), f"[{i}]"):
                self.visit(x)

    def mapping(self, d, attrs=False):
        if self._seen(d):
            return
        self.mutable.append(id(d))
        key = self.key
        key.append(dict)
        try:
            key.append(tuple(d))
        except RuntimeError:           # changed size while iterating (another thread)
            key.append(tuple(d.copy()))
        rec = self.record
        if rec is None:
            for x in list(d.values()):
                self.visit(x)
            return
        for k, x in list(d.items()):
            with rec.at(("item", d, k), f".{k}" if attrs else f"[{k!r}]"):
                self.visit(x)

    def function(self, f):
        if self._seen(f):
            return
        code = f.__code__
        hit = _PLANS.get(id(code))
        plan = hit[0] if hit is not None else _plan_of(code)
        if plan.library:
            self.identity(f)
            return
        key, rec = self.key, self.record
        key.append(FUNCTION)
        key.append(id(code))
        self.objs.append(code)
        defaults = f.__defaults__
        if defaults:
            key.append(len(defaults))
            for i, d in enumerate(defaults):
                if rec is None:
                    self.visit(d)
                else:
                    with rec.at(("default", f, i), f"{f.__name__} default {i}"):
                        self.visit(d)
        kw = f.__kwdefaults__
        if kw:
            if rec is None:
                self.mapping(kw)
            else:
                with rec.at(None, f"{f.__name__} keyword defaults"):
                    self.mapping(kw)
        cells = f.__closure__
        if cells:
            names = code.co_freevars
            for i, cell in enumerate(cells):
                try:
                    v = cell.cell_contents
                except ValueError:
                    key.append(EMPTY)
                    continue
                if rec is None:
                    self.visit(v)
                else:
                    with rec.at(("cell", cell, None), names[i] if i < len(names) else f"cell {i}"):
                        self.visit(v)
        g = f.__globals__
        for name in plan.names:
            v = g.get(name, MISSING)
            if v is MISSING:
                key.append(MISSING)
            elif rec is None:
                self.visit(v)
            else:
                with rec.at(("item", g, name), name, root=True):
                    self.visit(v)
        for name, attrs in plan.attrs:
            mod = g.get(name)
            if type(mod) is _MODULE and _user_module(mod):
                d = mod.__dict__
                for a in attrs:
                    v = d.get(a, MISSING)
                    if v is MISSING:
                        key.append(MISSING)
                    elif rec is None:
                        self.visit(v)
                    else:
                        with rec.at(("item", d, a), f"{name}.{a}", root=True):
                            self.visit(v)

    def other(self, v, t):
        walker = WALKERS.get(t)
        if walker is not None:
            walker(self, v)
            return
        rec = self.record
        if t is _METHOD:
            self.key.append(_METHOD)
            self.visit(v.__func__)
            if rec is None:
                self.visit(v.__self__)
            else:
                with rec.at(None, "self"):
                    self.visit(v.__self__)
            return
        if t is _PARTIAL:
            self.key.append(_PARTIAL)
            self.visit(v.func)
            if rec is None:
                self.visit(v.args)
                self.visit(v.keywords)
            else:            # (a partial's arguments cannot be substituted: read-only)
                with rec.at(None, "partial"):
                    self.visit(v.args)
                    self.visit(v.keywords)
            return
        hit = _TYPE_KIND.get(id(t))
        kind = hit[0] if hit is not None else _kind_of_type(t)
        if kind == VALUE:
            self.key.append(t)
            self.key.append(v)
        elif kind == USER:
            if self._seen(v):
                return
            self.identity(v)
            d = getattr(v, "__dict__", None)
            if type(d) is dict:
                self.mapping(d, attrs=True)
            call = getattr(t, "__call__", None)
            if type(call) is _FUNC:
                self.function(call)
        else:
            self.identity(v)


def walk(fn, leaves: list, key: list, record=None) -> Walker:
    """Describe `fn`'s environment: append to `key` the id of its static description (`intern`) and
    the shape and dtype of each array, to `leaves` the arrays (see the module docstring)."""
    w = Walker(leaves, record)
    w.visit(fn)
    key.append(intern(tuple(w.key)))
    key.extend(w.dyn)
    return w


_STATIC: dict = {}          # static description -> its id (ids are never reused)
_NEXT_STATIC = itertools.count()


def intern(static: tuple) -> int:
    """A small int standing for `static` in cache keys (hashing it per call would cost more). When
    the table grows past its bound it starts again; ids are never reused, so an old id can only
    fail to be found again (a cache miss), never name another description."""
    sid = _STATIC.get(static)
    if sid is None:
        if len(_STATIC) > 50_000:
            _STATIC.clear()
        sid = _STATIC[static] = next(_NEXT_STATIC)
    return sid
