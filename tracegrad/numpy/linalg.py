"""`tracegrad.numpy.linalg`: NumPy's `np.linalg` on traced values.

Kernels are the primitives lu, triangular_solve, cholesky, eigh and svd (semantics: docs/primitives.md);
solve, inv, det, slogdet, pinv, matrix_power, norm, ... are compositions of them. As in NumPy,
cholesky and eigh read one triangle of their input (the lower one by default), so derivatives with
respect to the other triangle are zero; eigh(UPLO='U') takes NumPy's own eigenvectors (LAPACK's
signs differ between the triangles). Singular matrices raise `numpy.linalg.LinAlgError` in solve and
inv (from triangular_solve); det of a singular matrix is 0 and slogdet's is (0, -inf).

Where a factorisation is only how a smooth function is computed, the function has its own
derivative rule (`custom_jvp`, in traceable ops, so higher orders work): det (the adjugate, defined
at every rank, where the LU's derivative is not), pinv, the nuclear norm and the extreme singular
values (which the SVD's rule would divide by gaps between *other* singular values).
The result namedtuples (EighResult, SVDResult, SlogdetResult) are registered as pytree nodes, so
transforms return them.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np
from numpy.linalg import LinAlgError  # noqa: F401  (re-exported as np.linalg does)

from .. import ops
from .. import ops_indexing
from .. import ops_linalg
from .. import primitives as P
from ..callback import ShapeDtypeStruct, pure_callback
from ..custom_jvp import custom_jvp
from ..pytree import _registry, register_pytree_node
from ..rules.linalg import eigh_jvp
from . import contractions, products
from ._dispatch import numpy_function
from .reductions import max as _max, min as _min, sum as _sum

_L = np.linalg
EighResult = _L._linalg.EighResult
SVDResult = _L._linalg.SVDResult
SlogdetResult = _L._linalg.SlogdetResult

for _nt in (EighResult, SVDResult, SlogdetResult):
    if _nt not in _registry:
        register_pytree_node(_nt, lambda t: (list(t), None), lambda _, c, _nt=_nt: _nt(*c))


def _float(a):
    """As NumPy's linalg: ints/bools compute in float64, float32 stays float32."""
    a = ops.as_operand(a)
    dt = ops.dtype_of(a)
    return a if dt.kind == "f" else ops.as_dtype(a, np.float64)


def _square(a, name):
    s = ops.shape_of(a)
    if len(s) < 2:
        raise LinAlgError(f"{len(s)}-dimensional array given. Array must be at least two-dimensional")
    if s[-1] != s[-2]:
        raise LinAlgError("Last 2 dimensions of the array must be square")


def _lu_parts(a):
    lu, piv, perm = ops_linalg.lu(a)
    n = ops.shape_of(a)[-1]
    l = ops.add(ops_linalg.tril(lu, -1), ops_linalg.eye(n, ops.dtype_of(lu)))
    return lu, piv, perm, l, ops_linalg.triu(lu)


def _parity_sign(piv, dtype):
    """(-1) ** (number of row swaps) of an LU's pivots."""
    n = ops.shape_of(piv)[-1]
    swaps = ops.convert(ops.compare(P.ne_p, piv, np.arange(n, dtype=np.int64)), np.int64)
    odd = ops.binary(P.rem_p, ops.reduce_sum(swaps, (ops.ndim_of(piv) - 1,)), np.int64(2))
    return ops.sub(np.ones((), dtype)[()], ops.mul(ops.convert(odd, dtype), np.asarray(2, dtype)[()]))


def _lu_solve(lu_parts, b):
    """Solve a x = b for b of shape (..., n, k) with the batch dims of the factors."""
    _, _, perm, l, u = lu_parts
    idx = ops.broadcast_to(ops.reshape(perm, tuple(ops.shape_of(perm)) + (1,)), ops.shape_of(b))
    pb = ops_indexing.take_along_axis(b, idx, ops.ndim_of(b) - 2)
    y = ops_linalg.triangular_solve(l, pb, lower=True, unit_diagonal=True)
    return ops_linalg.triangular_solve(u, y, lower=False)


def _bcast_batch(x, batch):
    s = tuple(ops.shape_of(x))
    return x if s[:-2] == batch else ops.broadcast_to(x, batch + s[-2:])


