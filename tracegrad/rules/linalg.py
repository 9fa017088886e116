"""Rules for the linear-algebra kernels lu, triangular_solve, cholesky, eigh, svd.

Semantics: docs/primitives.md. All matrices are the last two axes; leading axes are
batch. Derivatives are the standard matrix-calculus results, written with traceable ops (so they
differentiate again):
  lu:        P A = L U;  X = L^-1 P dA U^-1;  dL = L strictlower(X), dU = upper(X) U
             (NaN for a matrix with a zero pivot: the factors are not differentiable there).
  tri-solve: op(A) X = B;  dX = op(A)^-1 (dB - op(dA) X);  B-bar = op(A)^-T X-bar.
  cholesky:  dL = L phi(L^-1 dA L^-T), phi = lower triangle with the diagonal halved.
  eigh:      dw = diag(V^T dA V),  dV = V (F o V^T dA V),  F_ij = 1 / (w_j - w_i).
  svd:       dP = U^T dA V;  ds = diag(dP);  dU, dV from F_ij = 1 / (s_j^2 - s_i^2) plus the
             projections onto the complements of U / V when the matrix is not square; the extra
             vectors of full_matrices=True rotate minimally (see _svd_jvp).
cholesky and eigh treat their input as symmetric (tracegrad.numpy builds it from one triangle), so
their cotangents are symmetrised. eigh needs distinct eigenvalues and svd distinct non-zero
singular values (elsewhere the derivative does not exist); a tangent or cotangent that does not
excite a tied pair takes nothing from it (`_gap_mul`), so smooth functions of the factors (the
largest singular value, with the others tied) keep finite higher derivatives.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .. import ops_indexing
from .. import ops_linalg
from .. import primitives as P
from ..ir import Aval
from .common import defimpl, defjvp, defshape, defvjp, fmt_shape, require_float, same_dtype


def _square(name, a):
    require_float(name, a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} needs square matrices in the last two axes, got shape "
                         f"{fmt_shape(a.shape)}")


def _const(x, value):
    return np.asarray(value, ops.dtype_of(x))[()]


def _lead(x):
    return tuple(ops.shape_of(x)[:-2])


# ---------------------------------------------------------------- lu

def _lu_shape(a):
    _square("lu", a)
    vec = a.shape[:-1]
    return (Aval(a.shape, a.dtype), Aval(vec, np.int64), Aval(vec, np.int64))


def _lu_impl(a):
    a = np.asarray(a)
    n = a.shape[-1]
    nb = int(np.prod(a.shape[:-2], dtype=np.int64))
    lu = a.reshape((nb, n, n)).copy()      # (nb explicit: -1 is ambiguous when n == 0)
    rows = np.arange(nb)
    perm = np.tile(np.arange(n, dtype=np.int64), (nb, 1))
    piv = np.zeros((nb, n), np.int64)
    for k in range(n):
        p = k + np.argmax(np.abs(lu[:, k:, k]), axis=1)
        piv[:, k] = p
        lu[rows, k], lu[rows, p] = lu[rows, p], lu[rows, k].copy()
        perm[rows, k], perm[rows, p] = perm[rows, p], perm[rows, k].copy()
        pivot = lu[:, k, k]
        lu[:, k + 1:, k] /= np.where(pivot != 0, pivot, 1)[:, None]   # a zero pivot has a zero column
        lu[:, k + 1:, k + 1:] -= lu[:, k + 1:, k, None] * lu[:, k, None, k + 1:]
    return (lu.reshape(a.shape), piv.reshape(a.shape[:-1]), perm.reshape(a.shape[:-1]))


def _lu_factors(lu):
    n = ops.shape_of(lu)[-1]
    l = ops.add(ops_linalg.tril(lu, -1), ops_linalg.eye(n, ops.dtype_of(lu)))
    return l, ops_linalg.triu(lu)


def _permute_rows(x, perm):
    """x[..., perm, :]  (P x)."""
    idx = ops.broadcast_to(ops.reshape(perm, ops.shape_of(perm) + (1,)), ops.shape_of(x))
    return ops_indexing.take_along_axis(x, idx, ops.ndim_of(x) - 2)


def _unpermute_rows(x, perm):
    """P^T x: row i of x goes to row perm[i]."""
    idx = ops.broadcast_to(ops.reshape(perm, ops.shape_of(perm) + (1,)), ops.shape_of(x))
    return ops_indexing.put_along_axis_add(ops.zeros_like(x), idx, x, ops.ndim_of(x) - 2)


def _safe_upper(u):
    """(U with each zero pivot replaced by 1, per matrix: True where U has a zero pivot).

    With a zero pivot, L and U are not differentiable (the next pivot is not even continuous), so
    the derivative rules solve with the safe U and return NaN for those matrices: never a
    LinAlgError from a derivative, never a finite wrong value. det differentiates through its
    adjugate instead (tracegrad/numpy/linalg.py), which is defined for every matrix."""
    n = ops.shape_of(u)[-1]
    zero = ops.compare(P.eq_p, ops_linalg.diag_part(u), 0)
    fix = ops_linalg.diag_embed(ops.convert(zero, ops.dtype_of(u)), n, n)
    singular = ops.reduce(P.reduce_or_p, zero, (ops.ndim_of(zero) - 1,))
    return ops.add(u, fix), ops.reshape(singular, tuple(ops.shape_of(singular)) + (1, 1))


def _nan_where(singular, x):
    return ops.select(singular, ops.full(ops.shape_of(x), np.nan, ops.dtype_of(x)), x)


def _lu_jvp(tangents, a, *, out):
    (ta,) = tangents
    lu, _, perm = out
    l, u = _lu_factors(lu)
    u_safe, singular = _safe_upper(u)
    y = ops_linalg.triangular_solve(l, _permute_rows(ta, perm), lower=True, unit_diagonal=True)
    x = ops_linalg.mT(ops_linalg.triangular_solve(u_safe, ops_linalg.mT(y), lower=False, transpose_a=True))     # L^-1 P dA U^-1
    d_lu = ops.add(ops_linalg.bmm(l, ops_linalg.tril(x, -1)), ops_linalg.bmm(ops_linalg.triu(x), u))
    return (_nan_where(singular, d_lu), None, None)


def _lu_vjp(cts, a, *, out):
    ct = cts[0]
    if ct is None:
        return (None,)
    lu, _, perm = out
    l, u = _lu_factors(lu)
    u_safe, singular = _safe_upper(u)
    m = ops.add(ops_linalg.tril(ops_linalg.bmm(ops_linalg.mT(l), ops_linalg.tril(ct, -1)), -1), ops_linalg.triu(ops_linalg.bmm(ops_linalg.triu(ct), ops_linalg.mT(u))))
    w = ops_linalg.triangular_solve(l, m, lower=True, transpose_a=True, unit_diagonal=True)   # L^-T m
    z = ops_linalg.mT(ops_linalg.triangular_solve(u_safe, ops_linalg.mT(w), lower=False))                            # ... U^-T
    return (_nan_where(singular, _unpermute_rows(z, perm)),)


defimpl(P.lu_p, _lu_impl)
defshape(P.lu_p, _lu_shape)
defjvp(P.lu_p, _lu_jvp)
defvjp(P.lu_p, _lu_vjp)


# ---------------------------------------------------------------- triangular_solve

def _trisolve_shape(a, b, *, lower, transpose_a, unit_diagonal):
    _square("triangular_solve", a)
    same_dtype(a, b)
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"triangular_solve: right-hand side {fmt_shape(b.shape)} does not match "
                         f"matrices {fmt_shape(a.shape)}")
    return Aval(b.shape, b.dtype)


def _trisolve_impl(a, b, *, lower, transpose_a, unit_diagonal):
    a, b = np.asarray(a), np.asarray(b)
    n = a.shape[-1]
    if not unit_diagonal and (np.diagonal(a, axis1=-2, axis2=-1) == 0).any():
        raise np.linalg.LinAlgError("Singular matrix")
    t = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        t = t.copy()
        t[..., np.arange(n), np.arange(n)] = 1
    if transpose_a:
        t, lower = np.swapaxes(t, -1, -2), not lower
    x = np.zeros(b.shape, dtype=np.result_type(a, b))
    for i in (range(n) if lower else range(n - 1, -1, -1)):
        s = b[..., i, :] - (t[..., i:i + 1, :] @ x)[..., 0, :]      # unsolved entries of x are 0
        x[..., i, :] = s / t[..., i, i, None]
    return x


def _tri_part(x, lower, unit_diagonal):
    k = (-1 if unit_diagonal else 0) if lower else (1 if unit_diagonal else 0)
    return ops_linalg.tril(x, k) if lower else ops_linalg.triu(x, k)


def _trisolve_vjp(ct, a, b, *, out, lower, transpose_a, unit_diagonal):
    ct_b = ops_linalg.triangular_solve(a, ct, lower, not transpose_a, unit_diagonal)
    full = ops_linalg.bmm(out, ops_linalg.mT(ct_b)) if transpose_a else ops_linalg.bmm(ct_b, ops_linalg.mT(out))
    return (ops.neg(_tri_part(full, lower, unit_diagonal)), ct_b)


def _trisolve_jvp(tangents, a, b, *, out, lower, transpose_a, unit_diagonal):
    ta, tb = tangents
    rhs = tb
    if ta is not None:
        da = _tri_part(ta, lower, unit_diagonal)
        term = ops_linalg.bmm(ops_linalg.mT(da) if transpose_a else da, out)
        rhs = ops.neg(term) if rhs is None else ops.sub(rhs, term)
    if rhs is None:
        return None
    return ops_linalg.triangular_solve(a, rhs, lower, transpose_a, unit_diagonal)


defimpl(P.triangular_solve_p, _trisolve_impl)
defshape(P.triangular_solve_p, _trisolve_shape)
defvjp(P.triangular_solve_p, _trisolve_vjp)
defjvp(P.triangular_solve_p, _trisolve_jvp)


# ---------------------------------------------------------------- cholesky

def _cholesky_shape(a):
    _square("cholesky", a)
    return Aval(a.shape, a.dtype)


def _phi(x):
    """Lower triangle with the diagonal halved."""
    n = ops.shape_of(x)[-1]
    weight = np.tri(n, n, -1, dtype=ops.dtype_of(x)) + 0.5 * np.eye(n, dtype=ops.dtype_of(x))
    return ops.mul(x, weight)


def _cholesky_jvp(tangents, a, *, out):
    (ta,) = tangents
    y = ops_linalg.triangular_solve(out, ta, lower=True)                         # L^-1 dA
    x = ops_linalg.mT(ops_linalg.triangular_solve(out, ops_linalg.mT(y), lower=True))              # L^-1 dA L^-T
    return ops_linalg.bmm(out, _phi(x))


def _cholesky_vjp(ct, a, *, out):
    m = _phi(ops_linalg.bmm(ops_linalg.mT(out), ct))
    w = ops_linalg.triangular_solve(out, m, lower=True, transpose_a=True)        # L^-T m
    z = ops_linalg.mT(ops_linalg.triangular_solve(out, ops_linalg.mT(w), lower=True, transpose_a=True))   # ... L^-1
    return (ops_linalg.symmetrize(z),)


defimpl(P.cholesky_p, lambda a: np.linalg.cholesky(a))
defshape(P.cholesky_p, _cholesky_shape)
defvjp(P.cholesky_p, _cholesky_vjp)
defjvp(P.cholesky_p, _cholesky_jvp)


# ---------------------------------------------------------------- eigh

def _eigh_shape(a):
    _square("eigh", a)
    return (Aval(a.shape[:-1], a.dtype), Aval(a.shape, a.dtype))


def _gap_inverse(row, col, n, square=False):
    """F[..., i, j] = 1 / (f(row_j) - f(col_i)) off the diagonal, 0 on it (f = square or identity)."""
    lead = tuple(ops.shape_of(row)[:-1])
    rj = ops.reshape(row, lead + (1, n))
    ci = ops.reshape(col, lead + (n, 1))
    if square:
        rj, ci = ops.integer_pow(rj, 2), ops.integer_pow(ci, 2)
    diff = ops.sub(rj, ci)
    eye = np.eye(n, dtype=bool)
    one, zero = _const(diff, 1), _const(diff, 0)
    return ops.select(eye, zero, ops.div(one, ops.select(eye, one, diff)))


def _gap_mul(f, x):
    """f * x for a gap inverse f (inf where eigen- or singular values are equal) and x: 0 where
    x == 0 instead of inf * 0 = NaN (a direction that does not excite a tied pair takes nothing
    from it), with the derivatives of f * x wherever f is finite. Where x != 0 at a tie the
    result is inf or NaN: the derivative does not exist there."""
    safe_f = ops.select(ops.unary(P.isfinite_p, f), f, ops.zeros_like(f))
    return ops.select(ops.compare(P.eq_p, x, 0), ops.mul(x, safe_f), ops.mul(f, x))


def eigh_jvp(tangents, a, *, out):
    """(Also the rule of tracegrad.numpy.linalg's eigh(UPLO='U'), which computes (w, v) itself.)"""
    (ta,) = tangents
    w, v = out
    n = ops.shape_of(w)[-1]
    dp = ops_linalg.bmm(ops_linalg.mT(v), ops_linalg.bmm(ta, v))
    dw = ops_linalg.diag_part(dp)
    dv = ops_linalg.bmm(v, _gap_mul(_gap_inverse(w, w, n), dp))
    return (dw, dv)


def _eigh_vjp(cts, a, *, out):
    ct_w, ct_v = cts
    w, v = out
    n = ops.shape_of(w)[-1]
    inner = None
    if ct_v is not None:
        inner = _gap_mul(_gap_inverse(w, w, n), ops_linalg.bmm(ops_linalg.mT(v), ct_v))
    if ct_w is not None:
        d = ops_linalg.diag_embed(ct_w, n, n)
        inner = d if inner is None else ops.add(inner, d)
    if inner is None:
        return (None,)
    return (ops_linalg.symmetrize(ops_linalg.bmm(v, ops_linalg.bmm(inner, ops_linalg.mT(v)))),)


defimpl(P.eigh_p, lambda a: tuple(np.linalg.eigh(a)))
defshape(P.eigh_p, _eigh_shape)
defvjp(P.eigh_p, _eigh_vjp)
defjvp(P.eigh_p, eigh_jvp)


# ---------------------------------------------------------------- svd

def _svd_shape(a, *, full_matrices):
    require_float("svd", a)
    if a.ndim < 2:
        raise ValueError(f"svd needs matrices in the last two axes, got shape {fmt_shape(a.shape)}")
    *lead, m, n = a.shape
    k = min(m, n)
    lead = tuple(lead)
    um, vn = (m, n) if full_matrices else (k, k)
    return (Aval(lead + (m, um), a.dtype), Aval(lead + (k,), a.dtype), Aval(lead + (vn, n), a.dtype))


def _svd_impl(a, *, full_matrices):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return (u, s, vh)


def _split_full(a, out, full_matrices):
    """(u_k, s, vh_k, qu, qv, m, n, k): the reduced factors, and for full_matrices the extra
    columns of u (qu) and of v (qv, the extra rows of vh transposed), else None."""
    u, s, vh = out
    m, n = ops.shape_of(a)[-2:]
    k = min(m, n)
    qu = qv = None
    if full_matrices and m != n:
        nl = len(_lead(a))
        lead = list(_lead(a))
        if m > k:
            qu = ops.slice_(u, [0] * nl + [0, k], lead + [m, m])
            u = ops.slice_(u, [0] * (nl + 2), lead + [m, k])
        if n > k:
            qv = ops_linalg.mT(ops.slice_(vh, [0] * nl + [k, 0], lead + [n, n]))
            vh = ops.slice_(vh, [0] * (nl + 2), lead + [k, n])
    return u, s, vh, qu, qv, m, n, k


def _cols(x, lo, hi):
    shape = ops.shape_of(x)
    nl = len(shape) - 2
    return ops.slice_(x, [0] * nl + [0, lo], list(shape[:-1]) + [hi])


# The extra singular vectors of svd(full_matrices=True) span the orthogonal complement of the
# first k; any orthonormal basis of it is valid, so their derivative is a convention. Ours is the
# minimal rotation: the complement basis Q moves only to stay orthogonal to U_k,
# dQ = -U_k (dU_k^T Q) (and its adjoint in reverse mode). It is the derivative of a smooth choice of
# basis, not necessarily of LAPACK's (finite differences of those columns may differ).

def _svd_jvp(tangents, a, *, out, full_matrices):
    (ta,) = tangents
    u, s, vh, qu, qv, m, n, k = _split_full(a, out, full_matrices)
    lead = _lead(a)
    v = ops_linalg.mT(vh)
    dp = ops_linalg.bmm(ops_linalg.mT(u), ops_linalg.bmm(ta, v))
    ds = ops_linalg.diag_part(dp)
    f = _gap_inverse(s, s, k, square=True)
    s_row = ops.reshape(s, lead + (1, k))
    s_col = ops.reshape(s, lead + (k, 1))
    du = ops_linalg.bmm(u, _gap_mul(f, ops.add(ops.mul(dp, s_row), ops.mul(s_col, ops_linalg.mT(dp)))))
    dv = ops_linalg.bmm(v, _gap_mul(f, ops.add(ops.mul(s_col, dp), ops.mul(ops_linalg.mT(dp), s_row))))
    inv_s = ops.div(_const(s_row, 1), s_row)        # (inf at s = 0: _gap_mul keeps 0 * inf out)
    if m > k:
        dav = ops_linalg.bmm(ta, v)
        du = ops.add(du, _gap_mul(inv_s, ops.sub(dav, ops_linalg.bmm(u, dp))))
    if n > k:
        dau = ops_linalg.bmm(ops_linalg.mT(ta), u)
        dv = ops.add(dv, _gap_mul(inv_s, ops.sub(dau, ops_linalg.bmm(v, ops_linalg.mT(dp)))))
    if qu is not None:
        du = ops.concatenate([du, ops.neg(ops_linalg.bmm(u, ops_linalg.bmm(ops_linalg.mT(du), qu)))], len(lead) + 1)
    if qv is not None:
        dv = ops.concatenate([dv, ops.neg(ops_linalg.bmm(v, ops_linalg.bmm(ops_linalg.mT(dv), qv)))], len(lead) + 1)
    # a 1-by-1 U or V is +-1: constant, even where the formulas above divide by s = 0
    if m == 1:
        du = ops.zeros_like(out[0])
    if n == 1:
        dv = ops_linalg.mT(ops.zeros_like(out[2]))
    return (du, ds, ops_linalg.mT(dv))


def _svd_vjp(cts, a, *, out, full_matrices):
    ct_u, ct_s, ct_vh = cts
    u, s, vh, qu, qv, m, n, k = _split_full(a, out, full_matrices)
    lead = _lead(a)
    v = ops_linalg.mT(vh)
    ct_v = None if ct_vh is None else ops_linalg.mT(ct_vh)
    # fold the cotangents of the complement columns into those of the first k (adjoint of dQ above)
    if ct_u is not None and qu is not None:
        ct_u = ops.sub(_cols(ct_u, 0, k), ops_linalg.bmm(qu, ops_linalg.bmm(ops_linalg.mT(_cols(ct_u, k, m)), u)))
    if ct_v is not None and qv is not None:
        ct_v = ops.sub(_cols(ct_v, 0, k), ops_linalg.bmm(qv, ops_linalg.bmm(ops_linalg.mT(_cols(ct_v, k, n)), v)))
    s_row = ops.reshape(s, lead + (1, k))
    s_col = ops.reshape(s, lead + (k, 1))
    f = _gap_inverse(s, s, k, square=True)
    core = None

    def acc(total, term):
        return term if total is None else ops.add(total, term)

    if ct_s is not None:
        core = ops_linalg.diag_embed(ct_s, k, k)
    extra = None
    # (1/s is inf at s = 0: a column whose cotangent is 0 there takes nothing, not 0 * inf = NaN,
    # e.g. the zero singular value's vectors when only the largest one's are used)
    inv_s = ops.div(_const(s_row, 1), s_row)
    if ct_u is not None:
        utc = ops_linalg.bmm(ops_linalg.mT(u), ct_u)
        j = _gap_mul(f, utc)
        core = acc(core, ops.mul(ops.add(j, ops_linalg.mT(j)), s_row))
        if m > k:
            extra = ops_linalg.bmm(_gap_mul(inv_s, ops.sub(ct_u, ops_linalg.bmm(u, utc))), vh)
    if ct_v is not None:
        vtc = ops_linalg.bmm(ops_linalg.mT(v), ct_v)
        kk = _gap_mul(f, vtc)
        core = acc(core, ops.mul(s_col, ops.add(kk, ops_linalg.mT(kk))))
        if n > k:
            extra = acc(extra, ops_linalg.bmm(u, ops_linalg.mT(_gap_mul(inv_s, ops.sub(ct_v, ops_linalg.bmm(v, vtc))))))
    total = None if core is None else ops_linalg.bmm(u, ops_linalg.bmm(core, vh))
    if extra is not None:
        total = acc(total, extra)
    return (total,)


defimpl(P.svd_p, _svd_impl)
defshape(P.svd_p, _svd_shape)
defvjp(P.svd_p, _svd_vjp)
defjvp(P.svd_p, _svd_jvp)
