"""Custom derivatives and opaque Python: `custom_vjp`, `custom_jvp`, `Function`, `pure_callback`.

This module owns the user-facing side: resolving arguments, tracing the user's function into a sub-IR
and binding one `custom_vjp_call` / `custom_jvp_call` / `callback` equation (rules in
`tracegrad/rules/custom.py`), and the per-call "rule" objects that those equations' derivative rules
call back into (the user's bwd / jvp rule, the pytree structures, static residuals).

How it fits the trace-time autodiff:
- `f(*args)` with no trace running simply calls the function (JAX semantics).
- Inside a trace, a `custom_vjp` function records ONE equation whose sub-IR is the user's *fwd*:
  its outputs are the primal outputs followed by the residuals, so the forward work is done once and
  the residuals are ordinary IR values (dead code when nothing is differentiated: the inline pass and
  dead-code elimination drop them before compilation). `Function` works the same way, with the
  residuals being `ctx.saved_values` and the tensors set on `ctx`.
- The VJP rule calls the user's bwd in the current builder, so the backward ops are traced (and are
  themselves differentiable: higher order works when the bwd is written in traceable ops).
- A `custom_jvp` function records its primal function; its JVP rule calls the user's jvp rule and
  its VJP rule transposes the tangent map the jvp rule defines (linear in the tangents).
- Values the function closes over (tracers of an enclosing trace) become extra inputs of the
  equation; the user's rule only covers the explicit arguments, so their derivatives come from
  ordinary autodiff through the traced function.
"""
from __future__ import annotations

import functools
import inspect
import types
from contextvars import ContextVar

import numpy as np

from . import ops
from .autodiff import backward_pass
from .errors import TracerError, user_source
from .ir import IR, Aval, Lit, Var
from .pytree import _registry as _pytree_registry
from .pytree import tree_flatten, tree_unflatten
from .primitives import callback_p, custom_jvp_call_p, custom_vjp_call_p
from .rules.custom import materialize
from .staging import check_leaf
from .trace import (PY_SCALARS, Tracer, _source, aval_of, bind, bind_at, current_builder, no_trace,
                    rebinding, trace_child)

__all__ = ["custom_vjp", "custom_jvp", "Function", "FunctionCtx", "pure_callback", "ShapeDtypeStruct"]

_WALK_MAX = 10_000   # containers larger than this in a rule's closure are not searched for tracers
# custom functions whose fwd is being traced right now: a call of f inside f's own fwd records f's
# primal function instead (else tracing fwd would recurse forever), as JAX does.
_in_fwd: ContextVar = ContextVar("tracegrad_custom_fwd", default=frozenset())


def _fun_name(f) -> str:
    return getattr(f, "__name__", None) or type(f).__name__


def _is_dynamic(x) -> bool:
    """Array values (traced or not) are IR values; anything else is a static Python value."""
    return isinstance(x, (Tracer, np.ndarray))


