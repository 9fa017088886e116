"""The public transforms: grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian, jit, make_ir.

Each is a traced core (`_vjp_core`, `_jvp_core`) that records the function into a child builder,
inlines it into the current one and runs an autodiff pass there; `Staged` decides whether the
top-level call is compiled or run eagerly.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .autodiff import backward_pass, jvp_pass
from .errors import user_source
from .ir import Lit
from .pytree import tree_flatten, tree_map, tree_unflatten
from .staging import Staged, check_leaf, param_names
from .staged_vjp import StagedVJP
from .childtrace import read, trace_child
from .trace import Tracer, _builder, aval_of, current_builder
from .vmap import vmap_call


# ---------------------------------------------------------------- cores (run inside a builder)

class _Traced:
    """A function recorded in a child builder and inlined into the current one."""

    def __init__(self, fun, primals_flat, in_tree, has_aux=False, what="function", reverse=False):
        def record(*ins):
            out = fun(*tree_unflatten(in_tree, list(ins)))
            if has_aux:
                if not (isinstance(out, (tuple, list)) and len(out) == 2):
                    raise TypeError(f"has_aux=True needs {what} to return a pair (output, aux), "
                                    f"got {type(out).__name__}")
                out, aux = out
            else:
                aux = None
            out_flat, out_tree = tree_flatten(out)
            aux_flat, aux_tree = tree_flatten(aux)
            for o in out_flat + aux_flat:
                if not isinstance(o, Tracer):
                    check_leaf(o, f"output of {what}")
            return out_flat + aux_flat, (out_tree, aux_tree, len(out_flat))

        b = current_builder()
        child = trace_child(record, primals_flat, eager=b.eager, reverse=reverse)
        self.ir = child.ir
        self.out_tree, self.aux_tree, self.n_out = child.aux
        self.n_in = len(primals_flat)
        # At the top of eager mode nothing will differentiate what the current builder records: the
        # recording is not inlined into it, and derivatives run on the recorded values directly.
        self.on_values = reverse and b.final and _plain(child, primals_flat)
        if self.on_values:
            self.env = child.values
        else:
            self.env = child.replay(primals_flat)
        res = [read(self.env, a) for a in self.ir.outputs]
        self.outs, self.aux = res[:self.n_out], res[self.n_out:]

    def out_vars(self):
        return self.ir.outputs[:self.n_out]

    def backward(self, cts_flat):
        """Cotangents of the primal inputs (None for zero) given output cotangents."""
        out_cts = {}
        for var, ct in zip(self.out_vars(), cts_flat):
            if isinstance(var, Lit) or ct is None:
                continue
            out_cts[var] = ct if var not in out_cts else ops.add(out_cts[var], ct)
        if self.on_values:             # (no_trace(), without a generator)
            # a seed made under the eager builder (ones_like of a (1,) output) enters as its value
            out_cts = {v: (c.value if isinstance(c, Tracer) else c) for v, c in out_cts.items()}
            token = _builder.set(None)
            try:
                return backward_pass(self.ir.eqns, self.env, out_cts, self.ir.inputs[:self.n_in])
            finally:
                _builder.reset(token)
        return backward_pass(self.ir.eqns, self.env, out_cts, self.ir.inputs[:self.n_in])

    def forward(self, tangents_flat):
        """Output tangents (None for zero) given input tangents (None for zero)."""
        if self.on_values:
            raise AssertionError("forward mode on a values-only recording")
        seed = {v: t for v, t in zip(self.ir.inputs, tangents_flat) if t is not None}
        tan = jvp_pass(self.ir.eqns, self.env, seed)
        return [None if isinstance(v, Lit) else tan.get(v) for v in self.out_vars()]


_NOT_ON_VALUES = frozenset({"control", "call", "effect"})


def _plain(child, primals_flat) -> bool:
    """May the backward pass of this eager recording run on its values (no builder)? Not when
    weakly typed operands are involved (NEP 50 promotion needs the tracers' weak flags) or when it
    holds loops, custom rules or effects (their derivative rules read the builder)."""
    if any(not isinstance(p, Tracer) or p.weak for p in primals_flat):
        return False
    if any(t.weak for t in child.captured):
        return False
    families = _NOT_ON_VALUES
    return not any(e.prim.family in families for e in child.ir.eqns)


def _float_leaves(leaves, names, what):
    for x, name in zip(leaves, names):
        dt = ops.dtype_of(x)
        if dt.kind != "f":
            raise TypeError(f"{what} requires floating-point inputs, but argument '{name}' has dtype "
                            f"{dt.name} (int and bool inputs carry no gradient)")


def _argnums(argnums, n, fun):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"argnums {i} is out of range for {n} positional arguments of "
                             f"{getattr(fun, '__name__', 'function')}")
    return single, tuple(i % n for i in nums)


def _split_args(fun, args, argnums, what):
    """(single, nums, dyn leaves, dyn tree, call(dyn) -> fun(*args with dyn substituted))."""
    single, nums = _argnums(argnums, len(args), fun)
    dyn = tuple(args[i] for i in nums)
    leaves, tree = tree_flatten(dyn)
    for leaf in leaves:              # (names are worked out only to report a bad argument)
        if not ((type(leaf) is Tracer and leaf.node.aval.dtype.kind == "f") or
                (type(leaf) is np.ndarray and leaf.dtype.kind == "f")):
            leaf_names = _leaf_names(fun, args, nums)
            for x, name in zip(leaves, leaf_names):
                check_leaf(x, f"argument '{name}' of {what}")
            _float_leaves(leaves, leaf_names, what)
            break

    def call(*dyn_args):
        full = list(args)
        for i, a in zip(nums, dyn_args):
            full[i] = a
        return fun(*full)
    return single, nums, leaves, tree, call


def _leaf_names(fun, args, nums) -> list:
    names = param_names(fun)
    leaf_names = []
    for i in nums:
        name = names[i] if i < len(names) else f"args[{i}]"
        sub = tree_flatten(args[i])[0]
        leaf_names += [name if len(sub) == 1 else f"{name}[{j}]" for j in range(len(sub))]
    return leaf_names


def _zeros_for(x):
    return ops.zeros_like(x)


def _value_and_grad_core(fun, argnums, has_aux, args, what):
    single, nums, leaves, tree, call = _split_args(fun, args, argnums, what)
    tr = _Traced(call, leaves, tree, has_aux, getattr(fun, "__name__", "function"), reverse=True)
    if tr.n_out != 1 or tr.out_tree.nodetype is not None:       # (one leaf, not in a container)
        raise TypeError(f"{what} requires a function returning one scalar, got a "
                        f"{tr.out_tree} structure; use tg.vjp or tg.jacrev for other outputs")
    out = tr.outs[0]
    # a one-element output of any shape ((), (1,), (1, 1)) counts as a scalar, as in autograd:
    # objectives written for scipy.optimize often return shape (1,)
    if int(np.prod(ops.shape_of(out), dtype=np.int64)) != 1 or ops.dtype_of(out).kind != "f":
        raise TypeError(f"{what} requires a scalar output: floating-point, one element (shape (), "
                        f"(1,), ...), got {aval_of(out)} from {getattr(fun, '__name__', 'function')} "
                        f"(called at {user_source()}); use tg.vjp or tg.jacrev for other outputs")
    cts = tr.backward([ops.ones_like(out)])
    grads = [(_zeros_for(x) if c is None else c) for x, c in zip(leaves, cts)]
    g = tree_unflatten(tree, grads)
    g = g[0] if single else g
    value = out
    if has_aux:
        value = (out, tree_unflatten(tr.aux_tree, tr.aux))
    return value, g


def _nums_key(argnums):
    return argnums if isinstance(argnums, int) else tuple(argnums)


def value_and_grad(fun, argnums=0, has_aux=False):
    """`(value, gradient)` of a scalar-valued `fun`; with has_aux, `((value, aux), gradient)`."""
    def core(*args):
        return _value_and_grad_core(fun, argnums, has_aux, args, "value_and_grad")
    return Staged.transform(core, fun, ("value_and_grad", _nums_key(argnums), bool(has_aux)))


def grad(fun=None, argnums=0, has_aux=False):
    """Gradient of a scalar-valued `fun` w.r.t. argument(s) `argnums`; usable as `@tg.grad`."""
    if fun is None:
        return lambda f: grad(f, argnums, has_aux)

    def core(*args):
        value, g = _value_and_grad_core(fun, argnums, has_aux, args, "grad")
        return (g, value[1]) if has_aux else g
    return Staged.transform(core, fun, ("grad", _nums_key(argnums), bool(has_aux)))


# ---------------------------------------------------------------- vjp / jvp

def _vjp_traced(fun, primals, has_aux):
    leaves, tree = tree_flatten(tuple(primals))
    for i, leaf in enumerate(leaves):
        check_leaf(leaf, f"primal {i} of vjp")
    tr = _Traced(fun, leaves, tree, has_aux, getattr(fun, "__name__", "function"), reverse=True)
    return tr, leaves, tree


def _vjp_backward(tr, leaves, tree, ct):
    ct_leaves, ct_tree = tree_flatten(ct)
    if ct_tree != tr.out_tree:
        raise TypeError(f"vjp cotangent structure {ct_tree} does not match the output {tr.out_tree}")
    for c, o in zip(ct_leaves, tr.outs):
        if ops.shape_of(c) != ops.shape_of(o):
            raise ValueError(f"vjp cotangent shape {ops.shape_of(c)} does not match the output "
                             f"shape {ops.shape_of(o)}")
    cts = tr.backward(ct_leaves)
    return tree_unflatten(tree, [(_zeros_for(x) if c is None else c) for x, c in zip(leaves, cts)])


def vjp(fun, *primals, has_aux=False):
    """`(out, vjp_fun)`; `vjp_fun(cotangent)` returns one cotangent per primal, as a tuple."""
    if current_builder() is not None:
        tr, leaves, tree = _vjp_traced(fun, primals, has_aux)
        out = tree_unflatten(tr.out_tree, tr.outs)
        fn = lambda ct: _vjp_backward(tr, leaves, tree, ct)
        return (out, fn, tree_unflatten(tr.aux_tree, tr.aux)) if has_aux else (out, fn)
    return StagedVJP(fun, has_aux, _vjp_traced, _vjp_backward)(*primals)


def _jvp_core(fun, primals, tangents):
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp takes primals and tangents as tuples (or lists) of arguments")
    p_leaves, p_tree = tree_flatten(tuple(primals))
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if p_tree != t_tree:
        raise TypeError(f"jvp: primal structure {p_tree} and tangent structure {t_tree} differ")
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        check_leaf(p, f"primal {i} of jvp")
        check_leaf(t, f"tangent {i} of jvp")
        if ops.shape_of(p) != ops.shape_of(t):
            raise ValueError(f"jvp: tangent {i} has shape {ops.shape_of(t)} but its primal has "
                             f"shape {ops.shape_of(p)}")
    tr = _Traced(fun, p_leaves, p_tree, False, getattr(fun, "__name__", "function"))
    seeds = [ops.as_dtype(t, ops.dtype_of(p)) if ops.dtype_of(p).kind == "f" else None
             for p, t in zip(p_leaves, t_leaves)]
    t_out = tr.forward(seeds)
    t_out = [_zeros_for(o) if t is None else t for o, t in zip(tr.outs, t_out)]
    return tree_unflatten(tr.out_tree, tr.outs), tree_unflatten(tr.out_tree, t_out)


def jvp(fun, primals, tangents):
    """`(out, tangent_out)`: forward-mode derivative of `fun` at `primals` along `tangents`."""
    if current_builder() is not None:
        return _jvp_core(fun, primals, tangents)
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp takes primals and tangents as tuples (or lists) of arguments")
    staged = Staged(lambda p, t: _jvp_core(fun, p, t), name=f"jvp({getattr(fun, '__name__', 'f')})",
                    target=fun, tkey=("jvp",))
    return staged(tuple(primals), tuple(tangents))


# ---------------------------------------------------------------- Jacobians

def _basis(shape, dtype):
    """The n = prod(shape) unit vectors of `shape`, stacked: shape (n,) + shape."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.eye(n, dtype=dtype).reshape((n,) + tuple(shape))


def _jacrev_core(fun, argnums, args):
    """All rows of the Jacobian in ONE batched backward pass: the pullback vmapped over the basis
    of output cotangents (so the backward's matrix-vector products become matrix products)."""
    single, nums, leaves, tree, call = _split_args(fun, args, argnums, "jacrev")
    tr = _Traced(call, leaves, tree, False, getattr(fun, "__name__", "function"), reverse=True)
    if tr.n_out != 1:
        raise TypeError("jacrev needs a function returning one array")
    out = tr.outs[0]
    oshape, odt = tuple(ops.shape_of(out)), ops.dtype_of(out)

    def pullback(ct):
        return [_zeros_for(x) if c is None else c for x, c in zip(leaves, tr.backward([ct]))]

    basis = _basis(oshape, odt)
    rows = vmap_call(pullback, 0, 0, len(basis), (basis,), {})
    jacs = [ops.reshape(r, oshape + tuple(ops.shape_of(x))) for r, x in zip(rows, leaves)]
    g = tree_unflatten(tree, jacs)
    return g[0] if single else g


def _jacfwd_core(fun, argnums, args):
    """All columns of the Jacobian in ONE batched forward pass per argument: the pushforward
    vmapped over the basis of input tangents, the batch axis placed last."""
    single, nums, leaves, tree, call = _split_args(fun, args, argnums, "jacfwd")
    tr = _Traced(call, leaves, tree, False, getattr(fun, "__name__", "function"))
    if tr.n_out != 1:
        raise TypeError("jacfwd needs a function returning one array")
    out = tr.outs[0]
    oshape = tuple(ops.shape_of(out))
    jacs = []
    for j, x in enumerate(leaves):
        xs, xdt = tuple(ops.shape_of(x)), ops.dtype_of(x)

        def pushforward(t, j=j):
            seeds = [None] * len(leaves)
            seeds[j] = t
            t_out = tr.forward(seeds)[0]
            return _zeros_for(out) if t_out is None else t_out

        basis = _basis(xs, xdt)
        cols = vmap_call(pushforward, 0, -1, len(basis), (basis,), {})
        jacs.append(ops.reshape(cols, oshape + xs))
    g = tree_unflatten(tree, jacs)
    return g[0] if single else g


def jacrev(fun, argnums=0):
    """Jacobian by reverse mode (the pullback vmapped over the output basis): shape
    `out.shape + in.shape`."""
    return Staged(lambda *a: _jacrev_core(fun, argnums, a),
                  name=f"jacrev({getattr(fun, '__name__', 'f')})", names_from=fun,
                  target=fun, tkey=("jacrev", _nums_key(argnums)))


def jacfwd(fun, argnums=0):
    """Jacobian by forward mode (the pushforward vmapped over the input basis): shape
    `out.shape + in.shape`."""
    return Staged(lambda *a: _jacfwd_core(fun, argnums, a),
                  name=f"jacfwd({getattr(fun, '__name__', 'f')})", names_from=fun,
                  target=fun, tkey=("jacfwd", _nums_key(argnums)))


def hessian(fun, argnums=0):
    """`jacfwd(jacrev(fun))`: shape `in.shape + in.shape` for a scalar `fun`."""
    return jacfwd(jacrev(fun, argnums), argnums)


# ---------------------------------------------------------------- jit, make_ir, stop_gradient

def jit(fun=None, static_argnums=(), static_argnames=(), compile=None, freeze_closure=False):
    """Trace once per signature and compile into one native function; also a decorator.

    `compile`: "background" (the default, from TRACEGRAD_COMPILE: first calls run at once on the
    interpreter tier while native code is built in a worker process), "sync" (the first call waits
    for native code) or "never". Under tg.jit, value-dependent Python on traced values is an error.
    Arrays the function closes over are read at every call; `freeze_closure=True` bakes them in as
    constants instead (keyed by identity: rebinding one traces again, mutating one is not seen).
    """
    if fun is None:
        return lambda f: jit(f, static_argnums, static_argnames, compile, freeze_closure)
    if isinstance(fun, Staged) and not static_argnums and not static_argnames:
        return Staged(fun.fun, fun.static_argnums, fun.static_argnames, fun.name,
                      names_from=fun.__wrapped__, compile=compile or fun.compile, explicit=True,
                      target=fun.target, tkey=fun.tkey, freeze_closure=freeze_closure)
    return Staged(fun, static_argnums, static_argnames, compile=compile, explicit=True,
                  freeze_closure=freeze_closure)


def make_ir(fun, static_argnums=()):
    """`make_ir(f)(*args)`: the IR of `f` at these arguments (print it to read it)."""
    staged = fun if isinstance(fun, Staged) else Staged(fun, static_argnums)

    def build(*args, **kwargs):
        return staged.ir_for(args, kwargs)
    return build


def stop_gradient(x):
    """`x`, with its derivative treated as zero."""
    return tree_map(ops.stop_gradient, x)
