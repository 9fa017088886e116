"""Integer-array and boolean-mask indexing, `take`, `take_along_axis`, and the functional update
`tnp.at(x)[idx].set(v) / .add(v) / .multiply(v) / .divide(v) / .get()` (JAX's `x.at[idx]`).

An index expression is turned into an `_IndexPlan`: a basic slice (with reversal for negative
steps) of the indexed axes, one `gather` for all integer arrays at once (NumPy's broadcasting of
index arrays), then a transpose and reshape that put the broadcast index dims where NumPy puts them
(in place of the indexed axes when those are adjacent in the key, in front otherwise) and add the
`None` axes. Every step is linear, so an update is the plan run backwards (pad for the slice,
`scatter` for the gather): `.add` accumulates duplicates (as `np.add.at`), `.set` lets the last
duplicate win, `.multiply` multiplies them all in.

Indices known at trace time (Python ints and lists, NumPy arrays) are checked here: out of bounds
raises IndexError even under compilation. Traced indices are checked by `gather`/`scatter` when they
run (IndexError in eager mode and in the interpreter; the compiled lowering must check too).
Boolean masks select a data-dependent number of elements: they work when the mask's value is known
(NumPy constants, eager mode); a traced mask under compilation raises TracerError pointing to
`tnp.where`.

A slice whose bounds are traced integer scalars, `x[i * bs:(i + 1) * bs]`, works when its length is
static: the bounds are a constant apart (`tracegrad.affine` reads that off the recorded integer
arithmetic). It is taken first, along its own axis, as a gather at indices computed at run time
(`ops_indexing.dynamic_slice_indices`, which checks that NumPy would select exactly that many
elements: IndexError otherwise); the rest of the key then applies to the result, and an update
writes the slab back with a `scatter`. A slice whose length depends on a traced value (`x[:i]`)
raises TracerError while tracing.
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import ops
from .. import ops_indexing
from ..errors import TracerError, user_source
from ..trace import Tracer
from ._dispatch import numpy_function


def _is_int(k):
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _concrete_mask(k):
    if isinstance(k, Tracer):
        if k.value is None:
            raise TracerError(
                f"boolean-mask indexing with a traced mask {k.aval} at {user_source(4)}: the result's "
                f"shape depends on the mask's values, which are not known while the function is being "
                f"compiled. Use tnp.where(mask, x, 0) (or a masked reduction) instead, or run in eager "
                f"mode (tg.eager()).")
        return np.asarray(k.value)
    return np.asarray(k)


def _as_index_operand(k):
    """Lists (possibly of tracers) and arrays as index operands: NumPy arrays or int tracers."""
    if isinstance(k, Tracer):
        return k
    if isinstance(k, (list, tuple)) and any(isinstance(e, Tracer) for e in _flat(k)):
        return ops.stack_nested(k)
    arr = np.asarray(k)
    if arr.dtype == object:
        raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and integer or boolean "
                         "arrays are valid indices")
    if arr.size == 0 and arr.dtype.kind == "f":   # x[[]] indexes with an empty int array
        arr = arr.astype(np.int64)
    return arr


def _flat(obj):
    for o in obj:
        if isinstance(o, (list, tuple)):
            yield from _flat(o)
        else:
            yield o


def _dtype_kind(k):
    return k.dtype.kind if isinstance(k, (Tracer, np.ndarray)) else np.asarray(k).dtype.kind


class _IndexPlan:
    """How `x[key]` is computed from linear steps, so that updates can run them backwards."""

    def __init__(self, shape, key):
        self.in_shape = tuple(shape)
        key = key if isinstance(key, tuple) else (key,)
        entries = []          # ("new",) | ("slice", slice, dim) | ("int", k, dim) | ("adv", operand, dim)
        items = []
        for k in key:
            if k is None or k is Ellipsis or isinstance(k, slice) or _is_int(k):
                items.append(k)
            elif isinstance(k, (bool, np.bool_)):
                raise IndexError("indexing with a Python bool scalar is not supported on traced values")
            else:
                op = _as_index_operand(k)
                if _dtype_kind(op) == "b":
                    mask = _concrete_mask(op)
                    items.append(("mask", mask))
                else:
                    if _dtype_kind(op) not in "iu":
                        raise IndexError(f"arrays used as indices must be of integer (or boolean) "
                                         f"type, got {op.dtype}")
                    items.append(("adv", op))
        consumed = builtins.sum(0 if (k is None or k is Ellipsis) else
                                (k[1].ndim if isinstance(k, tuple) and k[0] == "mask" else 1) for k in items)
        n_ell = builtins.sum(k is Ellipsis for k in items)
        if n_ell > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        nd = len(shape)
        if consumed > nd:
            raise IndexError(f"too many indices for array: array is {nd}-dimensional, but {consumed} "
                             f"were indexed")
        if n_ell:
            i = items.index(Ellipsis)
            items = items[:i] + [slice(None)] * (nd - consumed) + items[i + 1:]
        else:
            items = items + [slice(None)] * (nd - consumed)
        has_adv = any(isinstance(k, tuple) for k in items)
        dim = 0
        for k in items:
            if k is None:
                entries.append(("new",))
            elif isinstance(k, slice):
                entries.append(("slice", k, dim))
                dim += 1
            elif _is_int(k):
                size = shape[dim]
                if not -size <= int(k) < size:
                    raise IndexError(f"index {int(k)} is out of bounds for axis {dim} with size {size}")
                entries.append(("adv", np.asarray(int(k) % size, np.int64), dim) if has_adv
                               else ("int", int(k) % size, dim))
                dim += 1
            elif k[0] == "mask":
                mask = k[1]
                if mask.ndim == 0:
                    raise IndexError("a 0-d boolean index is not supported on traced values")
                if mask.shape != tuple(shape[dim:dim + mask.ndim]):
                    raise IndexError(f"boolean index did not match indexed array along axis {dim}; "
                                     f"size of axis is {shape[dim:dim + mask.ndim]} but size of "
                                     f"corresponding boolean axis is {mask.shape}")
                for j, nz in enumerate(np.nonzero(mask)):
                    entries.append(("adv", nz.astype(np.int64), dim + j))
                dim += mask.ndim
            else:
                entries.append(("adv", self._checked(k[1], shape[dim], dim), dim))
                dim += 1
        self._build(entries)

    @staticmethod
    def _checked(op, size, dim):
        if isinstance(op, Tracer):
            return ops_indexing.as_index(op)
        arr = op.astype(np.int64)
        bad = (arr < -size) | (arr >= size)
        if bad.any():
            raise IndexError(f"index {int(arr[bad].flat[0])} is out of bounds for axis {dim} with size {size}")
        return np.where(arr < 0, arr + size, arr)

    def _build(self, entries):
        shape = self.in_shape
        nd = len(shape)
        start, limit, strides, flips = [0] * nd, list(shape), [1] * nd, []
        for e in entries:
            if e[0] == "slice":
                _, s, d = e
                lo, hi, st = s.indices(shape[d])
                n = len(range(lo, hi, st))
                if st > 0:
                    start[d], limit[d], strides[d] = lo, (lo + (n - 1) * st + 1 if n else lo), st
                else:
                    start[d], limit[d], strides[d] = (lo + (n - 1) * st if n else 0), (lo + 1 if n else 0), -st
                    flips.append(d)
            elif e[0] == "int":
                start[e[2]], limit[e[2]] = e[1], e[1] + 1
        self.slice = (start, limit, strides)
        self.flips = tuple(flips)
        sliced = tuple(max(0, -(-(l - s) // st)) for s, l, st in zip(start, limit, strides))
        self.sliced_shape = sliced
        adv = [e for e in entries if e[0] == "adv"]
        self.gather = None
        positions = [i for i, e in enumerate(entries) if e[0] == "adv"]
        if adv:
            axes = tuple(e[2] for e in adv)
            shapes = [tuple(ops.shape_of(e[1])) for e in adv]
            try:
                batch = tuple(np.broadcast_shapes(*shapes))
            except ValueError:
                raise IndexError("shape mismatch: indexing arrays could not be broadcast together "
                                 "with shapes " + " ".join(map(str, shapes))) from None
            idx = ops_indexing.stack_indices([e[1] for e in adv], batch)
            self.gather = (idx, axes)
            rest = [d for d in range(nd) if d not in axes]
            gathered = batch + tuple(sliced[d] for d in rest)
            adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
            nb = len(batch)
            # output order: gather gives (batch..., rest...); NumPy puts batch in place of the
            # indexed axes when they are adjacent in the key, in front otherwise
            order, final = [], []
            rest_pos = {d: nb + i for i, d in enumerate(rest)}
            if not adjacent:
                order += list(range(nb))
                final += list(batch)
            placed = not adjacent
            for e in entries:
                if e[0] == "new":
                    final.append(1)
                elif e[0] == "slice":
                    order.append(rest_pos[e[2]])
                    final.append(sliced[e[2]])
                elif e[0] == "adv" and not placed:
                    order += list(range(nb))
                    final += list(batch)
                    placed = True
            self.gathered_shape = gathered
            self.perm = tuple(order)
        else:
            final = []
            for e in entries:
                if e[0] == "new":
                    final.append(1)
                elif e[0] == "slice":
                    final.append(sliced[e[2]])
            self.gathered_shape = sliced
            self.perm = tuple(range(nd))
        self.out_shape = tuple(final)
        self.transposed_shape = tuple(self.gathered_shape[p] for p in self.perm)

    # ------------------------------------------------------------ forward
    def apply(self, x):
        y = ops.slice_(x, *self.slice)
        if self.flips:
            y = ops.rev(y, self.flips)
        if self.gather is not None:
            y = ops_indexing.gather(y, *self.gather)
        y = ops.transpose(y, self.perm)
        return ops.reshape(y, self.out_shape)

    # ------------------------------------------------------------ backward (for updates)
    def scatter_back(self, v, mode, fill):
        """An array of x's shape: v placed at the indexed positions, `fill` elsewhere."""
        z = ops.reshape(v, self.transposed_shape)
        inv = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inv[p] = i
        z = ops.transpose(z, inv)
        if self.gather is not None:
            base = ops.full(self.sliced_shape, fill, ops.dtype_of(z))
            z = ops_indexing.scatter(base, self.gather[0], z, self.gather[1], mode)
        if self.flips:
            z = ops.rev(z, self.flips)
        start, limit, strides = self.slice
        config = []
        for s, st, d, n in zip(start, strides, self.in_shape, self.sliced_shape):
            placed = (n - 1) * st + 1 if n else 0
            config.append((s, d - s - placed, st - 1 if n else 0))
        return ops.pad(z, fill, config)

    def has_traced_indices(self):
        return self.gather is not None and isinstance(self.gather[0], Tracer)

    def hit_mask(self):
        """bool array of x's shape: True where the key selects."""
        if self.has_traced_indices():
            ones = ops.full(self.out_shape, True, np.bool_)
            return self.scatter_back(ones, "set", False)
        hit = np.zeros(self.in_shape, dtype=bool)
        z = np.ones(self.out_shape, dtype=bool)
        return _np_scatter_back(self, z, hit)


