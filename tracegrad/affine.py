"""Integer scalars as affine forms over what has been recorded: how a slice with traced bounds,
`x[i * bs:(i + 1) * bs]`, knows its length while the function is being traced.

`form(x)` walks back from an integer 0-d tracer through the equations its builder recorded (and,
for a value captured from an enclosing trace, the enclosing builder's) and writes it as
`constant + sum(coefficient * atom)`. The walk looks through `+`, `-`, negation, products with a
constant, integer conversions and reshapes of scalars; anything else is an atom. Atoms are numbered
by value: two equations of one primitive with equal parameters on the same operands (`a[0]` written
twice) are the same atom, unless the primitive has effects or holds sub-IRs; inputs are atoms by
identity. Two bounds whose forms differ only in the constant (`difference`) are a constant apart
whatever the atoms' values. Integer wrap-around is ignored here: what relies on it
(`ops_indexing.dynamic_slice_indices`) checks the actual bounds at run time.
"""
from __future__ import annotations

from . import primitives as P
from .ir import Lit, Var
from .trace import Tracer

# primitives through which an integer scalar stays affine in its operands
_LINEAR = frozenset((P.add_p, P.sub_p, P.neg_p, P.mul_p, P.convert_p, P.reshape_p, P.broadcast_to_p))
_BY_IDENTITY = ("control", "call", "effect")     # families whose equations are never merged
MAX_NODES = 10_000      # values visited by one walk before the rest count as atoms by identity


def _int_scalar(aval) -> bool:
    return aval.shape == () and aval.dtype.kind in "iu"


def _looks_through(e) -> bool:
    if e.prim not in _LINEAR or len(e.outs) != 1 or not _int_scalar(e.outs[0].aval):
        return False
    if e.prim in (P.convert_p, P.reshape_p, P.broadcast_to_p):
        return _int_scalar(e.inputs[0].aval)
    return True


def _scaled(f, c):
    coef, const = f
    return ({a: c * k for a, k in coef.items()} if c else {}), c * const


def _sum(f, g, sign=1):
    coef = dict(f[0])
    for a, k in g[0].items():
        k = coef.get(a, 0) + sign * k
        if k:
            coef[a] = k
        else:
            coef.pop(a, None)
    return coef, f[1] + sign * g[1]


def _combine(e, forms):
    """The form of e's output from its operands' forms (None: the output is an atom)."""
    if any(f is None for f in forms):
        return None
    p = e.prim
    if p is P.add_p:
        return _sum(forms[0], forms[1])
    if p is P.sub_p:
        return _sum(forms[0], forms[1], -1)
    if p is P.neg_p:
        return _scaled(forms[0], -1)
    if p is P.mul_p:
        (fa, ca), (fb, cb) = forms
        if not fa:
            return _scaled(forms[1], ca)
        if not fb:
            return _scaled(forms[0], cb)
        return None
    return forms[0]          # convert, reshape, broadcast_to of a scalar


def _atom(key, aval):
    return key, (({key: 1}, 0) if _int_scalar(aval) else None)


def _lit(a):
    v = a.value
    return ("lit", a.aval.dtype.str, v.item() if hasattr(v, "item") else v), \
        (({}, int(v)) if _int_scalar(a.aval) else None)


def _number(e, v, ins):
    """(value number, form or None) of e's output `v` from its operands' (value number, form)."""
    if _looks_through(e):
        f = _combine(e, [i[1] for i in ins])
        if f is not None:
            return ("affine", frozenset(f[0].items()), f[1]), f
    if e.prim.effectful or e.prim.family in _BY_IDENTITY:
        return _atom(v, v.aval)
    try:
        params = tuple(sorted(e.params.items()))
        hash(params)
    except TypeError:
        return _atom(v, v.aval)
    key = ("eqn", e.prim.name, params, tuple(i[0] for i in ins), e.outs.index(v))
    return _atom(key, v.aval)


def form(x, memo=None):
    """(coefficients {atom: int}, constant int) with x == constant + sum(k * atom); `x` an integer
    0-d tracer or a Python/NumPy integer. Walks sharing `memo` (a dict) share their work."""
    if not isinstance(x, Tracer):
        return {}, int(x)
    memo = {} if memo is None else memo         # Var -> (value number, form or None)
    stack = [(x.node, x.builder)]
    budget = MAX_NODES
    while stack:
        v, b = stack[-1]
        if v in memo:
            stack.pop()
            continue
        e = b.producer(v)
        if e is None:
            outer = b.captured_tracer(v) if budget > 0 else None
            if outer is None:                    # an input or a constant
                memo[v] = _atom(v, v.aval)
                stack.pop()
            elif outer.node in memo:             # a capture: the enclosing value's number
                memo[v] = memo[outer.node]
                stack.pop()
            else:
                stack.append((outer.node, outer.builder))
                budget -= 1
            continue
        if budget <= 0:
            memo[v] = _atom(v, v.aval)
            stack.pop()
            continue
        todo = [(a, b) for a in e.inputs if isinstance(a, Var) and a not in memo]
        if todo:
            stack.extend(todo)
            budget -= len(todo)
            continue
        memo[v] = _number(e, v, [memo[a] if isinstance(a, Var) else _lit(a) if isinstance(a, Lit)
                                 else _atom(object(), a.aval) for a in e.inputs])
        stack.pop()
    f = memo[x.node][1]
    return f if f is not None else ({x.node: 1}, 0)


def difference(a, b):
    """`b - a` as an int when it is the same whatever the traced values (None otherwise)."""
    memo: dict = {}
    fa, fb = form(a, memo), form(b, memo)
    if fa[0] != fb[0]:
        return None
    return fb[1] - fa[1]
