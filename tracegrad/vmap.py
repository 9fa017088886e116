"""`tg.vmap`: a function mapped over a batch axis of its arguments, with JAX's `in_axes` /
`out_axes` semantics.

This module owns the user-facing side: resolving `in_axes` and `out_axes` (ints, None, negative
axes, pytree prefixes of the arguments / outputs), checking the mapped sizes, and naming the
argument and the user's line in errors. The transform itself is `batching.batch_traced`: the
function is traced once at per-example shapes and its equations are replayed batched in the
current builder, so vmap works eagerly, under jit, and composes with every other transform.
A top-level call is staged like the other transforms (`staging.Staged`).
"""
from __future__ import annotations

import numpy as np

from .batching import batch_traced, is_weak, move_dim, to_front
from .errors import TracerError, user_source
from .pytree import _registry, tree_flatten, tree_unflatten
from .staging import Staged, check_leaf, param_names
from .trace import Tracer, aval_of

_NOTE = ("  (inside tg.vmap the function is traced once at per-example shapes, so the values are "
         "not known: use tnp.where / tg.cond for value-dependent choices)")


def _is_axis(a) -> bool:
    return a is None or (isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)))


def _check_spec(spec, what):
    """`spec` is an int, None, or a container (pytree node) of them."""
    if _is_axis(spec):
        return
    entry = _registry.get(type(spec))
    if entry is None:
        raise TypeError(f"vmap {what} must be an int, None, or a pytree (tuple, list, dict, ...) of "
                        f"ints and None, got {type(spec).__name__} {spec!r:.60}")
    for child in entry[0](spec)[0]:
        _check_spec(child, what)


def _paths(td, prefix="") -> list:
    """A readable path per leaf of the tree `td`: `[0]`, `['w']`, ..."""
    if td.nodetype is None:
        return [prefix]
    out = []
    for j, child in enumerate(td.children):
        key = repr(td.aux[j]) if td.nodetype is dict else str(j)
        out += _paths(child, f"{prefix}[{key}]")
    return out


def _prefix_axes(spec, td, what, path) -> list:
    """One axis (int or None) per leaf of the tree `td`, from `spec`, a pytree prefix of it."""
    if _is_axis(spec):
        return [None if spec is None else int(spec)] * td.num_leaves
    entry = _registry[type(spec)]
    children, aux = entry[0](spec)
    if type(spec) is not td.nodetype or aux != td.aux or len(children) != len(td.children):
        shape = "a leaf (an array)" if td.nodetype is None else repr(td)
        raise ValueError(f"vmap {what}{path} is {spec!r:.80}, which is not a pytree prefix of the "
                         f"value it maps: that value is {shape}")
    out = []
    for j, (s, child) in enumerate(zip(children, td.children)):
        key = repr(aux[j]) if td.nodetype is dict else str(j)
        out += _prefix_axes(s, child, what, f"{path}[{key}]")
    return out


def _in_axes(in_axes, args, names):
    """(axis per argument leaf, name per argument leaf)."""
    axes, leaf_names = [], []
    if not _is_axis(in_axes):
        if not isinstance(in_axes, (tuple, list)):
            raise TypeError(f"vmap in_axes must be an int, None, or a tuple with one entry per "
                            f"positional argument, got {type(in_axes).__name__}")
        if len(in_axes) != len(args):
            raise ValueError(f"vmap in_axes has {len(in_axes)} entries but the function was called "
                             f"with {len(args)} positional arguments; in_axes needs one entry (an "
                             f"int, None or a pytree prefix) per positional argument")
    for i, a in enumerate(args):
        spec = in_axes if _is_axis(in_axes) else in_axes[i]
        name = names[i] if i < len(names) else f"args[{i}]"
        _, td = tree_flatten(a)
        axes += _prefix_axes(spec, td, "in_axes" if _is_axis(in_axes) else f"in_axes[{i}]", "")
        leaf_names += [name + p for p in _paths(td)]
    return axes, leaf_names


