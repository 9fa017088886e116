"""What `custom_vjp`, `custom_jvp`, `Function` (custom_vjp.py, custom_jvp.py) and `pure_callback`
(callback.py) share: tracing the user's function into a call equation and checking what the user's
rules return.

The user-facing side: resolving arguments, tracing the user's function into a sub-IR
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
from .errors import TracerError, user_source
from .ir import Lit
from .pytree import _registry as _pytree_registry
from .pytree import tree_flatten
from .staging import check_leaf
from .childtrace import trace_child
from .trace import Tracer, _source, bind_at, current_builder

_WALK_MAX = 10_000   # containers larger than this in a rule's closure are not searched for tracers
# custom functions whose fwd is being traced right now: a call of f inside f's own fwd records f's
# primal function instead (else tracing fwd would recurse forever), as JAX does.
in_fwd: ContextVar = ContextVar("tracegrad_custom_fwd", default=frozenset())


def fun_name(f) -> str:
    return getattr(f, "__name__", None) or type(f).__name__


def is_dynamic(x) -> bool:
    """Array values (traced or not) are IR values; anything else is a static Python value."""
    return isinstance(x, (Tracer, np.ndarray))


def resolve_args(fun, args, kwargs, what):
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


def call_site():
    override = _source.get()
    return override if override is not None else (user_source(), None)


# ---------------------------------------------------------------- tracing a function into a call

class CustomFunction:
    """Base of `custom_vjp` and `custom_jvp`: the user's rules it holds may close over tracers."""


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
        elif isinstance(obj, CustomFunction):
            walk(vars(obj), depth + 1)
    for o in objs:
        walk(o, 0)
    return found


class Recorded:
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
        src, fwd_src = call_site()
        outs = bind_at(prim, self.operands, dict(call=self.ir, **params), src, fwd_src, self.values)
        for o, w in zip(outs, self.weak):
            if isinstance(o, Tracer):
                o.weak = w
        return list(outs)


def stale_map(closure_map, closure) -> dict:
    return {node: closure[i] for node, i in closure_map}


def check_outputs(leaves, what):
    for o in leaves:
        if not isinstance(o, Tracer):
            check_leaf(o, what)


def is_float(x) -> bool:
    return ops.dtype_of(x).kind == "f"


def leaves_matching(value, treedef):
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
        sub = leaves_matching(c, td)
        if sub is None:
            return None
        out += sub
    return out


def check_cotangents(got, arg_trees, primal_leaves, name, rule_desc, what="cotangent"):
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
        g_leaves = leaves_matching(g, tree)
        if g_leaves is None:
            raise TypeError(f"{rule_desc}: the {what} for argument {i} of '{name}' has structure "
                            f"{tree_flatten(g)[1]}, but the argument has structure {tree}")
        for c, p in zip(g_leaves, prim):
            if c is None or not is_float(p):
                flat.append(None)
                continue
            if tuple(ops.shape_of(c)) != tuple(ops.shape_of(p)):
                raise ValueError(f"{rule_desc}: the {what} for argument {i} of '{name}' has shape "
                                 f"{tuple(ops.shape_of(c))}, but the argument has shape "
                                 f"{tuple(ops.shape_of(p))}")
            flat.append(ops.as_dtype(c, ops.dtype_of(p)))
    return flat


def nondiff_positions(nondiff_argnums, n, name):
    out = set()
    for i in nondiff_argnums:
        if not -n <= i < n:
            raise ValueError(f"nondiff_argnums {i} is out of range for the {n} arguments of '{name}'")
        out.add(i % n)
    return sorted(out)


def split_nondiff(args, nondiff, name, what):
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