@numpy_function(_L.solve)
def solve(a, b):
    a, b = ops.promote(_float(a), _float(b))
    _square(a, "solve")
    n = ops.shape_of(a)[-1]
    vec = ops.ndim_of(b) == 1
    bm = ops.reshape(b, (n, 1)) if vec else b
    if ops.shape_of(bm)[-2] != n:
        raise ValueError(f"solve: Input operand 1 has a mismatch in its core dimension 0 "
                         f"(size {ops.shape_of(bm)[-2]} is different from {n})")
    batch = tuple(np.broadcast_shapes(tuple(ops.shape_of(a))[:-2], tuple(ops.shape_of(bm))[:-2]))
    a, bm = _bcast_batch(a, batch), _bcast_batch(bm, batch)
    x = _lu_solve(_lu_parts(a), bm)
    return ops.reshape(x, batch + (n,)) if vec else x


@numpy_function(_L.inv)
def inv(a):
    a = _float(a)
    _square(a, "inv")
    n = ops.shape_of(a)[-1]
    eye = ops.broadcast_to(ops_linalg.eye(n, ops.dtype_of(a)), ops.shape_of(a))
    return _lu_solve(_lu_parts(a), eye)


def _det_value(a):
    lu, piv, _, _, _ = _lu_parts(a)
    d = ops.reduce(P.reduce_prod_p, ops_linalg.diag_part(lu), (ops.ndim_of(lu) - 2,))
    return ops.mul(_parity_sign(piv, ops.dtype_of(lu)), d)


def _const(x, value):
    return np.asarray(value, ops.dtype_of(x))[()]


def _expand2(x):
    return ops.reshape(x, tuple(ops.shape_of(x)) + (1, 1))


def _prod_except(s, drop):
    """s (..., n) -> the products of s over l, for each entry of the boolean mask `drop` (n^k, n)
    leaving out the l where drop[..., l] is True: no division, exact at zeros."""
    lead = tuple(ops.shape_of(s)[:-1])
    n = ops.shape_of(s)[-1]
    k = drop.ndim - 1
    tiled = ops.broadcast_to(ops.reshape(s, lead + (1,) * k + (n,)), lead + drop.shape)
    return ops.reduce(P.reduce_prod_p, ops.select(drop, ops.ones_like(tiled), tiled), (len(lead) + k,))


def _svd_side(a, singular):
    """The SVD of each singular matrix of `a` (of a fixed matrix with distinct singular values
    elsewhere, so that the unused branch never produces NaN derivatives):
    (sign det(U) det(V), U, s, V, prod of s without l, prod of s without l and m)."""
    n = ops.shape_of(a)[-1]
    dt = ops.dtype_of(a)
    safe = np.diag(np.arange(1, n + 1, dtype=dt))
    u, s, vh = ops_linalg.svd(ops.select(singular, a, safe), False)
    # det(U) det(V) = +-1 is locally constant: its derivative is exactly zero
    sign = _expand2(ops.stop_gradient(ops.sign(_det_value(ops_linalg.bmm(u, vh)))))
    eye = np.eye(n, dtype=bool)
    others = _prod_except(s, eye)                                     # pi_i = prod_{l != i} s_l
    pair = _prod_except(s, eye[:, None, :] | eye[None, :, :])         # Q_ij = prod_{l != i, j} s_l
    return sign, u, s, ops_linalg.mT(vh), others, pair


def _adjugate_value(a):
    """adj(a) (adj(a) a = det(a) I) for every square matrix, singular ones included: det(a) a^-1
    from the LU where no pivot is zero, s V diag(prod_{l != i} s_l) U^T from the SVD elsewhere."""
    n = ops.shape_of(a)[-1]
    lu, piv, perm, l, u = _lu_parts(a)
    singular = _expand2(ops.reduce(P.reduce_or_p, ops.compare(P.eq_p, ops_linalg.diag_part(lu), 0),
                                   (ops.ndim_of(lu) - 2,)))
    u_safe = ops.add(u, ops_linalg.diag_embed(ops.convert(ops.compare(
        P.eq_p, ops_linalg.diag_part(u), 0), ops.dtype_of(u)), n, n))
    eye = ops.broadcast_to(ops_linalg.eye(n, ops.dtype_of(a)), ops.shape_of(a))
    by_lu = ops.mul(_expand2(_det_value(a)), _lu_solve((lu, piv, perm, l, u_safe), eye))
    sign, uu, _, v, others, _ = _svd_side(a, singular)
    lead = tuple(ops.shape_of(others)[:-1])
    by_svd = ops.mul(sign, ops_linalg.bmm(ops.mul(v, ops.reshape(others, lead + (1, n))),
                                          ops_linalg.mT(uu)))
    return ops.select(singular, by_svd, by_lu)


