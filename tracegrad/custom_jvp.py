"""`tg.custom_jvp`: user-defined forward-mode derivatives, recorded as one `custom_jvp_call` equation
(reverse mode transposes the tangent map the user's rule defines)."""
from __future__ import annotations

import functools

import numpy as np

from . import ops
from .autodiff import backward_pass
from .ir import Var
from .pytree import tree_flatten, tree_unflatten
from .primitives import custom_jvp_call_p
from .rules.custom import materialize
from .staging import check_leaf
from .childtrace import trace_child
from .trace import current_builder, rebinding
from .custom import (CustomFunction, Recorded, check_outputs, fun_name, is_float, nondiff_positions,
                     resolve_args, split_nondiff, stale_map)


# ---------------------------------------------------------------- custom_jvp

class _JVPRule:
    """Everything the `custom_jvp_call` rules need about one call; compared by identity."""

    def __init__(self, name, jvp, in_tree, arg_trees, out_tree, out_avals, closure_map):
        self.name, self._jvp = name, jvp    # jvp(primals_tuple, tangents_tuple) -> (out, t_out)
        self.closure_map = closure_map
        self.in_tree, self.arg_trees, self.out_tree = in_tree, arg_trees, out_tree
        self.out_avals = out_avals
        self.desc = f"the jvp rule of custom_jvp function '{name}'"

    def __repr__(self):
        return self.name

    def jvp(self, arg_leaves, tangent_leaves, closure):
        """Output tangent leaves (None for non-float outputs) from the user's rule."""
        arg_leaves = list(arg_leaves)
        tangents = materialize(tangent_leaves, arg_leaves)
        with rebinding(stale_map(self.closure_map, closure)):
            res = self._jvp(tree_unflatten(self.in_tree, arg_leaves),
                            tree_unflatten(self.in_tree, tangents))
        if not (isinstance(res, (tuple, list)) and len(res) == 2):
            raise TypeError(f"{self.desc} must return a pair (primal_out, tangent_out), "
                            f"got {type(res).__name__}")
        t_leaves, t_tree = tree_flatten(res[1])
        if t_tree != self.out_tree:
            raise TypeError(f"{self.desc} returned a tangent of structure {t_tree}, but '{self.name}' "
                            f"returns {self.out_tree}")
        out = []
        for k, (t, aval) in enumerate(zip(t_leaves, self.out_avals)):
            if t is None or not aval.is_float:
                out.append(None)
                continue
            if tuple(ops.shape_of(t)) != aval.shape:
                raise ValueError(f"{self.desc} returned a tangent of shape {tuple(ops.shape_of(t))} "
                                 f"for output {k}, whose shape is {aval.shape}")
            out.append(ops.as_dtype(t, aval.dtype))
        return out

    def transpose(self, arg_leaves, cts, active, closure):
        """Cotangents of the arguments: the transpose of the tangent map `self.jvp` defines.

        The tangent map is traced with the tangents as inputs of a child builder, evaluated in the
        current one (at zero tangents: the map is linear, so only the primal-dependent coefficients
        matter) and reverse-mode differentiated with respect to those inputs.
        """
        arg_leaves = list(arg_leaves)
        idx = [i for i, a in enumerate(arg_leaves) if active[i] and is_float(a)]
        if not idx or all(c is None for c in cts):
            return [None] * len(arg_leaves)
        zeros = [np.zeros(ops.shape_of(arg_leaves[i]), ops.dtype_of(arg_leaves[i])) for i in idx]

        def tangent_map(*t_in):
            tangents = [None] * len(arg_leaves)
            for i, t in zip(idx, t_in):
                tangents[i] = t
            t_out = self.jvp(arg_leaves, tangents, closure)
            keep = [k for k, (t, c) in enumerate(zip(t_out, cts)) if t is not None and c is not None]
            return [t_out[k] for k in keep], keep

        child = trace_child(tangent_map, zeros, eager=current_builder().eager, weak=[False] * len(zeros))
        sub, keep = child.ir, child.aux
        env = child.replay(zeros)
        seeds: dict = {}
        for v, k in zip(sub.outputs, keep):
            if isinstance(v, Var) and v.aval.is_float:
                seeds[v] = cts[k] if v not in seeds else ops.add(seeds[v], cts[k])
        got = backward_pass(sub.eqns, env, seeds, sub.inputs[:len(idx)]) if seeds else [None] * len(idx)
        result = [None] * len(arg_leaves)
        for i, g in zip(idx, got):
            result[i] = g
        return result


class custom_jvp(CustomFunction):
    """A function with a user-defined forward-mode derivative (JAX semantics).

        @tg.custom_jvp
        def f(x, y): ...
        @f.defjvp
        def f_jvp(primals, tangents):      # tuples, one entry per argument
            x, y = primals; x_dot, y_dot = tangents
            return f(x, y), tangent_out

    Reverse mode transposes the tangent map the rule defines (it must be linear in the tangents,
    as every correct JVP is). With `nondiff_argnums`, those static arguments come first:
    `jvp_rule(*nondiff_args, primals, tangents)`.
    """

    def __init__(self, fun, nondiff_argnums=()):
        if not callable(fun):
            raise TypeError(f"custom_jvp expects a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp = None

    def defjvp(self, jvp):
        """Set the rule `jvp(primals, tangents) -> (primal_out, tangent_out)`; returns it, so
        `@f.defjvp` works as a decorator."""
        if not callable(jvp):
            raise TypeError("defjvp expects a function")
        self.jvp = jvp
        return jvp

    def __call__(self, *args, **kwargs):
        name = fun_name(self.fun)
        args = resolve_args(self.fun, args, kwargs, f"custom_jvp function '{name}'")
        if current_builder() is None:
            return self.fun(*args)
        if self.jvp is None:
            raise TypeError(f"custom_jvp function '{name}' has no JVP rule: call "
                            f"{name}.defjvp(jvp_rule) before using it")
        nondiff = nondiff_positions(self.nondiff_argnums, len(args), name)
        dyn, static, full = split_nondiff(args, nondiff, name, "custom_jvp function")
        leaves, in_tree = tree_flatten(tuple(dyn))
        for i, leaf in enumerate(leaves):
            check_leaf(leaf, f"argument leaf {i} of custom_jvp function '{name}'")
        fun, user_jvp = self.fun, self.jvp

        def trace(ins):
            out = fun(*full(tree_unflatten(in_tree, ins)))
            out_leaves, out_tree = tree_flatten(out)
            check_outputs(out_leaves, f"output of custom_jvp function '{name}'")
            return out_leaves, out_tree

        rec = Recorded(leaves, trace, (user_jvp,))
        out_tree = rec.info
        rule = _JVPRule(name, lambda p, t: user_jvp(*static, tuple(p), tuple(t)), in_tree,
                        [tree_flatten(a)[1] for a in dyn], out_tree, tuple(rec.ir.out_avals),
                        rec.closure_map)
        outs = rec.bind(custom_jvp_call_p, rule=rule, n_args=len(leaves))
        return tree_unflatten(out_tree, outs)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)
