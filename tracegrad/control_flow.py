"""Control flow as single equations holding their bodies as nested IRs: `cond`, `scan` (also behind
`fori_loop`), `while` and `checkpoint`.

Public functions: `cond`, `fori_loop`, `scan`, `while_loop`, `checkpoint`. Each traces its body ONCE in
a child builder into a *closed* sub-IR: values the body closes over (an enclosing tracer, a NumPy
array) become explicit extra operands of the equation, so sub-IRs are created without constants or
captures, and tracing time does not depend on the trip count. Rules (impl, shape, VJP, JVP) live in
`tracegrad/rules/control.py` and `tracegrad/rules/loop_vjp.py` (whose docstring explains reverse mode
through loops).

The primitives' exact semantics (what the impls and the compiler's lowerings implement) are in
`docs/primitives.md`.
"""
from __future__ import annotations

import functools

import numpy as np

from . import ops
from . import primitives as P
from .errors import user_source
from .primitives import checkpoint_p, cond_p, scan_p, while_p
from .ir import Aval
from .pytree import tree_flatten, tree_unflatten
from .staging import check_leaf
from .bodies import INDEX, merge_extras, trace_closed
from .rules.loop_vjp import bind_loop
from .trace import PY_SCALARS, Tracer, aval_of, bind, current_builder

# ---------------------------------------------------------------- user-facing checks

def _fun_desc(f) -> str:
    name = getattr(f, "__name__", type(f).__name__)
    code = getattr(f, "__code__", None)
    if code is None:
        return f"'{name}'"
    return f"'{name}' (defined at {code.co_filename}:{code.co_firstlineno})"


def _leaf_paths(td, prefix="") -> list:
    if td.nodetype is None:
        return [prefix]
    out = []
    for j, child in enumerate(td.children):
        key = repr(td.aux[j]) if td.nodetype is dict else str(j)
        out += _leaf_paths(child, f"{prefix}[{key}]")
    return out


def _leaf_name(name, paths, k):
    return f"{name}{paths[k]}" if paths[k] else name


def _operand(x, where):
    """A pytree leaf as an operand: Tracers as they are, everything else as a NumPy value."""
    if isinstance(x, Tracer):
        return x
    check_leaf(x, where)
    return x if type(x) in PY_SCALARS else np.asarray(x)


def _is_weak(x) -> bool:
    return type(x) in PY_SCALARS or (isinstance(x, Tracer) and x.weak)


def _weak_carry(x) -> bool:
    # Only float leaves are traced as weak: comparing two weak ints (`n < 3`) currently resolves to
    # an object dtype in ops.ufunc_operands, so int carries (and the loop index) are plain int64.
    return _is_weak(x) and aval_of(x).dtype.kind == "f"


def _weak_key(x):
    return ops._promotion_key(x)


class _Carry:
    """The flattened carry: structure, avals and weakness (Python-scalar leaves promote like JAX's
    weak types: the first trace may adopt the body's dtype for them)."""

    def __init__(self, leaves, tree, name, what):
        self.tree = tree
        self.name = name
        self.paths = _leaf_paths(tree)
        self.leaves = [_operand(x, f"{what}: {_leaf_name(name, self.paths, k)}")
                       for k, x in enumerate(leaves)]
        self.avals = [aval_of(x) for x in self.leaves]
        self.weak = [_weak_carry(x) for x in self.leaves]

    def operands(self):
        return [x if aval_of(x).dtype == a.dtype else ops.as_dtype(x, a.dtype)
                for x, a in zip(self.leaves, self.avals)]


class _Mismatch(Exception):
    pass


def _fit(leaves, tree, spec: _Carry, what, role, fun, src, retry: dict):
    """Check a body's returned carry against the carry it was given; convert weak leaves."""
    if tree != spec.tree:
        raise TypeError(
            f"{what}: {role} {_fun_desc(fun)} must return a carry with the same structure as "
            f"{spec.name}: {spec.name} is {spec.tree}, {role} returned {tree}. The carry must keep "
            f"its pytree structure, shapes and dtypes across iterations.\n  at {src}")
    out = []
    for k, (x, a) in enumerate(zip(leaves, spec.avals)):
        x = _operand(x, f"{what}: {role} output {_leaf_name(spec.name, spec.paths, k)} (at {src})")
        xa = aval_of(x)
        leaf = _leaf_name(spec.name, spec.paths, k)
        if xa.shape != a.shape:
            raise ValueError(
                f"{what}: {role} {_fun_desc(fun)} changed the shape of the carry {leaf}: "
                f"{spec.name} has {a}, {role} returned {xa}. The carry must keep its pytree "
                f"structure, shapes and dtypes across iterations.\n  at {src}")
        if xa.dtype != a.dtype:
            if _is_weak(x) and np.result_type(_weak_key(x), a.dtype) == a.dtype:
                x = ops.as_dtype(x, a.dtype)
            elif spec.weak[k] and np.result_type(_weak_key(spec.leaves[k]), xa.dtype) == xa.dtype:
                retry[k] = xa.dtype
            else:
                raise TypeError(
                    f"{what}: {role} {_fun_desc(fun)} changed the dtype of the carry {leaf}: "
                    f"{spec.name} has {a}, {role} returned {xa}. The carry must keep its pytree "
                    f"structure, shapes and dtypes across iterations (cast with .astype, or give "
                    f"{spec.name} the dtype the body produces).\n  at {src}")
        out.append(x)
    return out


