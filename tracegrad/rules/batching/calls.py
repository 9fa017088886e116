"""Batch rules of the call primitives (`custom_vjp_call`, `custom_jvp_call`, `callback`) and of
`debug_print`.

A batched custom-derivative call stays a custom-derivative call: its `call` sub-IR is batched (all
its outputs batched along axis 0) and its `rule` becomes a batched rule whose methods run the user's
rule per member the way vmap runs any function (as JAX batches custom rules): the user's method is
traced at per-example shapes and its equations are batched. The cotangent of an argument shared by
all members is the sum over the members.

`callback` follows the callback's `vmap_method` (tg.pure_callback's keyword): "sequential" calls
the Python function once per member and stacks the results; "expand_dims" calls it once with the
batched arguments (batch axis first; unbatched ones get a leading axis of 1) and "broadcast_all"
with every argument broadcast to the batch: the function must then return the batched results.
`debug_print` prints once per member, as JAX does; a `random` draw is made once for the whole batch.
"""
from __future__ import annotations

import numpy as np

from ... import primitives as P
from ...batching import (batch_body, batch_size, batch_traced, defbatch, drop_batch, move_dim,
                         take_member, to_front)
from ...ir import Aval
from ...ops import reshape, shape_of
from ...pytree import tree_flatten, tree_unflatten
from ...trace import Tracer, bind


def _front(args, dims):
    return ([x if d is None else move_dim(x, d, 0) for x, d in zip(args, dims)],
            [0 if d is not None else None for d in dims])


def _split(seq, sizes):
    out, k = [], 0
    for n in sizes:
        out.append(list(seq[k:k + n]))
        k += n
    return out


def _present(values):
    keep = [k for k, v in enumerate(values) if v is not None]
    return [values[k] for k in keep], keep


def _place(n, keep, values):
    out = [None] * n
    for k, v in zip(keep, values):
        out[k] = v
    return out


def _is_dynamic(x) -> bool:
    """An array value of a residual pytree (the rest are static Python values)."""
    return isinstance(x, (Tracer, np.ndarray))


class _BatchedRule:
    """The user's rule of a call batched over `size` members (compared by identity)."""

    def __init__(self, rule, arg_dims, closure_dims, size):
        self.rule, self.name, self.size = rule, rule.name, size
        self.arg_dims, self.closure_dims = list(arg_dims), list(closure_dims)

    def __repr__(self):
        return f"vmap({self.rule!r})"

    def _run(self, method, groups, group_dims, n_result, result_dims):
        """Batch `method(*groups of per-member values) -> list (None: zero)` over the members;
        each result k comes out batched along axis 0 if `result_dims[k]` is 0, else (a cotangent
        of an unbatched argument) summed over the members."""
        flat = [x for g in groups for x in g]

        def fn(*ins):
            return _present(method(*_split(ins, [len(g) for g in groups])))

        outs, dims, keep = batch_traced(fn, flat, [d for ds in group_dims for d in ds])
        res = [to_front(o, d, self.size) if result_dims[k] == 0 else drop_batch(o, d)
               for o, d, k in zip(outs, dims, keep)]
        return _place(n_result, keep, res)


class _BatchedVJP(_BatchedRule):
    """`rule` of a batched custom_vjp_call: residuals and output cotangents are batched along 0."""

    def residuals(self, dynamic):
        return ("saved", list(dynamic))

    def recompute_residuals(self, arg_leaves, closure):
        def fn(*ins):
            res = self.rule.recompute_residuals(ins[:len(arg_leaves)], ins[len(arg_leaves):])
            leaves, tree = tree_flatten(res)
            dyn = [x for x in leaves if _is_dynamic(x)]
            static = {i: x for i, x in enumerate(leaves) if not _is_dynamic(x)}
            return dyn, (tree, static)

        outs, dims, (tree, static) = batch_traced(fn, list(arg_leaves) + list(closure),
                                                  self.arg_dims + self.closure_dims)
        return ("tree", tree, static, [to_front(o, d, self.size) for o, d in zip(outs, dims)])

    def _rebuild(self, res, dyn):
        if res[0] == "saved":
            return self.rule.residuals(dyn)
        _, tree, static = res[:3]
        it = iter(dyn)
        return tree_unflatten(tree, [static[i] if i in static else next(it)
                                     for i in range(tree.num_leaves)])

    def backward(self, res, ct_leaves, primal_leaves, closure):
        dyn = res[1] if res[0] == "saved" else res[3]

        def method(d, cts, prim, clo):
            return list(self.rule.backward(self._rebuild(res, d), cts, prim, clo))

        groups = [dyn, list(ct_leaves), list(primal_leaves), list(closure)]
        dims = [[0] * len(dyn), [0] * len(ct_leaves), self.arg_dims, self.closure_dims]
        return self._run(method, groups, dims, len(primal_leaves), self.arg_dims)