def _resolve_args(fun, args, kwargs, what):
    """Positional arguments with keywords and defaults filled in (JAX resolves them the same way)."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        if kwargs:
            raise TypeError(f"{what}: cannot pass keyword arguments to a function without a "
                            f"signature") from None
        return tuple(args)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(f"{what} does not support keyword-only arguments "
                        f"({', '.join(bound.kwargs)}); make them positional")
    return tuple(bound.args)


def _call_site():
    override = _source.get()
    return override if override is not None else (user_source(), None)


# ---------------------------------------------------------------- tracing a function into a call

def closure_tracers(*objs, limit: int = 6) -> list:
    """Tracers reachable from the closures of functions (and partials, bound methods, containers).

    The user's rules run after the trace of the function that defined them was inlined into an
    enclosing builder, so the tracers they closed over are stale by then. They become inputs of the
    call equation, and the rules run under `rebinding` to their current operands.
    """
    found, seen = [], set()

    def walk(obj, depth):
        if depth > limit or id(obj) in seen or obj is None:
            return
        seen.add(id(obj))
        if isinstance(obj, Tracer):
            found.append(obj)
        elif isinstance(obj, (list, tuple, set, frozenset)) and len(obj) <= _WALK_MAX:
            for o in obj:
                walk(o, depth + 1)
        elif isinstance(obj, dict) and len(obj) <= _WALK_MAX:
            for o in obj.values():
                walk(o, depth + 1)
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    walk(cell.cell_contents, depth + 1)
                except ValueError:      # a cell not filled yet
                    pass
            walk(obj.__defaults__, depth + 1)
            walk(obj.__kwdefaults__, depth + 1)
        elif isinstance(obj, functools.partial):
            walk(obj.func, depth + 1)
            walk(obj.args, depth + 1)
            walk(obj.keywords, depth + 1)
        elif isinstance(obj, types.MethodType):
            walk(obj.__func__, depth + 1)
            walk(getattr(obj.__self__, "__dict__", None), depth + 1)
        elif isinstance(obj, (staticmethod, classmethod)):
            walk(obj.__func__, depth + 1)
        elif isinstance(obj, (custom_vjp, custom_jvp)):
            walk(vars(obj), depth + 1)
    for o in objs:
        walk(o, 0)
    return found


class _Recorded:
    """`trace(inner_inputs) -> (output leaves, info)` recorded in a child builder of the current one.

    The equation's inputs are the argument leaves, then the tracers the sub-IR captured: those the
    traced function closed over and those the user's rules (`rule_fns`) close over.
    """

    def __init__(self, leaves, trace, rule_fns=()):
        found = []

        def record(*ins):
            outs, info = trace(list(ins))
            inner = current_builder()
            for t in closure_tracers(*rule_fns):
                try:
                    found.append((t.node, inner.lift(t)))   # a (possibly unused) sub-IR input
                except TracerError:         # stale already: the rule fails as any leak would
                    pass
            return outs, (info, [isinstance(o, Tracer) and o.weak for o in outs])

        child = trace_child(record, leaves, eager=current_builder().eager)
        self.info, self.weak = child.aux
        # The sub-IR is closed and constant-free (as control-flow bodies are): arrays it closed
        # over become trailing operands, so inlining it anywhere never has to add constants.
        self.ir, extras = child.closed(keep_unused=True)
        self.operands = list(leaves) + extras
        # (Var a rule may meet, index among the closure operands): the captured tracers, and the
        # tracers found in the rules' closures (which may differ when those were rebound already)
        capture_vars = child.ir.inputs[child.n_declared:]
        index = {v: i for i, v in enumerate(capture_vars)}
        self.closure_map = [(t.node, i) for i, t in enumerate(child.captured)] + \
                           [(node, index[v]) for node, v in found]
        self.values = None
        if child.values is not None:   # eager: already computed; binding must not recompute them
            self.values = tuple(np.asarray(a.value) if isinstance(a, Lit) else child.values[a]
                                for a in self.ir.outputs)

    def bind(self, prim, **params):
        src, fwd_src = _call_site()
        outs = bind_at(prim, self.operands, dict(call=self.ir, **params), src, fwd_src, self.values)
        for o, w in zip(outs, self.weak):
            if isinstance(o, Tracer):
                o.weak = w
        return list(outs)


def _stale_map(closure_map, closure) -> dict:
    return {node: closure[i] for node, i in closure_map}


def _check_outputs(leaves, what):
    for o in leaves:
        if not isinstance(o, Tracer):
            check_leaf(o, what)


def _is_float(x) -> bool:
    return ops.dtype_of(x).kind == "f"


def _leaves_matching(value, treedef):
    """Leaves of `value` laid out as `treedef`, where None stands for a zero subtree (as JAX
    allows in bwd outputs); None if the structures differ."""
    if value is None:
        return [None] * treedef.num_leaves
    if treedef.nodetype is None:
        return [value]
    if type(value) is not treedef.nodetype:
        return None
    children, aux = _pytree_registry[treedef.nodetype][0](value)
    if aux != treedef.aux or len(children) != len(treedef.children):
        return None
    out = []
    for c, td in zip(children, treedef.children):
        sub = _leaves_matching(c, td)
        if sub is None:
            return None
        out += sub
    return out


def _check_cotangents(got, arg_trees, primal_leaves, name, rule_desc, what="cotangent"):
    """Flatten a per-argument tuple of cotangents to leaves aligned with the primal leaves."""
    n = len(arg_trees)
    if not isinstance(got, (tuple, list)):
        raise TypeError(f"{rule_desc} must return a tuple with one {what} per argument of '{name}' "
                        f"({n} argument{'s' if n != 1 else ''}), got {type(got).__name__}")
    if len(got) != n:
        raise TypeError(f"{rule_desc} returned {len(got)} {what}{'s' if len(got) != 1 else ''}, but "
                        f"'{name}' takes {n} differentiable argument{'s' if n != 1 else ''}: return a "
                        f"tuple with one {what} per argument (None for none)")
    flat = []
    pos = 0
    for i, (g, tree) in enumerate(zip(got, arg_trees)):
        k = tree.num_leaves
        prim = primal_leaves[pos:pos + k]
        pos += k
        if g is None:
            flat += [None] * k
            continue
        g_leaves = _leaves_matching(g, tree)
        if g_leaves is None:
            raise TypeError(f"{rule_desc}: the {what} for argument {i} of '{name}' has structure "
                            f"{tree_flatten(g)[1]}, but the argument has structure {tree}")
        for c, p in zip(g_leaves, prim):
            if c is None or not _is_float(p):
                flat.append(None)
                continue
            if tuple(ops.shape_of(c)) != tuple(ops.shape_of(p)):
                raise ValueError(f"{rule_desc}: the {what} for argument {i} of '{name}' has shape "
                                 f"{tuple(ops.shape_of(c))}, but the argument has shape "
                                 f"{tuple(ops.shape_of(p))}")
            flat.append(ops.as_dtype(c, ops.dtype_of(p)))
    return flat


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
        token = _in_fwd.set(_in_fwd.get() | {self.key})
        try:
            with rebinding(_stale_map(self.closure_map, closure)):
                out = self.fwd(*tree_unflatten(self.in_tree, list(arg_leaves)))
            _, res = _split_fwd(out, self.name)
        finally:
            _in_fwd.reset(token)
        return res

    def backward(self, res, ct_leaves, primal_leaves, closure):
        with rebinding(_stale_map(self.closure_map, closure)):
            got = self.bwd(res, tree_unflatten(self.out_tree, ct_leaves))
        return _check_cotangents(got, self.arg_trees, list(primal_leaves), self.name, self.bwd_desc)


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
    with_residuals = key not in _in_fwd.get()

    def trace(ins):
        args = tree_unflatten(in_tree, ins)
        if with_residuals:
            token = _in_fwd.set(_in_fwd.get() | {key})
            try:
                out, res = _split_fwd(fwd(*args), name)
            finally:
                _in_fwd.reset(token)
        else:
            out, res = fun(*args), None
        out_leaves, out_tree = tree_flatten(out)
        _check_outputs(out_leaves, f"output of custom_vjp function '{name}'")
        res_leaves, res_tree = tree_flatten(res)
        dyn = [r for r in res_leaves if _is_dynamic(r)]
        static = {i: r for i, r in enumerate(res_leaves) if not _is_dynamic(r)}
        return out_leaves + dyn, (out_tree, len(out_leaves), res_tree, static)

    rec = _Recorded(leaves, trace, rule_fns)
    out_tree, n_out, res_tree, static = rec.info
    rule = _VJPRule(key, name, fwd, bwd, in_tree, arg_trees, out_tree, rec.closure_map)
    if with_residuals:
        rule.res_tree, rule.res_static = res_tree, static
    outs = rec.bind(custom_vjp_call_p, rule=rule, n_args=len(leaves), n_out=n_out)
    return tree_unflatten(out_tree, outs[:n_out])


def _nondiff_positions(nondiff_argnums, n, name):
    out = set()
    for i in nondiff_argnums:
        if not -n <= i < n:
            raise ValueError(f"nondiff_argnums {i} is out of range for the {n} arguments of '{name}'")
        out.add(i % n)
    return sorted(out)


def _split_nondiff(args, nondiff, name, what):
    for i in nondiff:
        if isinstance(args[i], Tracer) or any(isinstance(l, Tracer) for l in tree_flatten(args[i])[0]):
            raise TypeError(f"argument {i} of {what} '{name}' is in nondiff_argnums but is a traced "
                            f"array; nondiff_argnums are for static Python values (pass arrays as "
                            f"ordinary arguments, or through the residuals)")
    dyn_idx = [i for i in range(len(args)) if i not in nondiff]

    def full(dyn):
        merged = list(args)
        for i, a in zip(dyn_idx, dyn):
            merged[i] = a
        return merged
    return [args[i] for i in dyn_idx], [args[i] for i in nondiff], full


class custom_vjp:
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
        name = _fun_name(self.fun)
        args = _resolve_args(self.fun, args, kwargs, f"custom_vjp function '{name}'")
        if current_builder() is None:
            return self.fun(*args)
        if self.fwd is None:
            raise TypeError(f"custom_vjp function '{name}' has no VJP rule: call "
                            f"{name}.defvjp(fwd, bwd) before using it")
        nondiff = _nondiff_positions(self.nondiff_argnums, len(args), name)
        dyn, static, full = _split_nondiff(args, nondiff, name, "custom_vjp function")
        fun, fwd, bwd = self.fun, self.fwd, self.bwd
        return _bind_custom_vjp(
            self, name,
            lambda *d: fun(*full(d)),
            lambda *d: fwd(*full(d)),
            lambda res, ct: bwd(*static, res, ct),
            dyn, (fwd, bwd))

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


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
        with rebinding(_stale_map(self.closure_map, closure)):
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
        idx = [i for i, a in enumerate(arg_leaves) if active[i] and _is_float(a)]
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


class custom_jvp:
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
        name = _fun_name(self.fun)
        args = _resolve_args(self.fun, args, kwargs, f"custom_jvp function '{name}'")
        if current_builder() is None:
            return self.fun(*args)
        if self.jvp is None:
            raise TypeError(f"custom_jvp function '{name}' has no JVP rule: call "
                            f"{name}.defjvp(jvp_rule) before using it")
        nondiff = _nondiff_positions(self.nondiff_argnums, len(args), name)
        dyn, static, full = _split_nondiff(args, nondiff, name, "custom_jvp function")
        leaves, in_tree = tree_flatten(tuple(dyn))
        for i, leaf in enumerate(leaves):
            check_leaf(leaf, f"argument leaf {i} of custom_jvp function '{name}'")
        fun, user_jvp = self.fun, self.jvp

        def trace(ins):
            out = fun(*full(tree_unflatten(in_tree, ins)))
            out_leaves, out_tree = tree_flatten(out)
            _check_outputs(out_leaves, f"output of custom_jvp function '{name}'")
            return out_leaves, out_tree

        rec = _Recorded(leaves, trace, (user_jvp,))
        out_tree = rec.info
        rule = _JVPRule(name, lambda p, t: user_jvp(*static, tuple(p), tuple(t)), in_tree,
                        [tree_flatten(a)[1] for a in dyn], out_tree, tuple(rec.ir.out_avals),
                        rec.closure_map)
        outs = rec.bind(custom_jvp_call_p, rule=rule, n_args=len(leaves))
        return tree_unflatten(out_tree, outs)

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
        dyn_idx = [i for i, a in enumerate(args) if _is_dynamic(a) or isinstance(a, np.generic)]
        needs = tuple(i in dyn_idx and _is_float(args[i]) for i in range(len(args)))
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


# ---------------------------------------------------------------- pure_callback

class ShapeDtypeStruct:
    """The shape and dtype of a `pure_callback` result (like `jax.ShapeDtypeStruct`); any object with
    `.shape` and `.dtype` (e.g. a NumPy array) works too."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