def _trace_carry_body(spec: _Carry, call, lead_avals, tail_avals, n_lead, what, role, fun, src,
                      lead_weak=None):
    """Trace `call(lead, carry_tree, tail) -> (carry_out, extra_leaves, aux)` over the carry,
    checking the returned carry; if a weak (Python scalar) carry leaf must take the dtype the body
    produces, retrace once with it. Returns (ir, extras, aux, extra_avals); `spec` is updated."""
    for _ in range(3):
        retry: dict = {}

        def fn(*ins):
            nl, nc = len(lead_avals), len(spec.avals)
            c_out, extra, aux = call(ins[:nl], tree_unflatten(spec.tree, list(ins[nl:nl + nc])),
                                     ins[nl + nc:])
            leaves, tree = tree_flatten(c_out)
            fitted = _fit(leaves, tree, spec, what, role, fun, src, retry)
            extra = [_operand(x, f"{what}: output of {role} (at {src})") for x in extra]
            return fitted + extra, (aux, [aval_of(x) for x in extra])

        weaks = list(lead_weak or [False] * len(lead_avals)) + list(spec.weak) + [False] * len(tail_avals)
        ir, extras, (aux, extra_avals) = trace_closed(fn, list(lead_avals) + list(spec.avals) +
                                                      list(tail_avals), weaks, n_lead)
        if not retry:
            return ir, extras, aux, extra_avals
        for k, dt in retry.items():
            spec.avals[k] = Aval(spec.avals[k].shape, dt)
    raise TypeError(f"{what}: the carry's dtypes do not settle\n  at {src}")   # pragma: no cover


# ---------------------------------------------------------------- cond

def _pred_operand(pred, src):
    if isinstance(pred, Tracer):
        if pred.shape != ():
            raise TypeError(f"cond: pred must be a scalar, got {pred.aval}\n  at {src}")
        if pred.dtype.kind == "b":
            return pred
        if pred.dtype.kind in "iuf":
            return ops.compare(P.ne_p, pred, ops.as_dtype(0, pred.dtype))
        raise TypeError(f"cond: pred must be a bool or number, got {pred.aval}\n  at {src}")
    arr = np.asarray(pred)
    if arr.shape != () or arr.dtype.kind not in "biuf":
        raise TypeError(f"cond: pred must be a bool or number scalar, got {arr.dtype}{list(arr.shape)}"
                        f"\n  at {src}")
    return bool(arr)


def cond(pred, true_fun, false_fun, *operands):
    """`true_fun(*operands)` if `pred` else `false_fun(*operands)`; only one branch runs.

    Both branches must return the same pytree structure, shapes and dtypes. With a traced `pred`
    this is one `cond` equation holding both branches; a concrete `pred` picks the branch now.
    """
    src = user_source()
    p = _pred_operand(pred, src)
    if not isinstance(p, Tracer):
        return (true_fun if p else false_fun)(*operands)
    leaves, tree = tree_flatten(operands)
    leaves = [_operand(x, f"cond: operand {k} (at {src})") for k, x in enumerate(leaves)]
    avals = [aval_of(x) for x in leaves]
    weaks = [_is_weak(x) for x in leaves]

    def tracer(fun, target=None):
        def fn(*ins):
            out = fun(*tree_unflatten(tree, list(ins)))
            outs, otree = tree_flatten(out)
            outs = [_operand(x, f"cond: output of {_fun_desc(fun)} (at {src})") for x in outs]
            info = [(aval_of(x), _is_weak(x)) for x in outs]
            if target is not None:
                outs = [x if aval_of(x).dtype == t.dtype else ops.as_dtype(x, t.dtype)
                        for x, t in zip(outs, target)]
            return outs, (otree, info)
        return trace_closed(fn, avals, weaks)

    traced = [tracer(false_fun), tracer(true_fun)]
    (_, _, (tree_f, info_f)), (_, _, (tree_t, info_t)) = traced
    if tree_f != tree_t:
        raise TypeError(f"cond: true_fun {_fun_desc(true_fun)} and false_fun {_fun_desc(false_fun)} "
                        f"must return the same structure: true_fun returned {tree_t}, false_fun "
                        f"returned {tree_f}\n  at {src}")
    paths = _leaf_paths(tree_t)
    target, need = [], [False, False]
    for k, ((af, wf), (at, wt)) in enumerate(zip(info_f, info_t)):
        leaf = _leaf_name("output", paths, k)
        if af.shape != at.shape or (af.dtype != at.dtype and not (wf or wt)):
            raise TypeError(f"cond: true_fun {_fun_desc(true_fun)} and false_fun "
                            f"{_fun_desc(false_fun)} must return the same shapes and dtypes: "
                            f"{leaf} is {at} from true_fun but {af} from false_fun\n  at {src}")
        if af.dtype == at.dtype:
            target.append(af)
            continue
        if wf and wt:
            dt = np.result_type(*[_PY_KIND[a.dtype.kind](0) for a in (af, at)])
        else:
            dt = at.dtype if wf else af.dtype
        need[0] |= af.dtype != dt
        need[1] |= at.dtype != dt
        target.append(Aval(af.shape, dt))
    if need[0]:
        traced[0] = tracer(false_fun, target)
    if need[1]:
        traced[1] = tracer(true_fun, target)
    (ir_f, ir_t), extras = merge_extras([(ir, ex) for ir, ex, _ in traced])
    outs = bind(cond_p, p, *leaves, *extras, branches=(ir_f, ir_t))
    return tree_unflatten(tree_t, list(outs))


