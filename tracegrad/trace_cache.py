"""The trace cache shared by every staged function: cache key -> entry (a traced signature).

A key says what is called (the transform and its options, the compile mode, anomaly detection),
what the function is (`environment.walk`: its code and everything it reads) and the arguments'
signature, so every transform object built for the same function reaches the same entry:
`tg.grad(h)(x)` written inline traces `h` once. Nothing here keeps the user's objects alive: keys
hold ids of objects that are watched weakly (an entry is dropped when one of them dies), and the
cache holds at most `MAX_ENTRIES` entries (the oldest go first), so functions whose closure
changes at every call (a float rebound per step: a new key each time) cannot grow it without bound.

An entry may carry a `guard(staged, walker, leaves) -> bool` checked on every hit (walker may be None
when the key came from an environment plan): entries whose trace froze
closed-over arrays (tracing them could not be done, see staging) compare their contents, and
entries whose trace captured Python callables (pure_callback, custom rules) compare the identity of
the mutable containers the function reads, since those callables may refer to them.
"""
from __future__ import annotations

import functools
import weakref

import numpy as np

from .ir import IR

MAX_ENTRIES = 2048
ENTRIES: dict = {}      # the cache (documented above); read directly on the hot path
EPOCH = [0]             # bumped whenever an entry leaves: per-object shortcuts to entries check it


def store(key, entry, objs) -> None:
    """Cache `entry` under `key`, dropped when any of `objs` (identity-keyed objects) dies."""
    old = ENTRIES.get(key)
    if old is not None:
        evict(key, old)
    ids, pins = watch(objs, key, entry, evict)
    entry.watched[key] = ids
    entry.pins.extend(pins)
    ENTRIES[key] = entry
    while len(ENTRIES) > MAX_ENTRIES:
        oldest = next(iter(ENTRIES))
        evict(oldest, ENTRIES[oldest])


def evict(key, entry) -> None:
    """Drop `key` (if it still holds `entry`) and stop watching objects for it."""
    EPOCH[0] += 1
    if ENTRIES.get(key) is entry:
        del ENTRIES[key]
    unwatch(entry.watched.pop(key, ()), key)


def prepare(entry, family, sig_key, env_names, env_key) -> None:
    """Give a new entry what the cache and `cache_info` need."""
    entry.watched = {}
    entry.pins = []
    entry.family = family
    entry.sig_key = sig_key
    entry.env_names = env_names
    entry.env_key = env_key
    if not hasattr(entry, "guard"):
        entry.guard = None


def family_entries(family) -> list:
    out, seen = [], set()
    for e in list(ENTRIES.values()):
        if e.family == family and id(e) not in seen:
            seen.add(id(e))
            out.append(e)
    return out


def content_guard(n_env, arrays):
    """A guard passing while the first `n_env` leaves hold the same values as `arrays` now do."""
    snaps = [np.array(a, copy=True) for a in arrays[:n_env]]

    def guard(staged, walker, leaves):
        for a, s in zip(leaves, snaps):
            if a.shape != s.shape or not np.array_equal(a, s, equal_nan=a.dtype.kind == "f"):
                return False
        return True
    return guard


def identity_guard(ids, arrays=False):
    """A guard passing while the walk meets the same mutable containers (or, with `arrays`, the
    same closed-over arrays) as now."""
    ids = list(ids)
    if arrays:
        n = len(ids)
        return lambda staged, walker, leaves: [id(a) for a in leaves[:n]] == ids

    def guard(staged, walker, leaves):
        if walker is None:
            walker = staged._walk([], [])
        return walker.mutable == ids
    return guard


def captures_callables(ir) -> bool:
    """Does `ir` (or a body inside it) hold Python callables of the user (call primitives)?"""
    for e in ir.eqns:
        family = e.prim.family
        if family == "call" or family == "effect":
            return True
        if family == "control":
            for p in e.params.values():
                subs = p if isinstance(p, tuple) else (p,)
                if any(isinstance(s, IR) and captures_callables(s) for s in subs):
                    return True
    return False


# ---------------------------------------------------------------- watching identity-keyed objects

_WATCHED: dict = {}     # id(obj) -> (weakref, {cache key: (entry, evict)})


def watch(objs, key, entry, evict) -> tuple:
    """Call `evict(key, entry)` when any of `objs` dies.

    Returns (ids watched, pins): pass the ids to `unwatch` when the entry leaves the cache for
    another reason; pins are the objects that cannot be weakly referenced (ufuncs, generators):
    the caller keeps them alive as long as the entry, so their ids stay theirs.
    """
    pins, ids = [], []
    for o in objs:
        i = id(o)
        w = _WATCHED.get(i)
        if w is None or w[0]() is not o:
            try:
                ref = weakref.ref(o, functools.partial(_died, i))
            except TypeError:
                pins.append(o)
                continue
            w = _WATCHED[i] = (ref, {})
        w[1][key] = (entry, evict)
        ids.append(i)
    return ids, pins


def unwatch(ids, key) -> None:
    for i in ids:
        w = _WATCHED.get(i)
        if w is not None:
            w[1].pop(key, None)


def _died(i, ref):
    w = _WATCHED.get(i)
    if w is None or w[0] is not ref:
        return
    del _WATCHED[i]
    for key, (entry, evict) in list(w[1].items()):
        evict(key, entry)
