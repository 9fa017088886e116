"""Strided access maps over flat buffers: why views cost nothing and loops can fuse.

Every array in generated code is a flat, C-contiguous 1-D buffer; its IR shape is static. A value
is then read through an `Access`: element `idx` of the viewed shape lives at
`root[offset + sum(idx[k] * strides[k])]`. Views (reshape, broadcast_to, transpose, slice, rev)
only transform the map, so they emit no code unless someone needs them as a real array.
`collapse` merges loop axes that every access walks contiguously, so most fused loops are 1-D.
"""
from __future__ import annotations

from dataclasses import dataclass


def c_strides(shape) -> tuple:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


def run_time_sized(aval) -> bool:
    """A leading dimension of -1: a length known only at run time (a loop's saved residuals)."""
    return bool(aval.shape) and aval.shape[0] == -1


def size_of(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass(frozen=True)
class Access:
    """`shape`-shaped view of `root` (a Var or Lit); a scalar root has all-zero strides."""
    root: object
    offset: int
    strides: tuple
    shape: tuple

    @property
    def scalar_root(self) -> bool:
        return self.root.aval.shape == ()

    def is_c_contiguous(self) -> bool:
        """Elements lie in one C-ordered block starting at `offset` (size-1 axes don't matter)."""
        if self.scalar_root:
            return size_of(self.shape) <= 1
        return all(s == c or d == 1 for s, c, d in zip(self.strides, c_strides(self.shape), self.shape))

    def covers_root(self) -> bool:
        """The whole root buffer, in order: the view is the root itself under another shape."""
        return (not self.scalar_root and self.offset == 0 and self.is_c_contiguous()
                and size_of(self.shape) == size_of(self.root.aval.shape))


def identity(var) -> Access:
    shape = var.aval.shape
    if shape == ():
        return Access(var, 0, (), ())
    return Access(var, 0, c_strides(shape), shape)


def broadcast(acc: Access, shape) -> Access:
    """NumPy broadcasting of `acc` to `shape` (right-aligned; size-1 axes get stride 0)."""
    shape = tuple(shape)
    if acc.shape == shape:
        return acc
    lead = len(shape) - len(acc.shape)
    strides = [0] * lead
    for d, s, n in zip(acc.shape, acc.strides, shape[lead:]):
        strides.append(0 if d == 1 and n != 1 else s)
    return Access(acc.root, acc.offset, tuple(strides), shape)


def reshape(acc: Access, shape) -> Access | None:
    """`acc` under a new shape of the same size, or None when that is not a strided view."""
    shape = tuple(shape)
    if acc.scalar_root or all(s == 0 for s, d in zip(acc.strides, acc.shape) if d != 1):
        # every element is the same one (a broadcast scalar): any shape reads it the same way
        return Access(acc.root, acc.offset, (0,) * len(shape), shape)
    if acc.is_c_contiguous():
        return Access(acc.root, acc.offset, c_strides(shape), shape)
    # only size-1 axes inserted or removed: the other axes keep their strides, in order
    old = [(d, s) for d, s in zip(acc.shape, acc.strides) if d != 1]
    if [d for d, _ in old] == [d for d in shape if d != 1]:
        it = iter(old)
        return Access(acc.root, acc.offset, tuple(next(it)[1] if d != 1 else 0 for d in shape), shape)
    return None


def transpose(acc: Access, perm) -> Access:
    return Access(acc.root, acc.offset, tuple(acc.strides[p] for p in perm),
                  tuple(acc.shape[p] for p in perm))


def slice_(acc: Access, start, limit, steps, out_shape) -> Access:
    offset = acc.offset + sum(b * s for b, s in zip(start, acc.strides))
    return Access(acc.root, offset, tuple(s * st for s, st in zip(acc.strides, steps)), tuple(out_shape))


def rev(acc: Access, axes) -> Access:
    offset, strides = acc.offset, list(acc.strides)
    for a in axes:
        if acc.shape[a] > 0:
            offset += (acc.shape[a] - 1) * strides[a]
        strides[a] = -strides[a]
    return Access(acc.root, offset, tuple(strides), acc.shape)


def collapse(shape, patterns, masks=()):
    """Merge adjacent loop axes and drop size-1 axes.

    `patterns` are stride vectors (one per access) and `masks` tuples of bools (one per reduction,
    True = reduced axis). Axes k and k+1 merge when every pattern walks them as one axis
    (stride[k] == stride[k+1] * shape[k+1]) and every mask treats them alike.
    Returns (shape, patterns, masks) over the collapsed axes.
    """
    keep = [k for k, d in enumerate(shape) if d != 1]
    dims = [shape[k] for k in keep]
    pats = [[p[k] for k in keep] for p in patterns]
    msks = [[m[k] for k in keep] for m in masks]
    k = len(dims) - 2
    while k >= 0:
        if all(p[k] == p[k + 1] * dims[k + 1] for p in pats) and all(m[k] == m[k + 1] for m in msks):
            dims[k] *= dims[k + 1]
            del dims[k + 1]
            for p in pats:
                p[k] = p[k + 1]
                del p[k + 1]
            for m in msks:
                del m[k + 1]
        k -= 1
    return tuple(dims), [tuple(p) for p in pats], [tuple(m) for m in msks]


def add_offset(a, b):
    """Offsets are ints, or text for run-time ones (a loop body's slice of an array)."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    terms = [str(t) for t in (a, b) if str(t) != "0"]
    return " + ".join(terms) or 0