_PY_KIND = {"b": bool, "i": int, "u": int, "f": float}


# ---------------------------------------------------------------- scan

def scan(f, init, xs=None, length=None, reverse=False):
    """`f(carry, x) -> (carry, y)` over the leading axis of `xs`; returns `(carry, stacked ys)`.

    `xs` may be a pytree (or None with `length`); the carry keeps its structure, shapes and dtypes.
    One `scan` equation whose body is traced once, whatever the length.
    """
    src = user_source()
    spec = _Carry(*tree_flatten(init), "init", "scan")
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [_operand(x, f"scan: xs leaf {k} (at {src})") for k, x in enumerate(x_leaves)]
    x_avals = [aval_of(x) for x in x_leaves]
    for k, a in enumerate(x_avals):
        if a.ndim == 0:
            raise ValueError(f"scan: xs leaf {k} is a scalar; xs leaves need a leading axis to scan "
                             f"over\n  at {src}")
    lens = {a.shape[0] for a in x_avals}
    if length is not None:
        length = int(length)
        if lens and lens != {length}:
            raise ValueError(f"scan: length={length} but xs have leading axes {sorted(lens)}\n  at {src}")
    else:
        if not x_avals:
            raise ValueError(f"scan: xs is None (or empty), so length must be given\n  at {src}")
        if len(lens) != 1:
            raise ValueError(f"scan: all xs must have the same leading axis length, got "
                             f"{[a.shape[0] for a in x_avals]}\n  at {src}")
        length = lens.pop()

    def call(lead, carry, tail):
        out = f(carry, tree_unflatten(x_tree, list(tail)))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"scan: f {_fun_desc(f)} must return a pair (carry, y), got "
                            f"{type(out).__name__}\n  at {src}")
        y_leaves, y_tree = tree_flatten(out[1])
        return out[0], y_leaves, y_tree

    slices = [Aval(a.shape[1:], a.dtype) for a in x_avals]
    ir, extras, y_tree, _ = _trace_carry_body(spec, call, [Aval((), INDEX)], slices, 1,
                                              "scan", "f", f, src)
    outs = bind_loop(scan_p, [*extras, *spec.operands(), *x_leaves],
                     dict(body=ir, length=length, reverse=bool(reverse), n_consts=len(extras),
                          n_carry=len(spec.avals), saved=0))
    nc = len(spec.avals)
    return tree_unflatten(spec.tree, list(outs[:nc])), tree_unflatten(y_tree, list(outs[nc:]))


# ---------------------------------------------------------------- fori_loop

def _static_int(x):
    if isinstance(x, Tracer):
        return None
    arr = np.asarray(x)
    if arr.shape == () and arr.dtype.kind in "iu":
        return int(arr)
    return None


def _index_operand(x, name, src):
    if isinstance(x, Tracer):
        if x.shape != () or x.dtype.kind not in "iu":
            raise TypeError(f"fori_loop: {name} must be an integer scalar, got {x.aval}\n  at {src}")
        return ops.as_dtype(x, INDEX)
    v = _static_int(x)
    if v is None:
        raise TypeError(f"fori_loop: {name} must be an integer scalar, got {x!r:.40}\n  at {src}")
    return np.int64(v)


