"""`tg.vjp` at the top level: a cached forward entry and a cached pullback entry per signature.

`out, pb = tg.vjp(f, x)` traces, once per cache key (as every staged function: see staging.py),
the joint function `(x, ct) -> (f(x), aux, cotangents of x)`, then splits its IR where the
cotangent enters: the equations that do not depend on `ct` form the forward entry
`(x) -> (out, aux, residuals)`, the others the pullback entry `(residuals, ct) -> cotangents`.
Residuals are exactly the forward values the pullback reads. So each call runs the forward kernel
once, `pb(ct)` runs the pullback kernel once, and neither traces again: an ODE solver calling
`tg.vjp` at every step costs two kernel calls per step.

In eager mode the forward runs op by op in a root eager builder, and `pb` runs the backward pass
over the recorded equations and values (transforms._Traced: on the values themselves, or recorded
into that builder when it holds loops or custom rules); the forward is not run twice.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .config import anomaly_enabled
from .ir import IR, Aval, Var, dce
from .pytree import tree_flatten, tree_map, tree_unflatten
from .staging import Staged, unwrap_output
from .tiers import Entry
from .trace import current_builder

_ND = np.ndarray


class StagedVJP(Staged):
    """`StagedVJP(fun, has_aux, record, backward)(*primals)` -> `(out, pullback)` or `(out, pullback, aux)`."""

    def __init__(self, fun, has_aux, record, backward):
        """`record(fun, primals, has_aux)` -> (recording, leaves, tree) traces the forward pass;
        `backward(recording, leaves, tree, ct)` -> cotangents of the primals (transforms.py)."""
        has_aux = bool(has_aux)
        super().__init__(self._joint, names_from=fun, target=fun, tkey=("vjp", has_aux))
        self.user, self.has_aux = fun, has_aux
        self._record, self._backward = record, backward

    def _joint(self, *primals):
        """The joint function, traced in a root builder: cotangents become inputs after the forward."""
        tr, leaves, tree = self._record(self.user, primals, self.has_aux)
        b = current_builder()
        cts = [b.new_input(Aval(ops.shape_of(o), ops.dtype_of(o))) for o in tr.outs]
        grads = self._backward(tr, leaves, tree, tree_unflatten(tr.out_tree, cts))
        aux = tree_unflatten(tr.aux_tree, tr.aux) if self.has_aux else None
        return tree_unflatten(tr.out_tree, tr.outs), aux, grads

    def _new_entry(self, ir, out_tree, mode, n_env):
        out_td, aux_td, grads_td = out_tree.children
        n_out = out_td.num_leaves
        fwd_ir, bwd_ir = split(ir, len(ir.inputs) - n_out, n_out + aux_td.num_leaves)
        check = self._check_finite()
        flat = lambda n: tree_flatten(tuple(range(n)))[1]       # noqa: E731
        fwd = Entry(fwd_ir, flat(len(fwd_ir.outputs)), check, mode)
        bwd = Entry(bwd_ir, flat(len(bwd_ir.outputs)), check, mode)
        ct_avals = [v.aval for v in ir.inputs[len(ir.inputs) - n_out:]]
        return _PairEntry(self, fwd, bwd, out_td, aux_td, grads_td, ct_avals)

    @staticmethod
    def _check_finite():
        return anomaly_enabled()

    def _eager_body(self, root, primals, kw):
        with root:
            tr, p_leaves, tree = self._record(self.user, primals, self.has_aux)
        where = f"output of {self.name}"
        out = tree_unflatten(tr.out_tree, [unwrap_output(o, where) for o in tr.outs])

        def pullback(ct):
            with root:       # (the backward pass runs on the recorded values, or records into root)
                g = self._backward(tr, p_leaves, tree, ct)
            return tree_map(lambda o: unwrap_output(o, where), g)
        if self.has_aux:
            return out, pullback, tree_unflatten(tr.aux_tree, [unwrap_output(o, where) for o in tr.aux])
        return out, pullback


def split(ir: IR, n_fixed: int, n_fwd_out: int):
    """(forward IR, pullback IR) of a joint IR whose inputs after `n_fixed` are cotangents and whose
    first `n_fwd_out` outputs are the forward results (the rest: the cotangents of the primals)."""
    ct_vars = ir.inputs[n_fixed:]
    dep = set(ct_vars)
    fwd_eqns, bwd_eqns = [], []
    for e in ir.eqns:
        if any(type(a) is Var and a in dep for a in e.inputs):
            bwd_eqns.append(e)
            dep.update(e.outs)
        else:
            fwd_eqns.append(e)
    consts = {v for v, _ in ir.consts}
    residuals, seen = [], set()

    def need(a):
        if type(a) is Var and a not in dep and a not in consts and a not in seen:
            seen.add(a)
            residuals.append(a)
    for e in bwd_eqns:
        for a in e.inputs:
            need(a)
    grads = ir.outputs[n_fwd_out:]
    for a in grads:
        need(a)
    fwd = dce(IR(ir.inputs[:n_fixed], ir.consts, tuple(fwd_eqns),
                 tuple(ir.outputs[:n_fwd_out]) + tuple(residuals)))
    bwd = dce(IR(tuple(residuals) + tuple(ct_vars), ir.consts, tuple(bwd_eqns), tuple(grads)))
    return fwd, bwd


class _PairEntry:
    """The cache entry of one vjp signature: the forward entry and the pullback entry."""

    def __init__(self, staged, fwd, bwd, out_td, aux_td, grads_td, ct_avals):
        self.fwd, self.bwd = fwd, bwd
        self.ir = fwd.ir
        self.name = staged.name
        self.has_aux = staged.has_aux
        self.out_td, self.aux_td, self.grads_td = out_td, aux_td, grads_td
        self.n_out, self.n_aux = out_td.num_leaves, aux_td.num_leaves
        self.ct_avals = ct_avals
        self.single = out_td.nodetype is None       # one output array: the fast pullback path

    # what staging and cache_info read from an entry
    def run(self, *leaves):
        return self.fwd.run(*leaves)

    tier = property(lambda self: self.fwd.tier if self.fwd.tier == self.bwd.tier
                    else f"{self.fwd.tier}/{self.bwd.tier}")
    def _set_why(self, why):          # (staging notes why a churning entry is not compiled)
        self.fwd.why = self.bwd.why = why

    why = property(lambda self: self.fwd.why or self.bwd.why, _set_why)
    compile_s = property(lambda self: None if self.fwd.compile_s is None or self.bwd.compile_s is None
                         else self.fwd.compile_s + self.bwd.compile_s)

    def source(self) -> str:
        return "# forward\n" + self.fwd.source() + "\n# pullback\n" + self.bwd.source()

    def wait_native(self):
        self.bwd.wait_native()
        return self.fwd.wait_native()

    def finish(self, outs):
        n_out, n_aux = self.n_out, self.n_aux
        out = outs[0] if self.single else tree_unflatten(self.out_td, outs[:n_out])
        pb = Pullback(self, outs[n_out + n_aux:])
        if self.has_aux:
            return out, pb, tree_unflatten(self.aux_td, outs[n_out:n_out + n_aux])
        return out, pb

    def cotangents(self, ct) -> list:
        leaves, tree = tree_flatten(ct)
        if tree != self.out_td:
            raise TypeError(f"vjp cotangent structure {tree} does not match the output {self.out_td}")
        out = []
        for c, a in zip(leaves, self.ct_avals):
            shape = ops.shape_of(c)
            if tuple(shape) != a.shape:
                raise ValueError(f"vjp cotangent shape {tuple(shape)} does not match the output "
                                 f"shape {a.shape}")
            if ops.is_traced(c):
                raise TypeError(f"the pullback of {self.name} (made at the top level) was called "
                                f"with a traced cotangent; call tg.vjp inside the traced function")
            out.append(np.asarray(c, a.dtype))
        return out


class Pullback:
    """`pb(ct)`: the cotangents of the primals (a tuple, one per primal), by the pullback entry."""
    __slots__ = ("_entry", "_res")

    def __init__(self, entry, residuals):
        self._entry, self._res = entry, residuals

    def __call__(self, ct):
        e = self._entry
        if e.single and type(ct) is _ND and ct.shape == e.ct_avals[0].shape \
                and ct.dtype == e.ct_avals[0].dtype:
            outs = e.bwd.run(*self._res, ct)
        else:
            outs = e.bwd.run(*self._res, *e.cotangents(ct))
        return tree_unflatten(e.grads_td, outs)