def _np_scatter_back(plan, z, hit):
    """The constant hit mask, computed with NumPy at trace time (indices are constants)."""
    z = z.reshape(plan.transposed_shape)
    inv = np.argsort(plan.perm)
    z = np.transpose(z, inv)
    if plan.gather is not None:
        idx, axes = plan.gather
        base = np.zeros(plan.sliced_shape, bool)
        view = np.moveaxis(base, axes, tuple(range(len(axes))))
        view[tuple(np.asarray(idx)[..., j] for j in range(len(axes)))] = True
        z = base
    if plan.flips:
        z = np.flip(z, plan.flips)
    start, limit, strides = plan.slice
    hit[tuple(slice(s, l, st) for s, l, st in zip(start, limit, strides))] = z
    return hit


_LINE_MARK = "\n  at "


def _plan_for(x, key):
    """The plan of `x[key]`; index errors found while tracing name the user's line."""
    try:
        return _IndexPlan(ops.shape_of(x), key)
    except IndexError as e:
        if _LINE_MARK in str(e):
            raise
        raise IndexError(f"{e}{_LINE_MARK}{user_source(2)}") from None


def advanced_getitem(x, key):
    """`x[key]` for keys with integer arrays, lists or boolean masks (called by Tracer.__getitem__)."""
    return _plan_for(x, key).apply(x)


