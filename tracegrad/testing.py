"""`check_grads`: derivatives against central finite differences in float64."""
from __future__ import annotations

import numpy as np

from .pytree import tree_flatten, tree_unflatten
from .transforms import jvp, vjp


def _is_float(x):
    return np.asarray(x).dtype.kind == "f"


def _flat_out(out):
    leaves, _ = tree_flatten(out)
    return [np.asarray(l, dtype=np.float64) for l in leaves]


def _compare(what, got, want, atol, rtol):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"check_grads: {what}: shape {got.shape} != finite-difference shape {want.shape}")
    err = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err - bound, -np.inf) if err.ndim else 0)),
                             err.shape) if err.ndim else ()
        raise AssertionError(
            f"check_grads: {what} disagrees with central finite differences: worst at index {i}: "
            f"got {got[i]!r}, finite differences {want[i]!r} (|diff| {err[i]:.3g}, "
            f"allowed {bound[i]:.3g}; {int(bad.sum())} of {bad.size} entries off)")


def check_grads(fun, args=None, order=None, modes=("fwd", "rev"), atol=None, rtol=None, eps=1e-5,
                *, argnum=None):
    """Check `fun`'s derivatives at `args` (a tuple) up to `order` (default 1), in forward and/or
    reverse mode (`modes`: "fwd", "rev", or a list of them).

    Floating-point arguments are promoted to float64 and perturbed along random directions; the
    directional derivative from `tg.jvp` and the dot product `<u, J v>` from `tg.vjp` are compared with
    central differences. Order n checks the derivative maps themselves at order n-1. `argnum` (an
    int or a tuple) limits the check to those arguments. Raises AssertionError with the worst
    mismatch.

    autograd's spellings work too: `check_grads(fun, modes=["rev"], order=2)(*args)` and
    `check_grads(fun, argnum)(*args)` return a checker that perturbs argument `argnum` (default 0)
    and, as in autograd, checks up to order 2 unless told otherwise.
    """
    if isinstance(order, (str, list, tuple)):     # autograd's check_grads(fun, argnum, modes, ...)
        order, modes = None, order
    if args is None or _is_argnum(args):
        nums = args if args is not None else (0 if argnum is None else argnum)

        def checker(*call_args, **call_kwargs):
            check_grads(lambda *a: fun(*a, **call_kwargs), call_args, 2 if order is None else order,
                        modes, atol, rtol, eps, argnum=nums)
        return checker
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    for m in modes:
        if m not in ("fwd", "rev"):
            raise ValueError(f"check_grads: unknown mode {m!r} (use 'fwd' and/or 'rev')")
    order = 1 if order is None else order
    atol = 1e-6 if atol is None else atol
    rtol = 1e-5 if rtol is None else rtol
    args = tuple(args)
    if argnum is not None:
        nums = (argnum,) if isinstance(argnum, int) else tuple(argnum)
        for i in nums:
            if not -len(args) <= i < len(args):
                raise ValueError(f"check_grads: argnum {i} is out of range for {len(args)} arguments")
        nums = {i % len(args) for i in nums}
        free = tuple(args[i] for i in sorted(nums))

        def only(*xs):
            full, it = list(args), iter(xs)
            for i in sorted(nums):
                full[i] = next(it)
            return fun(*full)
        return check_grads(only, free, order, modes, atol, rtol, eps)
    leaves, tree = tree_flatten(args)
    leaves = [np.asarray(l, np.float64) if _is_float(l) else l for l in leaves]
    slots = [i for i, l in enumerate(leaves) if _is_float(l)]
    if not slots:
        raise TypeError("check_grads needs at least one floating-point argument")

    def f_of(xs):
        full = list(leaves)
        for i, x in zip(slots, xs):
            full[i] = x
        return fun(*tree_unflatten(tree, full))

    _check(f_of, [leaves[i] for i in slots], order, modes, atol, rtol, eps, np.random.default_rng(0))


def _is_argnum(a) -> bool:
    """autograd passes argument numbers where tracegrad takes the arguments: an int, or a tuple
    of ints (arguments themselves are arrays; a tuple of Python ints would not be checkable)."""
    if isinstance(a, int) and not isinstance(a, bool):
        return True
    return isinstance(a, (tuple, list)) and len(a) > 0 and \
        all(isinstance(i, int) and not isinstance(i, bool) for i in a)


def _check(f, xs, order, modes, atol, rtol, eps, rng):
    xs = [np.asarray(x, np.float64) for x in xs]
    vs = [rng.standard_normal(x.shape) for x in xs]
    # np.asarray: a 0-d input must stay a 0-d array (x + eps * v would be a NumPy scalar)
    plus = _flat_out(f([np.asarray(x + eps * v) for x, v in zip(xs, vs)]))
    minus = _flat_out(f([np.asarray(x - eps * v) for x, v in zip(xs, vs)]))
    fd = [(p - m) / (2 * eps) for p, m in zip(plus, minus)]
    g = lambda *ys: f(list(ys))
    scale = 1 + max((float(np.max(np.abs(o))) for o in plus if o.size), default=0.0)
    if "fwd" in modes:
        _, t_out = jvp(g, tuple(xs), tuple(vs))
        for k, (t, want) in enumerate(zip(_flat_out(t_out), fd)):
            _compare(f"forward mode (order {order}) output {k}", t, want, atol * scale, rtol)
    if "rev" in modes:
        out, pullback = vjp(g, *xs)
        out_leaves, out_tree = tree_flatten(out)
        us = [rng.standard_normal(np.shape(o)) if _is_float(o) else np.zeros(np.shape(o))
              for o in out_leaves]
        cts = pullback(tree_unflatten(out_tree, [np.asarray(u, np.asarray(o).dtype)
                                                 for u, o in zip(us, out_leaves)]))
        lhs = sum(float(np.sum(np.asarray(c, np.float64) * v)) for c, v in zip(cts, vs))
        rhs = sum(float(np.sum(u * d)) for u, d in zip(us, fd))
        mag = sum(float(np.sum(np.abs(u * d))) for u, d in zip(us, fd)) + 1.0
        _compare(f"reverse mode (order {order}) <vjp(u), v>", lhs, rhs, atol * scale * mag, rtol)
    if order > 1:
        if "fwd" in modes:
            _check(lambda ys: jvp(lambda *zs: f(list(zs)), tuple(ys), tuple(vs))[1],
                   xs, order - 1, modes, atol, rtol, eps, rng)
        if "rev" in modes:
            out = f(xs)
            out_leaves, out_tree = tree_flatten(out)
            us = [np.asarray(rng.standard_normal(np.shape(o)), np.asarray(o).dtype) for o in out_leaves]
            ct = tree_unflatten(out_tree, us)
            _check(lambda ys: vjp(lambda *zs: f(list(zs)), *ys)[1](ct),
                   xs, order - 1, modes, atol, rtol, eps, rng)