def _adjugate_jvp(primals, tangents):
    """d adj(A)[H]. Where A is far from singular (LU pivots within a factor 1e4 of each other, so
    the cancellation below costs at most ~eps cond^2): (tr(adj H) adj - adj H adj) / det, from adj
    and det themselves, so that higher orders recurse through these rules (never through the LU's
    derivative). Elsewhere, with A = U diag(s) V^T: s V X U^T, P = U^T H V,
    X = diag(Q diag(P)) - Q o P, Q_ij = prod_{l != i, j} s_l: no division, exact at any rank."""
    (a,), (h,) = primals, tangents
    n = ops.shape_of(a)[-1]
    adj, det = _adjugate()(a), _det()(a)
    pivots = ops.unary(P.abs_p, ops_linalg.diag_part(_lu_parts(ops.stop_gradient(a))[0]))
    last = (ops.ndim_of(pivots) - 1,)
    spread = ops.compare(P.le_p, ops.reduce(P.reduce_min_p, pivots, last),
                         ops.mul(ops.reduce(P.reduce_max_p, pivots, last), _const(a, 1e-4)))
    ill = _expand2(ops.bind(P.or_p, spread, ops.compare(P.eq_p, det, 0)))
    safe_det = ops.select(ill, ops.ones_like(_expand2(det)), _expand2(det))
    ah = ops_linalg.bmm(adj, h)
    tr = _expand2(ops.reduce_sum(ops_linalg.diag_part(ah), (ops.ndim_of(ah) - 2,)))
    by_adj = ops.div(ops.sub(ops.mul(tr, adj), ops_linalg.bmm(ah, adj)), safe_det)
    sign, u, _, v, _, q = _svd_side(a, ill)
    p = ops_linalg.bmm(ops_linalg.mT(u), ops_linalg.bmm(h, v))
    lead = tuple(ops.shape_of(p)[:-2])
    qdiag = ops.reduce_sum(ops.mul(q, ops.reshape(ops_linalg.diag_part(p), lead + (1, n))),
                           (len(lead) + 1,))
    x = ops.sub(ops_linalg.diag_embed(qdiag, n, n), ops.mul(q, p))
    by_svd = ops.mul(sign, ops_linalg.bmm(v, ops_linalg.bmm(x, ops_linalg.mT(u))))
    return adj, ops.select(ill, by_svd, by_adj)


def _det_jvp(primals, tangents):
    """d det(A)[H] = tr(adj(A) H): defined for every matrix (the LU's derivative is not, where a
    pivot is zero), and differentiable again through the adjugate's own rule."""
    (a,), (h,) = primals, tangents
    ah = ops.mul(ops_linalg.mT(_adjugate()(a)), h)
    nd = ops.ndim_of(ah)
    return _det()(a), ops.reduce_sum(ah, (nd - 2, nd - 1))


@functools.cache
def _adjugate():
    f = custom_jvp(_adjugate_value)
    f.defjvp(_adjugate_jvp)
    return f


@functools.cache
def _det():
    f = custom_jvp(_det_value)
    f.defjvp(_det_jvp)
    return f


@numpy_function(_L.det)
def det(a):
    """det(a) from the LU; its derivative is tr(adj(a) da) (JAX's rule), for singular matrices too."""
    a = _float(a)
    _square(a, "det")
    if 0 in ops.shape_of(a):     # no matrix, or 0x0 ones (det 1): nothing to differentiate
        return _det_value(a)
    return _det()(a)


@numpy_function(_L.slogdet)
def slogdet(a):
    a = _float(a)
    _square(a, "slogdet")
    lu, piv, _, _, _ = _lu_parts(a)
    diag = ops_linalg.diag_part(lu)
    ax = (ops.ndim_of(lu) - 2,)
    sign = ops.mul(_parity_sign(piv, ops.dtype_of(lu)), ops.reduce(P.reduce_prod_p, ops.sign(diag), ax))
    logdet = ops.reduce_sum(ops.log(ops.unary(P.abs_p, diag)), ax)
    return SlogdetResult(sign, logdet)


