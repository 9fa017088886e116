"""`tg.custom_vjp` and PyTorch-style `tg.Function`: user-defined reverse-mode derivatives, recorded as
one `custom_vjp_call` equation whose sub-IR is the user's fwd (see custom.py)."""
from __future__ import annotations

import functools

import numpy as np

from .pytree import tree_flatten, tree_unflatten
from .primitives import custom_vjp_call_p
from .staging import check_leaf
from .trace import current_builder, rebinding
from .custom import (CustomFunction, Recorded, check_cotangents, check_outputs, fun_name, in_fwd,
                     is_dynamic, is_float, nondiff_positions, resolve_args, split_nondiff, stale_map)


# ---------------------------------------------------------------- custom_vjp machinery

class _VJPRule:
    """Everything the `custom_vjp_call` VJP rule needs about one call; compared by identity.

    Printed in the IR as `rule=NAME`.
    """

    def __init__(self, key, name, fwd, bwd, in_tree, arg_trees, out_tree, closure_map):
        self.key, self.name = key, name
        self.closure_map = closure_map   # [(Var, index of the closure operand standing for it)]
        self.fwd, self.bwd = fwd, bwd          # fwd(*args) -> (out, res); bwd(res, ct) -> cts
        self.in_tree, self.arg_trees, self.out_tree = in_tree, arg_trees, out_tree
        self.res_tree = None                   # set when the call records residuals
        self.res_static: dict = {}             # residual leaf index -> static Python value
        self.bwd_desc = f"the bwd rule of custom_vjp function '{name}'"

    def __repr__(self):
        return self.name

    def residuals(self, dynamic):
        it = iter(dynamic)
        leaves = [self.res_static[i] if i in self.res_static else next(it)
                  for i in range(self.res_tree.num_leaves)]
        return tree_unflatten(self.res_tree, leaves)

    def recompute_residuals(self, arg_leaves, closure):
        token = in_fwd.set(in_fwd.get() | {self.key})
        try:
            with rebinding(stale_map(self.closure_map, closure)):
                out = self.fwd(*tree_unflatten(self.in_tree, list(arg_leaves)))
            _, res = _split_fwd(out, self.name)
        finally:
            in_fwd.reset(token)
        return res

    def backward(self, res, ct_leaves, primal_leaves, closure):
        with rebinding(stale_map(self.closure_map, closure)):
            got = self.bwd(res, tree_unflatten(self.out_tree, ct_leaves))
        return check_cotangents(got, self.arg_trees, list(primal_leaves), self.name, self.bwd_desc)


def _split_fwd(pair, name):
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise TypeError(f"the fwd rule of custom_vjp function '{name}' must return a pair "
                        f"(output, residuals), got {type(pair).__name__}")
    return pair[0], pair[1]


def _bind_custom_vjp(key, name, fun, fwd, bwd, dyn_args, rule_fns):
    """Record one `custom_vjp_call` of `fwd` (or of `fun` inside its own fwd) on `dyn_args`.

    `rule_fns`: the user's functions whose closures may hold tracers (see `closure_tracers`)."""
    leaves, in_tree = tree_flatten(tuple(dyn_args))
    for i, leaf in enumerate(leaves):
        check_leaf(leaf, f"argument leaf {i} of custom_vjp function '{name}'")
    arg_trees = [tree_flatten(a)[1] for a in dyn_args]
    with_residuals = key not in in_fwd.get()

    def trace(ins):
        args = tree_unflatten(in_tree, ins)
        if with_residuals:
            token = in_fwd.set(in_fwd.get() | {key})
            try:
                out, res = _split_fwd(fwd(*args), name)
            finally:
                in_fwd.reset(token)
        else:
            out, res = fun(*args), None
        out_leaves, out_tree = tree_flatten(out)
        check_outputs(out_leaves, f"output of custom_vjp function '{name}'")
        res_leaves, res_tree = tree_flatten(res)
        dyn = [r for r in res_leaves if is_dynamic(r)]
        static = {i: r for i, r in enumerate(res_leaves) if not is_dynamic(r)}
        return out_leaves + dyn, (out_tree, len(out_leaves), res_tree, static)

    rec = Recorded(leaves, trace, rule_fns)
    out_tree, n_out, res_tree, static = rec.info
    rule = _VJPRule(key, name, fwd, bwd, in_tree, arg_trees, out_tree, rec.closure_map)
    if with_residuals:
        rule.res_tree, rule.res_static = res_tree, static
    outs = rec.bind(custom_vjp_call_p, rule=rule, n_args=len(leaves), n_out=n_out)
    return tree_unflatten(out_tree, outs[:n_out])