def _mapped_size(leaves, axes, names, axis_size, src):
    """Normalise the axes (negative ones count from the end) and return the batch size."""
    norm, sizes = [], []
    for x, a, name in zip(leaves, axes, names):
        check_leaf(x, f"vmap: argument '{name}'")
        if a is None:
            norm.append(None)
            continue
        shape = aval_of(x).shape
        if not -len(shape) <= a < len(shape):
            what = "a scalar" if not shape else f"of shape {shape} ({len(shape)} axes)"
            raise ValueError(f"vmap: in_axes maps argument '{name}' over axis {a}, but it is {what}"
                             f"\n  at {src}")
        a %= len(shape)
        norm.append(a)
        sizes.append((name, a, shape[a]))
    if axis_size is not None:
        axis_size = int(axis_size)
        bad = [s for s in sizes if s[2] != axis_size]
        if bad:
            name, a, n = bad[0]
            raise ValueError(f"vmap: axis_size={axis_size}, but argument '{name}' has size {n} "
                             f"along its mapped axis {a}\n  at {src}")
        return norm, axis_size
    if not sizes:
        raise ValueError(f"vmap needs at least one argument mapped by in_axes (not all None), or "
                         f"axis_size to say how many members the batch has\n  at {src}")
    if len({n for _, _, n in sizes}) > 1:
        listed = "; ".join(f"'{name}' has size {n} along axis {a}" for name, a, n in sizes)
        raise ValueError(f"vmap got inconsistent sizes for the mapped axes: {listed}\n  at {src}")
    return norm, sizes[0][2]


def _place_outputs(outs, dims, out_tree, out_axes, size, src):
    specs = _prefix_axes(out_axes, out_tree, "out_axes", "")
    paths = _paths(out_tree)
    placed = []
    for o, d, a, path in zip(outs, dims, specs, paths):
        if a is None:
            if d is not None:
                raise ValueError(f"vmap: out_axes is None for output{path or ''}, but that output "
                                 f"depends on the mapped arguments (it differs between members); "
                                 f"give it an axis\n  at {src}")
            placed.append(o)
            continue
        nd = len(aval_of(o).shape) + (d is None)
        if not -nd <= a < nd:
            raise ValueError(f"vmap: out_axes {a} is out of range for output{path or ''}, which has "
                             f"{nd} axes with the batch axis\n  at {src}")
        placed.append(move_dim(to_front(o, d, size), 0, a % nd))
    return placed


def vmap_call(fun, in_axes, out_axes, axis_size, args, kwargs):
    """`vmap(fun, ...)(*args, **kwargs)` inside a builder (or at the top of a staged trace)."""
    src = user_source()
    name = getattr(fun, "__name__", "function")
    leaves, tree = tree_flatten(tuple(args))
    axes, names = _in_axes(in_axes, args, param_names(fun))
    axes, size = _mapped_size(leaves, axes, names, axis_size, src)

    def record(*ins):
        try:
            out = fun(*tree_unflatten(tree, list(ins)), **kwargs)
        except TracerError as e:
            raise TracerError(f"{e}\n{_NOTE}") if _NOTE not in str(e) else e from None
        out_leaves, out_tree = tree_flatten(out)
        for o in out_leaves:
            if not isinstance(o, Tracer):
                check_leaf(o, f"output of {name} under vmap")
        return out_leaves, out_tree

    weak = [is_weak(x) and a is None for x, a in zip(leaves, axes)]
    outs, dims, out_tree = batch_traced(record, leaves, axes, weak)
    return tree_unflatten(out_tree, _place_outputs(outs, dims, out_tree, out_axes, size, src))


def vmap(fun, in_axes=0, out_axes=0, axis_size=None):
    """`fun` mapped over an axis of its arguments: `vmap(f)(xs)[i] == f(xs[i])`, as one batched
    computation (no Python loop; matrix-vector products become matrix products).

    `in_axes`: the axis to map of every argument (int, negative counts from the end), None for an
    argument shared by all members, or a tuple with one entry per positional argument, each an
    int/None or a pytree prefix of that argument (e.g. `({"w": None, "b": 0}, 0)`). Keyword
    arguments are shared (not mapped). `out_axes`: where the batch axis goes in each output (an
    int, or a pytree prefix of the output; None for an output that is the same for all members).
    `axis_size`: the batch size, needed when no argument is mapped.
    """
    if not callable(fun):
        raise TypeError(f"vmap expects a function, got {type(fun).__name__}")
    _check_spec(in_axes, "in_axes")
    _check_spec(out_axes, "out_axes")

    def core(*args, **kwargs):
        return vmap_call(fun, in_axes, out_axes, axis_size, args, kwargs)
    return Staged(core, name=f"vmap({getattr(fun, '__name__', 'f')})", names_from=fun)