class Callback:
    """The Python side of one `callback` equation (its `callback` param); compared by identity.

    `callback(*arrays) -> tuple of arrays`: takes the equation's inputs as NumPy arrays (in order),
    returns one C-contiguous ndarray per output with exactly the declared shape and dtype (0-d arrays
    for scalars). This is what compiled code calls through Numba's object mode.
    """

    def __init__(self, fun, arg_tree, out_tree, avals):
        self.fun, self.arg_tree, self.out_tree = fun, arg_tree, out_tree
        self.avals = tuple(avals)
        self.name = _fun_name(fun)

    def __repr__(self):
        return self.name

    def __call__(self, *arrays):
        args, kwargs = tree_unflatten(self.arg_tree, [np.asarray(a) for a in arrays])
        with no_trace():
            result = self.fun(*args, **kwargs)
        leaves, _ = tree_flatten(result)
        if len(leaves) != len(self.avals):
            raise TypeError(f"pure_callback: {self.name} returned {len(leaves)} array(s), but "
                            f"result_shape_dtypes declares {len(self.avals)}")
        out = []
        for k, (r, aval) in enumerate(zip(leaves, self.avals)):
            r = np.asarray(r)
            if r.shape != aval.shape:
                raise ValueError(f"pure_callback: {self.name} returned shape {r.shape} for result {k}, "
                                 f"but result_shape_dtypes declares {aval.shape}")
            if r.dtype != aval.dtype:
                if not np.can_cast(r.dtype, aval.dtype, "same_kind"):
                    raise TypeError(f"pure_callback: {self.name} returned dtype {r.dtype} for result "
                                    f"{k}, which does not convert to the declared {aval.dtype}")
                r = r.astype(aval.dtype)
            if not r.flags.c_contiguous:
                r = np.array(r, order="C")
            out.append(r)
        return tuple(out)