class _BatchedJVP(_BatchedRule):
    """`rule` of a batched custom_jvp_call: tangents are batched as their primals; all outputs
    (so all output tangents and cotangents) are batched along 0."""

    def __init__(self, rule, arg_dims, closure_dims, size, n_out):
        super().__init__(rule, arg_dims, closure_dims, size)
        self.n_out = n_out

    def jvp(self, arg_leaves, tangent_leaves, closure):
        tangents, keep = _present(list(tangent_leaves))
        n = len(arg_leaves)

        def method(args, ts, clo):
            return list(self.rule.jvp(args, _place(n, keep, ts), clo))

        groups = [list(arg_leaves), tangents, list(closure)]
        dims = [self.arg_dims, [self.arg_dims[k] for k in keep], self.closure_dims]
        return self._run(method, groups, dims, self.n_out, [0] * self.n_out)

    def transpose(self, arg_leaves, cts, active, closure):
        given, keep = _present(list(cts))

        def method(args, cs, clo):
            return list(self.rule.transpose(args, _place(self.n_out, keep, cs), active, clo))

        groups = [list(arg_leaves), given, list(closure)]
        dims = [self.arg_dims, [0] * len(given), self.closure_dims]
        return self._run(method, groups, dims, len(arg_leaves), self.arg_dims)


def _custom_call(prim, make_rule):
    def rule(args, dims, *, call, rule, n_args, **params):
        size = batch_size(args, dims)
        operands, d0 = _front(args, dims)
        new, extras, _ = batch_body(call, [d is not None for d in d0], size,
                                    force=[True] * len(call.outputs))
        brule = make_rule(rule, d0[:n_args], d0[n_args:] + [None] * len(extras), size, len(call.outputs))
        outs = bind(prim, *operands, *extras, call=new, rule=brule, n_args=n_args, **params)
        return outs, [0] * len(outs)
    return rule


defbatch(P.custom_vjp_call_p, _custom_call(
    P.custom_vjp_call_p, lambda r, ad, cd, size, n: _BatchedVJP(r, ad, cd, size)))
defbatch(P.custom_jvp_call_p, _custom_call(P.custom_jvp_call_p, _BatchedJVP))


# ---------------------------------------------------------------- callback

class _Sequential:
    """A callback called once per member (the batched arguments sliced), results stacked."""

    def __init__(self, inner, batched, avals):
        self.inner, self.batched, self.avals = inner, tuple(batched), tuple(avals)
        self.name, self.vmap_method = inner.name, inner.vmap_method

    def __repr__(self):
        return f"vmap({self.inner!r})"

    def __call__(self, *arrays):
        size = self.avals[0].shape[0] if self.avals else 0
        rows = [self.inner(*[a[b] if t else a for a, t in zip(arrays, self.batched)])
                for b in range(size)]
        return tuple(np.stack([r[k] for r in rows]) if rows else np.zeros(a.shape, a.dtype)
                     for k, a in enumerate(self.avals))


_METHODS = ("sequential", "expand_dims", "broadcast_all")


def _callback(args, dims, *, callback, result_avals):
    size = batch_size(args, dims)
    avals = tuple(Aval((size,) + a.shape, a.dtype) for a in result_avals)
    method = callback.vmap_method
    if method == "sequential":
        operands, d0 = _front(args, dims)
        holder = _Sequential(callback, [d is not None for d in d0], avals)
    else:
        if method == "expand_dims":
            operands = [to_front(a, d) if d is not None else reshape(a, (1,) + tuple(shape_of(a)))
                        for a, d in zip(args, dims)]
        else:
            operands = [to_front(a, d, size) for a, d in zip(args, dims)]
        holder = callback.with_avals(avals)
    outs = bind(P.callback_p, *operands, callback=holder, result_avals=avals)
    return outs, [0] * len(outs)


defbatch(P.callback_p, _callback)


# ---------------------------------------------------------------- debug_print

def _debug_print(args, dims, *, fmt):
    for b in range(batch_size(args, dims)):
        bind(P.debug_print_p, *[take_member(a, d, b) for a, d in zip(args, dims)], fmt=fmt)
    return (), ()


defbatch(P.debug_print_p, _debug_print)


# ---------------------------------------------------------------- random

def _random(args, dims, *, draw):
    # A draw has no operands (traced parameters are applied to a standard draw outside it), so it
    # is never batched: a vmapped function draws once, as it does in eager mode, where it is traced
    # once at per-example shapes too.
    outs = bind(P.random_p, draw=draw)
    return tuple(outs), (None,) * len(outs)


defbatch(P.random_p, _random)