# ---------------------------------------------------------------- slices with traced bounds

def _is_traced_slice(k) -> bool:
    return isinstance(k, slice) and any(isinstance(b, Tracer) and b.value is None
                                        for b in (k.start, k.stop, k.step))


def _n_axes(k) -> int:
    """How many of the array's axes the key entry `k` indexes (Ellipsis: none of its own)."""
    if k is None or k is Ellipsis:
        return 0
    if isinstance(k, (Tracer, np.ndarray)):
        return k.ndim if k.dtype.kind == "b" else 1
    if isinstance(k, (list, tuple)) and not any(isinstance(e, Tracer) for e in _flat(k)):
        arr = np.asarray(k)
        return arr.ndim if arr.dtype.kind == "b" else 1
    return 1


def _split_traced_slices(x, key):
    """([(axis, slice)] for the slices of `key` with traced bounds, the key with `:` in their place)."""
    nd = ops.ndim_of(x)
    counts = [_n_axes(k) for k in key]
    if builtins.sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    total = builtins.sum(counts)
    if total > nd:
        raise IndexError(f"too many indices for array: array is {nd}-dimensional, but {total} were indexed")
    found, rest, axis = [], list(key), 0
    for pos, (k, c) in enumerate(zip(key, counts)):
        if k is Ellipsis:
            axis += nd - total
        elif _is_traced_slice(k):
            found.append((axis, k))
            rest[pos] = slice(None)
        axis += c
    return found, tuple(rest)