@numpy_function(_L.cholesky)
def cholesky(a, /, *, upper=False):
    a = _float(a)
    _square(a, "cholesky")
    if upper:   # NumPy then reads the upper triangle (UPLO='U') and returns U with U^T U = a
        return ops_linalg.mT(ops_linalg.cholesky(ops_linalg.from_upper(a)))
    return ops_linalg.cholesky(ops_linalg.from_lower(a))


def _eigh_upper_value(s):
    dt = ops.dtype_of(s)
    shape = tuple(ops.shape_of(s))
    return tuple(pure_callback(lambda m: tuple(np.linalg.eigh(m, UPLO="U")),
                               (ShapeDtypeStruct(shape[:-1], dt), ShapeDtypeStruct(shape, dt)), s))


def _eigh_upper_jvp(primals, tangents):
    (s,), (t,) = primals, tangents
    w, v = _eigh_upper()(s)
    return (w, v), tuple(eigh_jvp((t,), s, out=(w, v)))


@functools.cache
def _eigh_upper():
    """eigh reading the upper triangle, computed by NumPy itself: LAPACK's eigenvectors for
    UPLO='U' differ in sign from those of UPLO='L' on the same symmetric matrix, and the eigh
    primitive (and its compiled lowering) is UPLO='L'. Its derivative is the eigh primitive's."""
    f = custom_jvp(_eigh_upper_value)
    f.defjvp(_eigh_upper_jvp)
    return f


@numpy_function(_L.eigh)
def eigh(a, UPLO="L"):
    a = _float(a)
    _square(a, "eigh")
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    if UPLO == "U" and 0 not in ops.shape_of(a):
        return EighResult(*_eigh_upper()(ops_linalg.from_upper(a)))
    w, v = ops_linalg.eigh(ops_linalg.from_lower(a) if UPLO == "L" else ops_linalg.from_upper(a))
    return EighResult(w, v)


@numpy_function(_L.eigvalsh)
def eigvalsh(a, UPLO="L"):
    """Eigenvalues (no eigenvectors: the eigh primitive on the triangle UPLO names)."""
    a = _float(a)
    _square(a, "eigvalsh")
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return ops_linalg.eigh(ops_linalg.from_lower(a) if UPLO == "L" else ops_linalg.from_upper(a))[0]


def _matrix(a, name):
    a = _float(a)
    if ops.ndim_of(a) < 2:
        raise LinAlgError(f"{ops.ndim_of(a)}-dimensional array given. Array must be at least "
                          f"two-dimensional")
    return a


