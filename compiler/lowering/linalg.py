"""Linear-algebra kernels: lu, triangular_solve and cholesky through the cached helpers in
`kernels.py`; eigh and svd through NumPy in Numba's object mode, since they must match `np.linalg`
bit for bit (LAPACK's sign choices)."""
from __future__ import annotations


from tracegrad import primitives as P

from .. import layout
from ..rules import LOWERINGS, Block

def _blocks(ctx, atom):
    base, off, _ = ctx.flat(ctx.access(atom))
    return base, off


def _lu(ctx, eqn):
    (a,) = eqn.inputs
    lu, piv, perm = eqn.outs
    n = a.aval.shape[-1]
    nb = layout.size_of(a.aval.shape[:-2])
    outs = [ctx.new_buffer(v) for v in (lu, piv, perm)]
    if a.aval.size == 0:
        return
    ab, ao = _blocks(ctx, a)
    (lb, lo), (pb, po), (qb, qo) = outs
    ctx.helper_call("lu_factor", (ab, lb, pb, qb), (ao, nb, n, lo, po, qo),
                    " (a offset, matrices, n, lu offset, pivots offset, perm offset)")


def _triangular_solve(ctx, eqn):
    a, b = eqn.inputs
    (x,) = eqn.outs
    p = eqn.params
    n, m = b.aval.shape[-2], b.aval.shape[-1]
    nb = layout.size_of(a.aval.shape[:-2])
    xb, xo = ctx.new_buffer(x)
    if x.aval.size == 0 and n == 0:
        return
    ab, ao = _blocks(ctx, a)
    bb, bo = _blocks(ctx, b)
    ctx.helper_call("tri_solve", (ab, bb, xb),
                    (ao, bo, xo, nb, n, m, p["lower"], p["transpose_a"], p["unit_diagonal"]),
                    " (a, b, x offsets, matrices, n, m, lower, transposed, unit diagonal)")


def _cholesky(ctx, eqn):
    (a,) = eqn.inputs
    (out,) = eqn.outs
    n = a.aval.shape[-1]
    nb = layout.size_of(a.aval.shape[:-2])
    lb, lo = ctx.new_buffer(out)
    if a.aval.size == 0:
        return
    ab, ao = _blocks(ctx, a)
    ctx.helper_call("cholesky", (ab, lb), (ao, lo, nb, n), " (a offset, l offset, matrices, n)")


def _numpy_call(what, **kw):
    """Through object mode: NumPy itself computes, into the outputs' storage."""
    def rule(ctx, eqn):
        ins = []
        for v in eqn.inputs:
            base, off, _ = ctx.flat(ctx.access(v))
            ins.append(ctx.view_text(base, off, v.aval.shape))
        outs = []
        for v in eqn.outs:
            base, off = ctx.new_buffer(v)
            outs.append(ctx.view_text(base, off, v.aval.shape))
        params = "".join(f", {k}={eqn.params[k]!r}" for k in kw)
        ctx.line("with objmode():")
        ctx.line(f"    _numpy_call({what!r}, ({', '.join(ins)},), ({', '.join(outs)},){params})")
        ctx.uses_objmode = True
        ctx.helpers.add("_numpy_call")
    return Block(rule)


LOWERINGS[P.lu_p] = Block(_lu)
LOWERINGS[P.triangular_solve_p] = Block(_triangular_solve)
LOWERINGS[P.cholesky_p] = Block(_cholesky)
LOWERINGS[P.eigh_p] = _numpy_call("eigh")
LOWERINGS[P.svd_p] = _numpy_call("svd", full_matrices=True)
