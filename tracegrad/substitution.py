"""Closed-over arrays as tracers while their function is traced: where each array sits, and the
temporary substitution of its tracer there.

A trace reads a closed-over array `W` through a slot: a closure cell, a default, a global, an item
of a list or dict, an attribute of an object (environment.walk visits them in order). With a
`Record`, the walk notes each array's slot chain and a readable name; `substituted(record, arrays,
tracers)` puts each array's tracer in its slots for the duration of the trace (a tuple on the way
is replaced by a copy holding the tracer) and puts the arrays back after. So plain NumPy code
applied to `W` inside the function (`W.T`, `W * 2`, `W[0]`) is recorded on the tracer, never
computed once into a constant, and the trace reads `W` at every call. (While a function is being
traced, another thread reading the same global or cell would see the tracer: tracing is on the
first call of a signature only.)
"""
from __future__ import annotations

import contextlib

import numpy as np

_ND = np.ndarray


class Record:
    """Where each array of a walk sits (for substitution) and what to call it (for messages)."""

    def __init__(self):
        self.slots = []          # per array slot (aliases too): its chain [(kind, container, key), ...]
        self.names = []          # per array leaf: a readable path ("W", "params['b']", "obj.w")
        self._chain = []
        self._names = []

    @contextlib.contextmanager
    def at(self, slot, name, root=False):
        self._chain.append(slot)
        self._names.append((name, root))
        try:
            yield
        finally:
            self._chain.pop()
            self._names.pop()

    def array(self, v):
        self.slots.append(list(self._chain))
        self.names.append(self.path())

    def alias(self):
        self.slots.append(list(self._chain))

    def path(self) -> str:
        text = ""
        for name, root in self._names:
            if name.startswith((".", "[")):
                text += name
            else:          # a global, or a name inside another function: the path starts again
                text = name
        return text or "?"


def _set(slot, value):
    kind, container, k = slot
    if kind == "cell":
        container.cell_contents = value
    elif kind == "item":
        container[k] = value
    elif kind == "default":
        d = list(container.__defaults__)
        d[k] = value
        container.__defaults__ = tuple(d)
    else:
        raise TypeError(kind)


def _get(slot):
    kind, container, k = slot
    if kind == "cell":
        return container.cell_contents
    if kind == "default":
        return container.__defaults__[k]
    return container[k]


def _rebuild(t, items):
    if type(t) is tuple:
        return tuple(items)
    make = getattr(type(t), "_make", None)        # a namedtuple
    return make(items) if make is not None else None


@contextlib.contextmanager
def substituted(record: Record, arrays, tracers):
    """Inside, every recorded slot holding one of `arrays` holds its tracer instead; a tuple on the
    way is replaced by a copy holding it. Slots that cannot be written (a partial's arguments, a
    tuple subclass) keep the array: lifting it by identity still reads it at run time."""
    undo = []
    by_id = {id(a): t for a, t in zip(arrays, tracers)}
    try:
        for chain in record.slots:
            if not chain or chain[-1] is None:
                continue
            # walk up through tuples (immutable): rebuild each, set the first writable slot
            k = len(chain) - 1
            while k >= 0 and chain[k] is not None and chain[k][0] == "tuple":
                k -= 1
            if k < 0 or chain[k] is None:
                continue
            top = chain[k]
            old = _get(top)
            new = _replace(old, chain[k + 1:], by_id)
            if new is not None and new is not old:
                undo.append((top, old))
                _set(top, new)
        yield
    finally:
        for slot, old in reversed(undo):
            _set(slot, old)


def _replace(value, rest, by_id):
    """`value` with the element reached by the tuple slots `rest` replaced by its tracer."""
    if not rest:
        return by_id.get(id(value), value) if type(value) is _ND else value
    _, tup, i = rest[0]
    if type(value) is not type(tup) or len(value) <= i:
        return None
    items = list(value)
    new = _replace(items[i], rest[1:], by_id)
    if new is None:
        return None
    if new is items[i]:
        return value
    items[i] = new
    return _rebuild(value, items)