@numpy_function(_L.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """SVD; derivatives need distinct non-zero singular values, and for the singular vectors of a
    non-square matrix full_matrices=False."""
    a = _matrix(a, "svd")
    m, n = ops.shape_of(a)[-2:]
    if not compute_uv:
        return ops_linalg.svd(a, False)[1]
    u, s, vh = ops_linalg.svd(a, bool(full_matrices) and m != n)
    return SVDResult(u, s, vh)


@numpy_function(_L.svdvals)
def svdvals(x, /):
    return ops_linalg.svd(_matrix(x, "svdvals"), False)[1]


@numpy_function(_L.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=np._NoValue):
    a = _matrix(a, "pinv")
    dt = ops.dtype_of(a)
    m, n = ops.shape_of(a)[-2:]
    if rcond is None:
        rcond = 1e-15 if rtol is np._NoValue else (builtins.max(m, n) * np.finfo(dt).eps if rtol is None
                                                   else rtol)
    elif rtol is not np._NoValue:
        raise ValueError("`rtol` and `rcond` can't be both set.")
    if m == 0 or n == 0:
        return ops.full(tuple(ops.shape_of(a))[:-2] + (n, m), 0, dt)
    return _pinv_with_rule(rcond)(a)


def _pinv_value(a, rcond):
    dt = ops.dtype_of(a)
    u, s, vh = ops_linalg.svd(a, False)
    k = ops.ndim_of(s) - 1
    cutoff = ops.mul(np.asarray(rcond, dt)[()] if np.ndim(rcond) == 0 else np.asarray(rcond, dt)[..., None],
                     ops.expand_to_reduced(ops.reduce(P.reduce_max_p, s, (k,)), ops.shape_of(s), (k,)))
    large = ops.compare(P.gt_p, s, cutoff)
    one, zero = np.ones((), dt)[()], np.zeros((), dt)[()]
    s_inv = ops.select(large, ops.div(one, ops.select(large, s, one)), zero)
    lead = tuple(ops.shape_of(s))[:-1]
    scaled = ops.mul(ops.reshape(s_inv, lead + (ops.shape_of(s)[-1], 1)), ops_linalg.mT(u))
    return ops_linalg.bmm(ops_linalg.mT(vh), scaled)


def _pinv_with_rule(rcond):
    """pinv with JAX's derivative (Golub & Pereyra), from the pseudo-inverse P itself:
    dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P, the derivative along matrices
    of the same rank. Through the SVD's rule it would divide by s_i^2 - s_j^2, wrong (not just
    NaN) at equal singular values, where pinv is smooth."""
    @custom_jvp
    def pinv_(a):
        return _pinv_value(a, rcond)

    @pinv_.defjvp
    def pinv_jvp(primals, tangents):
        (a,), (t,) = primals, tangents
        p = pinv_(a)
        m, n = ops.shape_of(a)[-2:]
        dt = ops.dtype_of(a)
        mm, tt, pt = ops_linalg.bmm, ops_linalg.mT(t), ops_linalg.mT(p)
        left = ops.sub(ops_linalg.eye(m, dt), mm(a, p))       # I - A P  (m, m)
        right = ops.sub(ops_linalg.eye(n, dt), mm(p, a))      # I - P A  (n, n)
        dp = ops.add(ops.add(ops.neg(mm(p, mm(t, p))), mm(mm(p, pt), mm(tt, left))),
                     mm(right, mm(tt, mm(pt, p))))
        return p, dp

    return pinv_


@numpy_function(_L.matrix_power)
def matrix_power(a, n):
    a = ops.as_operand(a)
    _square(a, "matrix_power")
    n = int(n) if isinstance(n, (int, np.integer)) else None
    if n is None:
        raise TypeError("exponent must be an integer")
    if n == 0:
        return ops.broadcast_to(ops_linalg.eye(ops.shape_of(a)[-1], ops.dtype_of(a)), ops.shape_of(a))
    if n < 0:
        a, n = inv(a), -n
    result, base = None, a
    while True:   # binary exponentiation, as NumPy
        if n & 1:
            result = base if result is None else ops_linalg.bmm(result, base)
        n >>= 1
        if not n:
            return result
        base = ops_linalg.bmm(base, base)


@numpy_function(_L.multi_dot)
def multi_dot(arrays, *, out=None):
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    res = arrays[0]
    for x in arrays[1:]:
        res = products.dot(res, x)
    return res


@numpy_function(_L.matrix_transpose)
def matrix_transpose(x, /):
    x = ops.as_operand(x)
    if ops.ndim_of(x) < 2:
        raise ValueError("Input array must be at least 2-dimensional")
    return ops_linalg.mT(x)


# ---------------------------------------------------------------- norms

def _abs(x):
    return ops.unary(P.abs_p, x)


def _root(total, x, axes, root):
    """root(total); over no elements at all the norm is a constant (0, or inf for ord < 0) whose
    derivative is 0, not root'(0) * 0 = NaN."""
    if any(ops.shape_of(x)[a] == 0 for a in axes):
        return ops.stop_gradient(root(total))
    return root(total)


def _vector_norm(x, ord, axes, keepdims):
    if ord is None or ord == 2:
        return _root(_sum(ops.mul(x, x), axis=axes, keepdims=keepdims), x, axes, ops.sqrt)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    if ord == np.inf:
        return _max(_abs(x), axis=axes, keepdims=keepdims, initial=0)
    if ord == -np.inf:
        return _min(_abs(x), axis=axes, keepdims=keepdims)
    if ord == 0:
        return _sum(ops.convert(ops.compare(P.ne_p, x, 0), ops.dtype_of(x)), axis=axes, keepdims=keepdims)
    if ord == 1:
        return _sum(_abs(x), axis=axes, keepdims=keepdims)
    dt = ops.dtype_of(x)
    p = float(ord)
    if p == int(p) and builtins.abs(p) <= 64:
        powered = ops.integer_pow(_abs(x), int(p))
    else:
        powered = ops.binary(P.pow_p, _abs(x), np.asarray(p, dt)[()])
    total = _sum(powered, axis=axes, keepdims=keepdims)
    return _root(total, x, axes, lambda t: ops.binary(P.pow_p, t, np.asarray(1.0 / p, dt)[()]))


def _matrix_norm(x, ord, row, col, keepdims):
    nd = ops.ndim_of(x)
    if ord in (None, "fro", "f"):
        axes = tuple(sorted((row, col)))
        ret = _root(ops.reduce_sum(ops.mul(x, x), axes), x, axes, ops.sqrt)
    elif ord in (2, -2, "nuc"):
        others = [i for i in range(nd) if i not in (row, col)]
        xt = ops.transpose(x, others + [row, col])
        if min(ops.shape_of(xt)[-2:]) == 0:
            # no singular values: 2 and nuc are 0, as NumPy (initial=0); -2 is NumPy's error
            s = ops_linalg.svd(xt, False)[1]
            ret = (ops.full(tuple(ops.shape_of(s))[:-1], 0, ops.dtype_of(s)) if ord != -2
                   else ops.reduce(P.reduce_min_p, s, (ops.ndim_of(s) - 1,)))
        elif ord == 2:
            ret = _spectral()[0](xt)
        elif ord == -2:
            ret = _spectral()[1](xt)
        else:
            ret = _spectral()[2](xt)
    elif ord in (1, -1):
        sums = _sum(_abs(x), axis=row)
        c = col - 1 if col > row else col
        ret = _max(sums, axis=c, initial=0) if ord == 1 else _min(sums, axis=c)
    elif ord in (np.inf, -np.inf):
        sums = _sum(_abs(x), axis=col)
        r = row - 1 if row > col else row
        ret = _max(sums, axis=r, initial=0) if ord == np.inf else _min(sums, axis=r)
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        shape = list(ops.shape_of(x))
        shape[row] = shape[col] = 1
        ret = ops.reshape(ret, tuple(shape))
    return ret


# ---------------------------------------------------------------- spectral norms
# Differentiated by their own rules: through the SVD's rule, second derivatives take 1/(s_i - s_j)
# for every pair, NaN (or garbage, at near ties) where other singular values tie, though the
# largest and smallest singular values are smooth while simple and their sum while all are > 0.

def _sv(a):
    u, s, vh = ops_linalg.svd(a, False)
    return u, s, ops_linalg.mT(vh)


def _extreme_jvp(i):
    def jvp(primals, tangents):
        """d s_i = u_i^T H v_i (u_i, v_i the singular vectors of the simple singular value s_i):
        differentiated again, only u_i and v_i move, with 1/(s_i^2 - s_j^2), finite."""
        (a,), (h,) = primals, tangents
        u, s, v = _sv(a)
        k = ops.shape_of(s)[-1]
        j = i % k
        col = lambda m: ops.slice_along(m, ops.ndim_of(m) - 1, j, j + 1)     # (..., r, 1)
        si = ops.reshape(ops.slice_along(s, ops.ndim_of(s) - 1, j, j + 1), tuple(ops.shape_of(s))[:-1])
        t = ops.mul(ops.mul(col(u), h), ops_linalg.mT(col(v)))
        nd = ops.ndim_of(t)
        return si, ops.reduce_sum(t, (nd - 2, nd - 1))
    return jvp


def _polar_value(a):
    u, _, v = _sv(a)
    return ops_linalg.bmm(u, ops_linalg.mT(v))


def _polar_jvp(primals, tangents):
    """The polar factor P = U_k V_k^T (the derivative of the nuclear norm) of a full-rank matrix:
    dP = U Omega V^T + (I - U U^T) H V S^-1 V^T + U S^-1 U^T H (I - V V^T), with
    Omega = (X - X^T) / (s_i + s_j), X = U^T H V: finite at tied singular values."""
    (a,), (h,) = primals, tangents
    u, s, v = _sv(a)
    m, n = ops.shape_of(a)[-2:]
    lead = tuple(ops.shape_of(s))[:-1]
    k = ops.shape_of(s)[-1]
    mm, mT = ops_linalg.bmm, ops_linalg.mT
    x = mm(mT(u), mm(h, v))
    omega = ops.div(ops.sub(x, mT(x)), ops.add(ops.reshape(s, lead + (k, 1)), ops.reshape(s, lead + (1, k))))
    dp = mm(u, mm(omega, mT(v)))
    s_inv = ops.reshape(ops.div(np.ones((), ops.dtype_of(s))[()], s), lead + (1, k))
    if m > k:
        proj = ops.sub(ops_linalg.eye(m, ops.dtype_of(a)), mm(u, mT(u)))
        dp = ops.add(dp, mm(proj, mm(h, mm(ops.mul(v, s_inv), mT(v)))))
    if n > k:
        proj = ops.sub(ops_linalg.eye(n, ops.dtype_of(a)), mm(v, mT(v)))
        dp = ops.add(dp, mm(mm(ops.mul(u, s_inv), mT(u)), mm(h, proj)))
    return _spectral()[3](a), dp


def _nuclear_jvp(primals, tangents):
    """d (sum of s) = <P, H>, P the polar factor (its own rule above)."""
    (a,), (h,) = primals, tangents
    p = _spectral()[3](a)
    t = ops.mul(p, h)
    nd = ops.ndim_of(t)
    s = _sv(a)[1]
    return ops.reduce_sum(s, (ops.ndim_of(s) - 1,)), ops.reduce_sum(t, (nd - 2, nd - 1))


@functools.cache
def _spectral():
    """(largest singular value, smallest, their sum, polar factor) with their rules."""
    def extreme(i):
        def value(a):
            s = _sv(a)[1]
            k = ops.shape_of(s)[-1]
            return ops.reshape(ops.slice_along(s, ops.ndim_of(s) - 1, i % k, i % k + 1),
                               tuple(ops.shape_of(s))[:-1])
        f = custom_jvp(value)
        f.defjvp(_extreme_jvp(i))
        return f

    nuclear = custom_jvp(lambda a: ops.reduce_sum(_sv(a)[1], (ops.ndim_of(a) - 2,)))
    nuclear.defjvp(_nuclear_jvp)
    polar = custom_jvp(_polar_value)
    polar.defjvp(_polar_jvp)
    return extreme(0), extreme(-1), nuclear, polar


@numpy_function(_L.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    """Vector norms (any real ord, inf, -inf, 0) and matrix norms (fro, nuc, 1, -1, 2, -2, inf, -inf)."""
    x = _float(x)
    nd = ops.ndim_of(x)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            r = _root(ops.reduce_sum(ops.mul(x, x), tuple(range(nd))), x, tuple(range(nd)), ops.sqrt)
            return ops.reshape(r, (1,) * nd) if keepdims else r
        axis = tuple(range(nd))
    elif not isinstance(axis, tuple):
        try:
            axis = (int(axis),)
        except Exception as e:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
    if len(axis) == 1:
        axes = ops.normalize_axes(axis, nd)
        return _vector_norm(x, ord, axes, keepdims)
    if len(axis) == 2:
        row = ops.normalize_axes(axis[0], nd)[0]
        col = ops.normalize_axes(axis[1], nd)[0]
        if row == col:
            raise ValueError("Duplicate axes given.")
        return _matrix_norm(x, ord, row, col, keepdims)
    raise ValueError("Improper number of dimensions to norm.")


@numpy_function(_L.vector_norm)
def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    x = _float(x)
    nd = ops.ndim_of(x)
    if axis is None:
        flat = ops.reshape(x, (int(np.prod(ops.shape_of(x), dtype=np.int64)),))
        r = _vector_norm(flat, ord, (0,), False)
        return ops.reshape(r, (1,) * nd) if keepdims else r
    return _vector_norm(x, ord, ops.normalize_axes(axis, nd), keepdims)


@numpy_function(_L.matrix_norm)
def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    x = _float(x)
    nd = ops.ndim_of(x)
    return _matrix_norm(x, ord, nd - 2, nd - 1, keepdims)


@numpy_function(_L.trace)
def trace(x, /, *, offset=0, dtype=None):
    return contractions.trace(x, offset=offset, axis1=-2, axis2=-1, dtype=dtype)


@numpy_function(_L.diagonal)
def diagonal(x, /, *, offset=0):
    return contractions.diagonal(x, offset=offset, axis1=-2, axis2=-1)


@numpy_function(_L.outer)
def outer(x1, x2, /):
    return products.outer(x1, x2)


@numpy_function(_L.matmul)
def matmul(x1, x2, /):
    return products.matmul(x1, x2)


@numpy_function(_L.tensordot)
def tensordot(x1, x2, /, *, axes=2):
    return contractions.tensordot(x1, x2, axes)


@numpy_function(_L.cross)
def cross(x1, x2, /, *, axis=-1):
    return products.cross(x1, x2, axis=axis)