def _describe_bound(b) -> str:
    return "" if b is None else f"<traced {b.aval}>" if isinstance(b, Tracer) else str(b)


def _static_bound(b, src):
    if b is None or (isinstance(b, Tracer) and b.value is None):
        if isinstance(b, Tracer) and (b.ndim or b.dtype.kind not in "iu"):
            what = "only integer scalar arrays can be converted to a scalar index" if b.ndim else \
                "slice indices must be integers or None or have an __index__ method"
            raise TypeError(f"{what} (got a traced {b.aval}){_LINE_MARK}{src}")
        return b
    return operator.index(b)


def _traced_slice_indices(x, axis, k, src):
    """The gather indices of the slice `k` with traced bounds along `axis` (module docstring)."""
    step = 1 if k.step is None else k.step
    if isinstance(step, Tracer) and step.value is None:
        raise TracerError(
            f"a slice step that is a traced value {step.aval} at {src}: the step must be known while "
            f"the function is being compiled (a Python int). Mark the argument with static_argnums, "
            f"or run in eager mode (tg.eager()).")
    step = operator.index(step)
    if step == 0:
        raise ValueError("slice step cannot be zero")
    start, stop = _static_bound(k.start, src), _static_bound(k.stop, src)
    size = ops.shape_of(x)[axis]
    static = ops_indexing.slice_length(start, stop, step, size)
    if static is None:
        text = f"{_describe_bound(k.start)}:{_describe_bound(k.stop)}" + ("" if step == 1 else f":{step}")
        raise TracerError(
            f"slicing [{text}] along axis {axis} at {src}: the slice's length depends on a traced "
            f"value, so the shape of the result is not known while the function is being compiled. "
            f"Give the slice a static length, x[i:i + n] with n a Python int (bounds a constant apart "
            f"may both be traced), mark the argument with static_argnums, or run in eager mode "
            f"(tg.eager()).")
    length, start, stop = static
    return ops_indexing.dynamic_slice_indices(size, axis, start, stop, step, length, src)