def fori_loop(lower, upper, body_fun, init_val):
    """`body_fun(i, carry) -> carry` for i in range(lower, upper); returns the final carry.

    Static (Python/NumPy int) bounds give a fixed-length `scan`; traced bounds a `scan` whose trip
    count is read at run time. Both are differentiable in forward and reverse mode.
    """
    src = user_source()
    spec = _Carry(*tree_flatten(init_val), "init_val", "fori_loop")
    lo_s, hi_s = _static_int(lower), _static_int(upper)
    if lo_s is not None and hi_s is not None:
        length, lo, n = max(hi_s - lo_s, 0), lo_s, None
    else:
        lo = _index_operand(lower, "lower", src)
        hi = _index_operand(upper, "upper", src)
        n = ops.maximum(ops.sub(hi, lo), np.int64(0))
        length = None

    def call(lead, carry, tail):
        i = lead[0]
        if not (isinstance(lo, int) and lo == 0):
            i = ops.add(i, lo if isinstance(lo, Tracer) else np.int64(lo))
        return body_fun(i, carry), [], None

    ir, extras, _, _ = _trace_carry_body(spec, call, [Aval((), INDEX)], [], 1, "fori_loop",
                                         "body_fun", body_fun, src)
    operands = ([] if n is None else [n]) + extras + spec.operands()
    outs = bind_loop(scan_p, operands, dict(body=ir, length=length, reverse=False,
                                            n_consts=len(extras), n_carry=len(spec.avals), saved=0))
    return tree_unflatten(spec.tree, list(outs))


# ---------------------------------------------------------------- while_loop

def while_loop(cond_fun, body_fun, init_val):
    """`while cond_fun(carry): carry = body_fun(carry)`; returns the final carry.

    Differentiable in forward and reverse mode: under reverse mode the forward loop counts its
    iterations and saves what the backward needs at run time (no static bound is required).
    """
    src = user_source()
    spec = _Carry(*tree_flatten(init_val), "init_val", "while_loop")

    def body_call(lead, carry, tail):
        return body_fun(carry), [], None

    body_ir, body_extras, _, _ = _trace_carry_body(spec, body_call, [], [], 0, "while_loop",
                                                   "body_fun", body_fun, src)

    def cond_call(*ins):
        out = cond_fun(tree_unflatten(spec.tree, list(ins)))
        x = _operand(out, f"while_loop: output of cond_fun {_fun_desc(cond_fun)} (at {src})")
        a = aval_of(x)
        if a.shape != () or a.dtype.kind != "b":
            raise TypeError(f"while_loop: cond_fun {_fun_desc(cond_fun)} must return a bool scalar, "
                            f"got {a}\n  at {src}")
        return [x], None

    cond_ir, cond_extras, _ = trace_closed(cond_call, spec.avals, spec.weak, 0)
    outs = bind_loop(while_p, [*cond_extras, *body_extras, *spec.operands()],
                     dict(cond=cond_ir, body=body_ir, n_cond_consts=len(cond_extras),
                          n_body_consts=len(body_extras), record=False, saved=0))
    return tree_unflatten(spec.tree, list(outs))


# ---------------------------------------------------------------- checkpoint

def checkpoint(fun):
    """`fun`, recomputed during the backward pass instead of saving its intermediates.

    Use it on a loop body (`fori_loop(0, n, tg.checkpoint(step), x)`) so a long loop saves only
    each iteration's inputs. Usable as a decorator.
    """
    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        if current_builder() is None:
            return fun(*args, **kwargs)
        src = user_source()
        leaves, tree = tree_flatten(args)
        leaves = [_operand(x, f"checkpoint: argument leaf {k} (at {src})") for k, x in enumerate(leaves)]

        def fn(*ins):
            out = fun(*tree_unflatten(tree, list(ins)), **kwargs)
            outs, otree = tree_flatten(out)
            return [_operand(x, f"checkpoint: output of {_fun_desc(fun)}") for x in outs], otree

        ir, extras, out_tree = trace_closed(fn, [aval_of(x) for x in leaves],
                                            [_is_weak(x) for x in leaves])
        outs = bind(checkpoint_p, *leaves, *extras, body=ir)
        return tree_unflatten(out_tree, list(outs))
    return wrapped


# ---------------------------------------------------------------- introspection

def saved_residuals(ir) -> list:
    """Avals of the values that the loops of `ir` save for its backward pass: the trailing `saved`
    outputs that reverse mode added to forward loops (stacked per iteration; a leading -1 is a
    run-time length). Loops nested in bodies are not listed separately: what they save and the
    backward needs is part of the enclosing loop's saved outputs."""
    out = []
    for e in ir.eqns:
        saved = e.params.get("saved", 0) if e.prim in (scan_p, while_p) else 0
        if saved:
            out += [v.aval for v in e.outs[len(e.outs) - saved:]]
    return out


__all__ = ["cond", "fori_loop", "scan", "while_loop", "checkpoint"]
