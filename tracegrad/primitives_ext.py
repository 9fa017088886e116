"""Primitives of the extended NumPy surface: indexing, scans, sorting and linear-algebra kernels.

This docstring is the specification the Numba lowering (`compiler/lowering.py`) is written from;
the NumPy impl rules in `tracegrad/rules/{indexing,cumulative,linalg}.py` are the executable
reference. Everything else in the surface (take, einsum, split, pad, diff, inv, det, pinv, norm, ...)
is a composition of these and of the core primitives in `primitives.py`.

Common conventions
------------------
- "batch dims" are leading dims that the operation maps over independently; operands of one
  equation always have *identical* batch dims (no broadcasting inside these primitives).
- Index operands are int64 arrays. Float operands of one equation share one dtype (f32 or f64).
- "raise IndexError(msg)" / "raise LinAlgError(msg)": the compiled code must stop with that
  exception type (`numpy.linalg.LinAlgError` for the latter); the message should match the impl's.

gather(x, idx) [axes: tuple[int, ...]]  -> out
    `axes` is a strictly increasing tuple of k distinct axes of x; idx has shape B + (k,).
    out.shape = B + R, where R = x.shape with the `axes` removed (remaining axes in order).
        out[b..., r...] = x[with x-axis axes[j] = wrap(idx[b..., j]), the other axes = r...]
    wrap(i) = i + d if i < 0 else i, where d = x.shape[axes[j]]. Every index must satisfy
    -d <= i < d, otherwise raise IndexError("index {i} is out of bounds for axis {axes[j]} with
    size {d}"): the bounds check is part of the primitive because indices may be traced (computed
    at run time); indices that are constants at trace time are already checked and normalised
    to 0 <= i < d by tracegrad.numpy, so a lowering may skip the check for constant indices.
    Any dtype. Non-differentiable in idx.

scatter(operand, idx, updates) [axes: tuple[int, ...], mode: "add" | "set" | "mul"]  -> out
    The transpose of gather. operand has the output's shape and dtype; idx as for gather
    (same wrap/bounds-check/IndexError); updates has shape B + R (exactly gather's output shape)
    and operand's dtype. Start from a copy of operand, then visit update elements b in C order
    (row-major over B) and, for every r in R:
        add:  out[pos(b), r] += updates[b, r]     (duplicates accumulate, like np.add.at)
        mul:  out[pos(b), r] *= updates[b, r]     (duplicates multiply, like np.multiply.at)
        set:  out[pos(b), r]  = updates[b, r]     (duplicates: the LAST one in C order wins)
    The sequential C-order visit defines the result; a parallel lowering must preserve it.

linear_recurrence(a, b) [axis: int, reverse: bool]  -> out
    b has any shape with ndim >= 1; a has b's shape or is a scalar (shape ()) broadcast over it;
    same dtype (float or int). Along `axis`, independently for every other index:
        forward (reverse=False):  out[0] = b[0];      out[k] = a[k] * out[k-1] + b[k]  (k = 1..n-1)
        reverse (reverse=True):   out[n-1] = b[n-1];  out[k] = a[k] * out[k+1] + b[k]  (k = n-2..0)
    a at the first visited position is never read (so an inf/nan there does not leak).
    Sequential left-to-right (resp. right-to-left) evaluation, one multiply-add per step.
    cumsum(x) is linear_recurrence(1, x); cumprod(x) is linear_recurrence(x, [x[0], 0, 0, ...]).
    A lowering should special-case a literal scalar a == 1 (a running sum) for speed.

sort(x) [axis: int]  -> (values, perm)                              (multiple results)
    Stable ascending sort along `axis` (NaNs last, as NumPy). perm is int64 with x's shape:
    the positions along `axis`, so values = take_along_axis(x, perm, axis). Equal keys keep their
    input order (stable). Any real or int dtype; bool sorts False < True.

lu(a)  -> (lu, pivots, perm)                                         (multiple results)
    a: (..., n, n) float. Partial-pivoting LU (Doolittle, as LAPACK getrf / getf2) of each
    matrix: for k = 0..n-1: p = first index of max |lu[i, k]| over i >= k; pivots[k] = p; swap
    rows k and p of lu (all columns) and of perm (perm starts as 0..n-1); if lu[k, k] != 0,
    divide lu[k+1:, k] by lu[k, k]; then lu[k+1:, k+1:] -= outer(lu[k+1:, k], lu[k, k+1:]).
    A zero pivot is NOT an error (det of a singular matrix is 0). Output lu packs L (strictly
    below the diagonal, unit diagonal implied) and U (on and above it), so a[perm] = L @ U.
    pivots and perm are int64 of shape (..., n). A lowering may call LAPACK getrf if it returns the
    same factors (convert its 1-based pivots), or run the loop above.

triangular_solve(a, b) [lower: bool, transpose_a: bool, unit_diagonal: bool]  -> x
    a: (..., n, n), b: (..., n, m), same float dtype and batch dims. Solves op(A) x = b with
    op(A) = A, or A^T if transpose_a, where A is the lower (or upper) triangle of a, with the
    diagonal taken as ones if unit_diagonal. The other triangle of a is never read.
    If not unit_diagonal and some a[..., i, i] == 0 exactly: raise LinAlgError("Singular matrix")
    (this is how `solve`/`inv` of a singular matrix raise, as NumPy does). Plain forward/back
    substitution; x has b's shape.

cholesky(a)  -> l
    a: (..., n, n) float, symmetric; only the lower triangle is read (as np.linalg.cholesky).
    l is lower triangular with positive diagonal, l @ l.T = a; zeros above the diagonal.
    Not positive definite: raise LinAlgError("Matrix is not positive definite").
    np.linalg.cholesky per matrix is a valid lowering (loop over batch dims).

eigh(a)  -> (w, v)                                                   (multiple results)
    a: (..., n, n) float symmetric; only the lower triangle is read. w: (..., n) ascending
    eigenvalues; v: (..., n, n) orthonormal eigenvectors in columns, a @ v = v * w.
    Must equal np.linalg.eigh(a) (UPLO='L') per matrix, including LAPACK's eigenvector signs, so
    that eager and compiled results agree: lower with np.linalg.eigh in a loop over batch dims.

svd(a) [full_matrices: bool]  -> (u, s, vh)                          (multiple results)
    a: (..., m, n) float, k = min(m, n). np.linalg.svd(a, full_matrices=full_matrices) per matrix
    (same LAPACK sign conventions): u (..., m, m|k), s (..., k) descending, vh (..., n|k, n).
    Lower with np.linalg.svd in a loop over batch dims.

Derivatives (in the rule files) are written with traceable ops, so none of this needs a lowering
beyond the forward semantics above.
"""
from __future__ import annotations

from .primitives import primitive

gather_p = primitive("gather")                              # (x, idx) [axes]
scatter_p = primitive("scatter")                            # (operand, idx, updates) [axes, mode]
linear_recurrence_p = primitive("linear_recurrence")        # (a, b) [axis, reverse]
sort_p = primitive("sort", multiple_results=True)           # (x) [axis] -> (values, perm)
lu_p = primitive("lu", multiple_results=True)               # (a) -> (lu, pivots, perm)
triangular_solve_p = primitive("triangular_solve")          # (a, b) [lower, transpose_a, unit_diagonal]
cholesky_p = primitive("cholesky")                          # (a) -> l
eigh_p = primitive("eigh", multiple_results=True)           # (a) -> (w, v)
svd_p = primitive("svd", multiple_results=True)             # (a) [full_matrices] -> (u, s, vh)

EXT_PRIMITIVES = (gather_p, scatter_p, linear_recurrence_p, sort_p, lu_p, triangular_solve_p,
                  cholesky_p, eigh_p, svd_p)