def pure_callback(callback, result_shape_dtypes, *args, **kwargs):
    """Call `callback(*args, **kwargs)` on concrete NumPy arrays, from traced or compiled code.

    `result_shape_dtypes` is a pytree of objects with `.shape` and `.dtype` (`tg.ShapeDtypeStruct`,
    or arrays) describing the result. The callback must be pure: it may be called fewer times than
    written (dead results) or at trace time on constant scalars. It has no derivative: to
    differentiate through it, wrap it in a `tg.custom_vjp` function.
    """
    if not callable(callback):
        raise TypeError(f"pure_callback expects a function, got {type(callback).__name__}")
    spec_leaves, spec_tree = tree_flatten(result_shape_dtypes)
    avals = []
    for s in spec_leaves:
        if not (hasattr(s, "shape") and hasattr(s, "dtype")):
            raise TypeError(f"pure_callback: result_shape_dtypes must be a pytree of objects with "
                            f".shape and .dtype (tg.ShapeDtypeStruct or arrays), got "
                            f"{type(s).__name__}")
        avals.append(Aval(s.shape, s.dtype))
    arg_leaves, arg_tree = tree_flatten((tuple(args), dict(kwargs)))
    for i, leaf in enumerate(arg_leaves):
        check_leaf(leaf, f"argument {i} of pure_callback({_fun_name(callback)})")
    holder = Callback(callback, arg_tree, spec_tree, avals)
    outs = bind(callback_p, *arg_leaves, callback=holder, result_avals=tuple(avals))
    return tree_unflatten(spec_tree, list(outs))
