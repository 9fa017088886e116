"""Pytrees: nested tuples, lists, dicts, None and registered node types, with JAX's conventions.

`flatten(obj) -> (children, aux)` and `unflatten(aux, children) -> obj`. Dict children are ordered by
sorted key, so structure (and the compile cache key) does not depend on insertion order.
"""
from __future__ import annotations

_registry: dict = {}


def register_pytree_node(nodetype, flatten, unflatten):
    """Teach tracegrad to look inside `nodetype` (gradients come back as the same type)."""
    if nodetype in _registry:
        raise ValueError(f"{nodetype.__name__} is already registered as a pytree node")
    _registry[nodetype] = (flatten, unflatten)


def _dict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], tuple(keys)


def _dict_unflatten(keys, children):
    return dict(zip(keys, children))


register_pytree_node(tuple, lambda t: (list(t), None), lambda _, c: tuple(c))
register_pytree_node(list, lambda l: (list(l), None), lambda _, c: list(c))
register_pytree_node(dict, _dict_flatten, _dict_unflatten)
register_pytree_node(type(None), lambda n: ([], None), lambda _, c: None)


class TreeDef:
    """The structure of a pytree: a node type, its aux data and child structures (None for a leaf).

    Immutable by convention, compared and hashed by value (it is part of cache keys); a slotted
    class rather than a frozen dataclass because every call of a transform builds a few."""
    __slots__ = ("nodetype", "aux", "children")

    def __init__(self, nodetype, aux, children):
        self.nodetype, self.aux, self.children = nodetype, aux, children

    def __eq__(self, other):
        return self is other or (type(other) is TreeDef and self.nodetype is other.nodetype
                                 and self.aux == other.aux and self.children == other.children)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.nodetype, self.aux, self.children))

    @property
    def num_leaves(self) -> int:
        if self.nodetype is None:
            return 1
        return sum(c.num_leaves for c in self.children)

    def __repr__(self):
        if self.nodetype is None:
            return "*"
        inner = ", ".join(map(repr, self.children))
        if self.nodetype is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.nodetype is list:
            return f"[{inner}]"
        if self.nodetype is dict:
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.children)) + "}"
        if self.nodetype is type(None):
            return "None"
        return f"{self.nodetype.__name__}({inner})"


_LEAF = TreeDef(None, None, ())


def tree_flatten(tree, is_leaf=None):
    leaves: list = []

    def rec(t):
        if is_leaf is not None and is_leaf(t):
            leaves.append(t)
            return _LEAF
        entry = _registry.get(type(t))
        if entry is None:
            leaves.append(t)
            return _LEAF
        children, aux = entry[0](t)
        return TreeDef(type(t), aux, tuple(rec(c) for c in children))

    treedef = rec(tree)
    return leaves, treedef


def tree_unflatten(treedef: TreeDef, leaves):
    it = iter(leaves)

    def rec(td):
        if td.nodetype is None:
            return next(it)
        return _registry[td.nodetype][1](td.aux, [rec(c) for c in td.children])

    out = rec(treedef)
    rest = list(it)
    if rest:
        raise ValueError(f"tree_unflatten: {len(rest)} leaves too many for {treedef}")
    return out


def tree_leaves(tree, is_leaf=None):
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree):
    return tree_flatten(tree)[1]


def tree_map(f, tree, *rest, is_leaf=None):
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for r in rest:
        rl, rd = tree_flatten(r, is_leaf)
        if rd != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef} vs {rd}")
        others.append(rl)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])