class custom_vjp(CustomFunction):
    """A function with a user-defined reverse-mode derivative (JAX semantics).

        @tg.custom_vjp
        def f(x, y): ...
        def f_fwd(x, y): return f(x, y), residuals
        def f_bwd(residuals, ct): return (ct_x, ct_y)      # one entry per argument
        f.defvjp(f_fwd, f_bwd)

    With `nondiff_argnums`, those (static, non-array) arguments are passed to bwd first:
    `bwd(*nondiff_args, residuals, ct)`, and bwd returns cotangents for the other arguments only.
    Forward mode (jvp, jacfwd, hessian) of a custom_vjp function is an error, as in JAX.
    """

    def __init__(self, fun, nondiff_argnums=()):
        if not callable(fun):
            raise TypeError(f"custom_vjp expects a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        """Set the rule: `fwd(*args) -> (out, residuals)`, `bwd(residuals, ct) -> tuple of cts`."""
        if not callable(fwd) or not callable(bwd):
            raise TypeError("defvjp(fwd, bwd) expects two functions")
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args, **kwargs):
        name = fun_name(self.fun)
        args = resolve_args(self.fun, args, kwargs, f"custom_vjp function '{name}'")
        if current_builder() is None:
            return self.fun(*args)
        if self.fwd is None:
            raise TypeError(f"custom_vjp function '{name}' has no VJP rule: call "
                            f"{name}.defvjp(fwd, bwd) before using it")
        nondiff = nondiff_positions(self.nondiff_argnums, len(args), name)
        dyn, static, full = split_nondiff(args, nondiff, name, "custom_vjp function")
        fun, fwd, bwd = self.fun, self.fwd, self.bwd
        return _bind_custom_vjp(
            self, name,
            lambda *d: fun(*full(d)),
            lambda *d: fwd(*full(d)),
            lambda res, ct: bwd(*static, res, ct),
            dyn, (fwd, bwd))

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


# ---------------------------------------------------------------- Function (PyTorch style)

class FunctionCtx:
    """The `ctx` of a `tg.Function`: `save_for_backward(*values)`, `saved_values`, and any attribute
    set in `forward` (arrays among them are carried to `backward` like saved values)."""

    def __init__(self, needs_input_grad=()):
        object.__setattr__(self, "_saved", ())
        object.__setattr__(self, "needs_input_grad", tuple(needs_input_grad))

    def save_for_backward(self, *values):
        object.__setattr__(self, "_saved", tuple(values))

    @property
    def saved_values(self):
        return self._saved

    saved_tensors = saved_values   # PyTorch's name

    def _attributes(self):
        return {k: v for k, v in vars(self).items() if k not in ("_saved", "needs_input_grad")}


class Function:
    """PyTorch-style custom operation:

        class Exp(tg.Function):
            @staticmethod
            def forward(ctx, x):
                y = np.exp(x); ctx.save_for_backward(y); return y
            @staticmethod
            def backward(ctx, g):
                (y,) = ctx.saved_values; return g * y       # one gradient per forward input
        Exp.apply(x)

    Array arguments (NumPy or traced) are differentiable inputs; other arguments (Python numbers,
    strings, ...) are static and must get `None` from `backward`. If `forward` returns a tuple,
    `backward` receives one gradient per element. Works under grad, jit and eager mode; higher order
    when `backward` is written in traceable ops.
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a tg.Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("a tg.Function subclass must define backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args):
        name = cls.__name__
        dyn_idx = [i for i, a in enumerate(args) if is_dynamic(a) or isinstance(a, np.generic)]
        needs = tuple(i in dyn_idx and is_float(args[i]) for i in range(len(args)))
        if current_builder() is None:
            return cls.forward(FunctionCtx(needs), *args)

        def full(dyn):
            merged = list(args)
            for i, a in zip(dyn_idx, dyn):
                merged[i] = a
            return merged

        def fwd(*dyn):
            ctx = FunctionCtx(needs)
            out = cls.forward(ctx, *full(dyn))
            return out, (ctx.saved_values, ctx._attributes())

        def bwd(res, ct):
            saved, attrs = res
            ctx = FunctionCtx(needs)
            ctx.save_for_backward(*saved)
            for k, v in attrs.items():
                object.__setattr__(ctx, k, v)
            # ct has the structure of forward's output: one gradient per output
            grads = cls.backward(ctx, *ct) if isinstance(ct, (tuple, list)) else cls.backward(ctx, ct)
            if not isinstance(grads, (tuple, list)):
                grads = (grads,)
            if len(grads) != len(args):
                raise TypeError(f"{name}.backward returned {len(grads)} gradient"
                                f"{'s' if len(grads) != 1 else ''}, but {name}.forward takes "
                                f"{len(args)} input{'s' if len(args) != 1 else ''} (after ctx): return "
                                f"one per input, None where there is none")
            for i, g in enumerate(grads):
                if i not in dyn_idx and g is not None:
                    raise TypeError(f"{name}.backward returned a gradient for input {i}, which is "
                                    f"not an array ({type(args[i]).__name__}); return None for it")
            return tuple(grads[i] for i in dyn_idx)

        def fun(*dyn):
            return cls.forward(FunctionCtx(needs), *full(dyn))

        return _bind_custom_vjp(cls, name, fun, fwd, bwd, [args[i] for i in dyn_idx],
                                (cls.forward, cls.backward))