def _traced_slices_getitem(x, key):
    found, rest = _split_traced_slices(x, key)
    src = user_source()
    for axis, k in found:
        idx = _traced_slice_indices(x, axis, k, src)
        x = ops_indexing.front_to_axis(ops_indexing.gather(x, idx, (axis,)), axis)
    return getitem(x, rest)


# ---------------------------------------------------------------- basic indexing

def getitem(x, key):
    """Basic indexing: ints, slices (any step; traced bounds of static length too), None/newaxis
    and Ellipsis."""
    key = key if isinstance(key, tuple) else (key,)
    for k in key:
        if _is_traced_slice(k):
            return _traced_slices_getitem(x, key)
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, slice) or _is_int(k)):
            if isinstance(k, Tracer) or isinstance(k, (list, tuple, np.ndarray)):
                # advanced indexing (integer arrays, lists, boolean masks): gather-based
                return advanced_getitem(x, key)
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`) and None are valid "
                             f"indices, got {type(k).__name__}")
    n_ell = builtins.sum(k is Ellipsis for k in key)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, but {n_real} "
                         f"were indexed")
    if n_ell:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    else:
        key = key + (slice(None),) * (x.ndim - n_real)
    start, limit, strides, flip_axes, out_shape = [], [], [], [], []
    dim = 0
    for k in key:
        if k is None:
            out_shape.append(("new",))
            continue
        size = x.shape[dim]
        if _is_int(k):
            k = int(k)
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for axis {dim} with size {size}")
            k %= size
            start.append(k), limit.append(k + 1), strides.append(1)
            out_shape.append(("drop",))
        else:
            s, e, st = k.indices(size)
            if st > 0:
                n = len(range(s, e, st))
                start.append(s), limit.append(s + (n - 1) * st + 1 if n else s), strides.append(st)
            else:  # negative step: slice the mirrored range, then reverse
                n = len(range(s, e, st))
                lo = s + (n - 1) * st if n else 0
                start.append(lo), limit.append(s + 1 if n else 0), strides.append(-st)
                flip_axes.append(dim)
            out_shape.append(("keep", dim))
        dim += 1
    y = ops.slice_(x, start, limit, strides)
    if flip_axes:
        y = ops.rev(y, flip_axes)
    shape = []
    for entry in out_shape:
        if entry[0] == "new":
            shape.append(1)
        elif entry[0] == "keep":
            shape.append(ops.shape_of(y)[entry[1]])
    return ops.reshape(y, tuple(shape))


# ---------------------------------------------------------------- functional update

class _AtIndex:
    __slots__ = ("x", "key")

    def __init__(self, x, key):
        self.x, self.key = x, key

    def _plan(self):
        return _plan_for(self.x, self.key)

    def _values(self, plan, v):
        return ops.broadcast_to(ops.as_dtype(v, ops.dtype_of(self.x)), plan.out_shape)

    def _traced_slices(self) -> bool:
        key = self.key if isinstance(self.key, tuple) else (self.key,)
        return any(_is_traced_slice(k) for k in key)

    def _through_slab(self, method, values):
        """The update of a key holding a slice with traced bounds: the slab that slice selects is
        gathered, updated with the rest of the key, and written back (its positions are distinct)."""
        key = self.key if isinstance(self.key, tuple) else (self.key,)
        found, _ = _split_traced_slices(self.x, key)
        axis, k = found[0]
        rest = list(key)
        rest[next(p for p, e in enumerate(key) if e is k)] = slice(None)
        idx = _traced_slice_indices(self.x, axis, k, user_source())
        slab = ops_indexing.front_to_axis(ops_indexing.gather(self.x, idx, (axis,)), axis)
        new = getattr(_AtIndex(slab, tuple(rest)), method)(values)
        return ops_indexing.scatter(self.x, idx, ops_indexing.axis_to_front(new, axis), (axis,), "set")

    def get(self):
        """`x[idx]`."""
        if self._traced_slices():
            return getitem(self.x, self.key)
        return self._plan().apply(self.x)

    def set(self, values):
        """A copy of x with x[idx] = values (for repeated indices the last value wins)."""
        if self._traced_slices():
            return self._through_slab("set", values)
        plan = self._plan()
        placed = plan.scatter_back(self._values(plan, values), "set", 0)
        return ops.select(plan.hit_mask(), placed, self.x)

    def add(self, values):
        """A copy of x with values added at idx (repeated indices accumulate, as np.add.at)."""
        if self._traced_slices():
            return self._through_slab("add", values)
        plan = self._plan()
        return ops.add(self.x, plan.scatter_back(self._values(plan, values), "add", 0))

    def multiply(self, values):
        """A copy of x with x[idx] multiplied by values (repeated indices multiply in turn)."""
        if self._traced_slices():
            return self._through_slab("multiply", values)
        plan = self._plan()
        return ops.mul(self.x, plan.scatter_back(self._values(plan, values), "mul", 1))

    mul = multiply

    def divide(self, values):
        """A copy of x with x[idx] divided by values."""
        dt = ops.dtype_of(self.x)
        if dt.kind != "f":
            raise TypeError(f"at[...].divide needs a floating-point array, got {dt}")
        return self.multiply(ops.div(np.ones((), dt)[()], ops.as_dtype(values, dt)))


class _At:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, key):
        return _AtIndex(self.x, key)


def at(x):
    """Functional indexed update, JAX's `x.at`: `tnp.at(x)[idx].set(v)` returns a new array (x is
    never modified). Also `.add`, `.multiply`, `.divide`, `.get`."""
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    return _At(x)


# ---------------------------------------------------------------- take, take_along_axis

@numpy_function(np.take)
def take(a, indices, axis=None, out=None, mode=None):
    if out is not None:
        raise TypeError("take(..., out=...) cannot write into a traced value")
    if not isinstance(a, Tracer):
        a = np.asarray(a)
    if axis is None:
        a = ops.reshape(a, (int(np.prod(ops.shape_of(a), dtype=np.int64)),))
        axis = 0
    nd = ops.ndim_of(a)
    (axis,) = ops.normalize_axes(axis, nd)
    n = ops.shape_of(a)[axis]
    idx = _as_index_operand(indices)
    if _dtype_kind(idx) not in "iu":
        raise IndexError(f"arrays used as indices must be of integer type, got {idx.dtype}")
    mode = mode or "raise"
    if mode == "wrap":
        idx = ops.binary(ops.P.rem_p, ops.add(ops.binary(ops.P.rem_p, ops_indexing.as_index(idx), n), n), n) \
            if isinstance(idx, Tracer) else np.mod(idx, n)
    elif mode == "clip":
        idx = ops.minimum(ops.maximum(ops_indexing.as_index(idx), 0), n - 1) if isinstance(idx, Tracer) \
            else np.clip(idx, 0, n - 1)
    elif mode != "raise":
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    key = (slice(None),) * axis + (idx,)
    return _IndexPlan(ops.shape_of(a), key).apply(a)


@numpy_function(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    if not isinstance(arr, Tracer):
        arr = np.asarray(arr)
    idx = _as_index_operand(indices)
    if _dtype_kind(idx) not in "iu":
        raise IndexError("`indices` must be an integer array")
    if axis is None:
        if ops.ndim_of(idx) != 1:
            raise ValueError("when axis=None, `indices` must have a single dimension.")
        arr = ops.reshape(arr, (int(np.prod(ops.shape_of(arr), dtype=np.int64)),))
        axis = 0
    (axis,) = ops.normalize_axes(axis, ops.ndim_of(arr))
    if not isinstance(idx, Tracer):
        idx = _IndexPlan._checked(idx, ops.shape_of(arr)[axis], axis)
    return ops_indexing.take_along_axis(arr, idx, axis)
