"""Tensor contractions and matrix structure on traced values: einsum (explicit, implicit, ellipsis,
sublist form), tensordot, kron, trace, diagonal, diag, diagflat, triu, tril.

einsum takes repeated labels of one operand as diagonals, sums labels no one else needs, and
contracts operands pairwise, left to right, with `dot_general` (contracted labels are those no later
operand and not the output uses; shared labels still needed are batch dims). Diagonals are strided
slices of the flattened matrix and `diag` a strided pad, so everything here is a composition of core
primitives.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import ops
from .. import ops_linalg
from ._dispatch import numpy_function
from .elementwise import multiply
from .reductions import sum as _sum


# ---------------------------------------------------------------- einsum

_ELL = "..."


def _sublist_to_str(sub):
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for s in sub:
        if s is Ellipsis:
            out.append(_ELL)
        else:
            s = int(s)
            if not 0 <= s < 52:
                raise ValueError(f"subscript is not within the valid range [0, 52), got {s}")
            out.append(letters[s])
    return "".join(out)


def _parse_operands(args):
    """(subscripts, operands) from either einsum form."""
    if isinstance(args[0], str):
        return args[0], list(args[1:])
    ops_, subs = [], []
    rest = list(args)
    while len(rest) >= 2:
        ops_.append(rest.pop(0))
        subs.append(_sublist_to_str(rest.pop(0)))
    spec = ",".join(subs)
    if rest:
        spec += "->" + _sublist_to_str(rest[0])
    return spec, ops_


def _labels(spec, ndim, n_ell, where):
    """Labels for one operand: letters, and ('...', i) for broadcast dims (right-aligned)."""
    if _ELL in spec:
        head, tail = spec.split(_ELL, 1)
        if _ELL in tail:
            raise ValueError(f"einstein sum subscripts string contains more than one '...' in {where}")
        k = ndim - len(head) - len(tail)
        if k < 0:
            raise ValueError(f"einstein sum subscripts string {spec!r} has more dimensions than "
                             f"operand {where} ({ndim})")
        return list(head) + [(_ELL, n_ell - k + i) for i in range(k)] + list(tail)
    if len(spec) != ndim:
        raise ValueError(f"operand has more dimensions than subscripts given in einstein sum, "
                         f"for operand {where} (subscripts {spec!r}, {ndim} dimensions)")
    return list(spec)


def _check_letters(spec):
    for c in spec.replace(_ELL, ""):
        if not c.isalpha():
            raise ValueError(f"invalid subscript {c!r} in einstein sum subscripts string, subscripts "
                             f"must be letters")


def _diagonalize(x, labels):
    """Repeated labels within one operand -> their diagonal (appended as the last axis)."""
    while True:
        dup = next((l for l in labels if labels.count(l) > 1), None)
        if dup is None:
            return x, labels
        i = labels.index(dup)
        j = labels.index(dup, i + 1)
        n = ops.ndim_of(x)
        perm = [a for a in range(n) if a not in (i, j)] + [i, j]
        x = ops_linalg.diag_part(ops.transpose(x, perm))
        labels = [labels[a] for a in range(n) if a not in (i, j)] + [dup]


def _sum_labels(x, labels, drop):
    axes = tuple(i for i, l in enumerate(labels) if l in drop)
    if not axes:
        return x, labels
    return ops.reduce_sum(x, axes), [l for l in labels if l not in drop]


@numpy_function(np.einsum)
def einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe"):
    """Einstein summation (explicit `->`, implicit, `...` broadcasting, and the sublist form)."""
    if out is not None:
        raise TypeError("einsum(..., out=...) cannot write into a traced value")
    spec, arrays = _parse_operands(operands)
    spec = spec.replace(" ", "")
    if "->" in spec:
        ins, out_spec = spec.split("->")
    else:
        ins, out_spec = spec, None
    in_specs = ins.split(",")
    if len(in_specs) != len(arrays):
        raise ValueError(f"more operands provided to einstein sum function than specified in the "
                         f"subscripts string ({len(arrays)} operands, {len(in_specs)} subscripts)")
    arrays = [ops.as_operand(a) for a in arrays]
    if dtype is not None:
        arrays = [ops.as_dtype(a, dtype) for a in arrays]
    arrays = ops.promote(*arrays) if len(arrays) > 1 else arrays
    for s in in_specs + ([out_spec] if out_spec is not None else []):
        _check_letters(s)
    n_ell = 0
    for s, a in zip(in_specs, arrays):
        if _ELL in s:
            n_ell = builtins.max(n_ell, ops.ndim_of(a) - len(s.replace(_ELL, "")))
    labels = [_labels(s, ops.ndim_of(a), n_ell, i) for i, (s, a) in enumerate(zip(in_specs, arrays))]
    ell = [(_ELL, i) for i in range(n_ell)]
    if out_spec is None:
        counts = {}
        for ls in labels:
            for l in ls:
                if isinstance(l, str):
                    counts[l] = counts.get(l, 0) + 1
        out_labels = ell + sorted(l for l, c in counts.items() if c == 1)
    else:
        if out_spec.count(_ELL) > 1:
            raise ValueError("einstein sum subscripts string contains more than one '...' in the output")
        has_ell = builtins.any(builtins.any(not isinstance(l, str) for l in ls) for ls in labels)
        if _ELL in out_spec:
            head, tail = out_spec.split(_ELL)
            out_labels = list(head) + ell + list(tail)
        else:
            if has_ell and n_ell:
                raise ValueError("output has more dimensions than subscripts given in einstein sum, "
                                 "but no '...' ellipsis provided to broadcast the extra dimensions.")
            out_labels = list(out_spec)
        if len(set(out_labels)) != len(out_labels):
            raise ValueError("einstein sum subscripts string includes output subscript more than once")
        known = {l for ls in labels for l in ls}
        for l in out_labels:
            if l not in known and isinstance(l, str):
                raise ValueError(f"einstein sum subscripts string included output subscript {l!r} "
                                 f"which never appeared in an input")
    # label sizes, with NumPy's broadcasting of size-1 dims
    sizes = {}
    for a, ls in zip(arrays, labels):
        for l, d in zip(ls, ops.shape_of(a)):
            prev = sizes.get(l, 1)
            if d != 1 and prev != 1 and d != prev:
                name = "..." if not isinstance(l, str) else l
                raise ValueError(f"operands could not be broadcast together: size {prev} and {d} "
                                 f"for subscript {name!r}")
            # a size-1 dim broadcasts against any size, 0 included
            sizes[l] = d if prev == 1 else prev
    for l in out_labels:
        sizes.setdefault(l, 1)
    terms = []
    for a, ls in zip(arrays, labels):
        a, ls = _diagonalize(a, ls)
        target = tuple(sizes[l] for l in ls)
        if tuple(ops.shape_of(a)) != target:
            a = ops.broadcast_to(a, target)
        terms.append((a, ls))
    # sum labels only one operand has and the output does not need
    for t in range(len(terms)):
        others = {l for k, (_, ls) in enumerate(terms) if k != t for l in ls} | set(out_labels)
        a, ls = terms[t]
        terms[t] = _sum_labels(a, ls, {l for l in ls if l not in others})
    x, xl = terms[0]
    for t in range(1, len(terms)):
        y, yl = terms[t]
        later = {l for _, ls in terms[t + 1:] for l in ls} | set(out_labels)
        shared = [l for l in xl if l in yl]
        batch = [l for l in shared if l in later]
        contract = [l for l in shared if l not in later]
        x = ops.dot_general(x, y, contract=([xl.index(l) for l in contract], [yl.index(l) for l in contract]),
                            batch=([xl.index(l) for l in batch], [yl.index(l) for l in batch]))
        xl = batch + [l for l in xl if l not in shared] + [l for l in yl if l not in shared]
        x, xl = _sum_labels(x, xl, {l for l in xl if l not in later})
    x, xl = _sum_labels(x, xl, {l for l in xl if l not in out_labels})
    missing = [l for l in out_labels if l not in xl]   # labels of size-1 broadcast dims only
    if missing:
        x = ops.reshape(x, tuple(ops.shape_of(x)) + (1,) * len(missing))
        xl = xl + missing
    return ops.transpose(x, [xl.index(l) for l in out_labels])


# ---------------------------------------------------------------- tensordot, kron

@numpy_function(np.tensordot)
def tensordot(a, b, axes=2):
    a, b = ops.promote(ops.as_operand(a), ops.as_operand(b))
    na, nb = ops.ndim_of(a), ops.ndim_of(b)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0:
            raise ValueError("tensordot axes must be non-negative")
        axes_a, axes_b = list(range(na - n, na)), list(range(n))
    else:
        axes_a, axes_b = axes
        axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
    if len(axes_a) != len(axes_b):
        raise ValueError("shape-mismatch for sum")
    axes_a = [ops.normalize_axes(int(i), na)[0] for i in axes_a]
    axes_b = [ops.normalize_axes(int(i), nb)[0] for i in axes_b]
    sa, sb = ops.shape_of(a), ops.shape_of(b)
    if builtins.any(sa[i] != sb[j] for i, j in zip(axes_a, axes_b)):
        raise ValueError("shape-mismatch for sum")
    return ops.dot_general(a, b, contract=(axes_a, axes_b))


@numpy_function(np.kron)
def kron(a, b):
    a, b = ops.as_operand(a), ops.as_operand(b)
    sa, sb = tuple(ops.shape_of(a)), tuple(ops.shape_of(b))
    nd = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    ar = ops.reshape(a, builtins.sum(((d, 1) for d in sa), ()))
    br = ops.reshape(b, builtins.sum(((1, d) for d in sb), ()))
    return ops.reshape(multiply(ar, br), tuple(x * y for x, y in zip(sa, sb)))


# ---------------------------------------------------------------- diagonals and triangles

def _diagonal(a, offset, axis1, axis2):
    nd = ops.ndim_of(a)
    if nd < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    i = ops.normalize_axes(axis1, nd, "axis1")[0]
    j = ops.normalize_axes(axis2, nd, "axis2")[0]
    if i == j:
        raise ValueError("axis1 and axis2 cannot be the same")
    perm = [k for k in range(nd) if k not in (i, j)] + [i, j]
    return ops_linalg.diag_part(ops.transpose(a, perm), int(offset))


@numpy_function(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    return _diagonal(ops.as_operand(a), offset, axis1, axis2)


@numpy_function(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if out is not None:
        raise TypeError("trace(..., out=...) cannot write into a traced value")
    return _sum(_diagonal(ops.as_operand(a), offset, axis1, axis2), axis=-1, dtype=dtype)


@numpy_function(np.diag)
def diag(v, k=0):
    v = ops.as_operand(v)
    nd = ops.ndim_of(v)
    if nd == 1:
        n = ops.shape_of(v)[0] + builtins.abs(int(k))
        return ops_linalg.diag_embed(v, n, n, int(k))
    if nd == 2:
        return ops_linalg.diag_part(v, int(k))
    raise ValueError("Input must be 1- or 2-d.")


@numpy_function(np.diagflat)
def diagflat(v, k=0):
    v = ops.as_operand(v)
    return diag(ops.reshape(v, (int(np.prod(ops.shape_of(v), dtype=np.int64)),)), k)


def _triangle(m, k, lower):
    m = ops.as_operand(m)
    shape = tuple(ops.shape_of(m))[-2:]
    if not shape:
        raise ValueError("tril/triu need an array of at least one dimension")
    n, c = (shape[0], shape[0]) if len(shape) == 1 else shape
    mask = ops_linalg.tri_mask(n, c, int(k), lower)
    return ops.select(mask, m, np.zeros((), ops.dtype_of(m))[()])


@numpy_function(np.tril)
def tril(m, k=0):
    return _triangle(m, k, True)


@numpy_function(np.triu)
def triu(m, k=0):
    return _triangle(m, k, False)
