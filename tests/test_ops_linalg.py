"""tracegrad.numpy.linalg against np.linalg: values, derivatives (first and second order, both
modes), batching, dtypes and errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from _opcheck import agree, grads




rng = np.random.default_rng(2)


def well_conditioned(*shape, r=rng):
    n = shape[-1]
    return r.standard_normal(shape) + 3.0 * np.eye(n)


def spd(*shape, r=rng):
    a = r.standard_normal(shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def distinct_symmetric(n, r=rng):
    q, _ = np.linalg.qr(r.standard_normal((n, n)))
    w = np.arange(1.0, n + 1.0) * 1.5 - 2.0          # eigenvalues well apart
    return (q * w) @ q.T


def distinct_svd(m, n, r=rng):
    u, _ = np.linalg.qr(r.standard_normal((m, m)))
    v, _ = np.linalg.qr(r.standard_normal((n, n)))
    k = min(m, n)
    s = np.zeros((m, n))
    s[range(k), range(k)] = np.arange(k, 0, -1) * 1.3 + 0.5
    return u @ s @ v.T


M4 = well_conditioned(4, 4)
MB = well_conditioned(2, 3, 3)
S4 = spd(4, 4)
SB = spd(2, 3, 3)
H4 = distinct_symmetric(4)
RHS = rng.standard_normal((4, 2))

# (id, f(ns_linalg, *args), args, differentiable)
CASES = [
    ("inv", lambda L, a: L.inv(a), (M4,), True),
    ("inv_batch", lambda L, a: L.inv(a), (MB,), True),
    ("solve_matrix", lambda L, a, b: L.solve(a, b), (M4, RHS), True),
    ("solve_vector", lambda L, a, b: L.solve(a, b), (M4, RHS[:, 0]), True),
    ("solve_batch_broadcast", lambda L, a, b: L.solve(a, b), (MB, rng.standard_normal((3, 1))), True),
    ("det", lambda L, a: L.det(a), (M4,), True),
    ("det_batch", lambda L, a: L.det(a), (MB,), True),
    ("det_pivoting", lambda L, a: L.det(a), (np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.5, 2.0]]),), True),
    ("slogdet", lambda L, a: tuple(L.slogdet(a)), (M4 - 6 * np.eye(4),), True),
    ("slogdet_batch", lambda L, a: L.slogdet(a).logabsdet, (MB,), True),
    ("cholesky", lambda L, a: L.cholesky(a), (S4,), True),
    ("cholesky_batch_upper", lambda L, a: L.cholesky(a, upper=True), (SB,), True),
    ("cholesky_lower_only", lambda L, a: L.cholesky(np.tril(a) + 5.0 * np.triu(a, 1)), (S4,), True),
    ("eigh_values", lambda L, a: L.eigh(a).eigenvalues, (H4,), True),
    ("eigh_vectors_abs", lambda L, a: np.abs(L.eigh(a).eigenvectors), (H4,), True),
    ("eigh_upper", lambda L, a: L.eigh(a, UPLO="U")[0], (H4 + np.tril(M4, -1),), True),
    ("eigh_reconstruct", lambda L, a: (lambda w, v: (v * w) @ v.T)(*L.eigh(a)), (H4,), True),
    ("eigvalsh", lambda L, a: L.eigvalsh(a), (H4,), True),
    ("svd_values", lambda L, a: L.svd(a, compute_uv=False), (distinct_svd(4, 3),), True),
    ("svd_reduced_tall", lambda L, a: tuple(np.abs(x) for x in L.svd(a, full_matrices=False)), (distinct_svd(5, 3),), True),
    ("svd_reduced_wide", lambda L, a: tuple(np.abs(x) for x in L.svd(a, full_matrices=False)), (distinct_svd(2, 4),), True),
    ("svd_square_full", lambda L, a: tuple(np.abs(x) for x in L.svd(a)), (distinct_svd(3, 3),), True),
    ("svd_full_tall_s", lambda L, a: L.svd(a)[1], (distinct_svd(4, 2),), True),
    ("svd_full_tall", lambda L, a: tuple(L.svd(a)[0].shape), (distinct_svd(4, 2),), False),
    ("svdvals", lambda L, a: L.svdvals(a), (distinct_svd(3, 5),), True),
    ("pinv_tall", lambda L, a: L.pinv(a), (distinct_svd(5, 3),), True),
    ("pinv_wide_batch", lambda L, a: L.pinv(a), (np.stack([distinct_svd(2, 3), distinct_svd(2, 3) * 2]),), True),
    ("pinv_rank_deficient", lambda L, a: L.pinv(a), (np.outer([1.0, 2.0, 3.0], [1.0, -1.0]),), False),
    ("matrix_power_3", lambda L, a: L.matrix_power(a, 3), (M4 / 3,), True),
    ("matrix_power_0", lambda L, a: L.matrix_power(a, 0), (M4,), False),
    ("matrix_power_neg", lambda L, a: L.matrix_power(a, -2), (M4,), True),
    ("matrix_power_int", lambda L, a: L.matrix_power(a, 5), (np.array([[1, 1], [1, 0]]),), False),
    ("norm_default", lambda L, a: L.norm(a), (M4,), True),
    ("norm_vec_1", lambda L, a: L.norm(a[0], 1), (M4,), True),
    ("norm_vec_2", lambda L, a: L.norm(a[0], 2), (M4,), True),
    ("norm_vec_inf", lambda L, a: L.norm(a[0], np.inf), (M4,), True),
    ("norm_vec_-inf", lambda L, a: L.norm(a[0], -np.inf), (M4,), True),
    ("norm_vec_3", lambda L, a: L.norm(a, 3, axis=1), (M4,), True),
    ("norm_vec_-1", lambda L, a: L.norm(a, -1, axis=0, keepdims=True), (M4,), True),
    ("norm_vec_0", lambda L, a: L.norm(a, 0, axis=0), (np.tril(M4),), False),
    ("norm_vec_half", lambda L, a: L.norm(a, 0.5, axis=-1), (M4,), True),
    ("norm_fro", lambda L, a: L.norm(a, "fro"), (M4,), True),
    ("norm_nuc", lambda L, a: L.norm(a, "nuc"), (distinct_svd(4, 3),), True),
    ("norm_mat_2", lambda L, a: L.norm(a, 2), (distinct_svd(3, 4),), True),
    ("norm_mat_-2", lambda L, a: L.norm(a, -2), (distinct_svd(3, 4),), True),
    ("norm_mat_1", lambda L, a: L.norm(a, 1), (M4,), True),
    ("norm_mat_inf", lambda L, a: L.norm(a, np.inf, keepdims=True), (M4,), True),
    ("norm_mat_-1", lambda L, a: L.norm(a, -1, axis=(2, 0)), (MB,), True),
    ("norm_mat_axes", lambda L, a: L.norm(a, "fro", axis=(0, 2)), (MB,), True),
    ("norm_int", lambda L, a: L.norm(a), (np.arange(6).reshape(2, 3),), False),
    ("norm_f32", lambda L, a: L.norm(a, axis=1), (M4.astype(np.float32),), False),
    ("inv_f32", lambda L, a: L.inv(a), (M4.astype(np.float32),), False),
    ("multi_dot", lambda L, a: L.multi_dot([a, a.T, a]), (M4,), True),
    ("matrix_transpose", lambda L, a: L.matrix_transpose(a), (MB,), True),
    ("linalg_trace", lambda L, a: L.trace(a, offset=1), (MB,), True),
    ("vector_norm", lambda L, a: L.vector_norm(a, ord=3, axis=(0, 1)), (MB,), True),
    ("matrix_norm", lambda L, a: L.matrix_norm(a, ord=np.inf), (MB,), True),
]


@pytest.mark.parametrize("ns", [np.linalg, tnp.linalg], ids=["np", "tnp"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_numpy(case, ns):
    _, f, args, _ = case
    agree(lambda *a: f(ns, *a), *args, reference=lambda *a: f(np.linalg, *a), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_derivatives(case):
    _, f, args, _ = case
    grads(lambda *a: f(np.linalg, *a), *args, order=2, rtol=1e-4)


def test_float32_stays_float32_and_ints_promote():
    a32 = M4.astype(np.float32)
    for f in (np.linalg.inv, np.linalg.det, lambda a: np.linalg.solve(a, a[0]), np.linalg.cholesky,
              lambda a: np.linalg.eigh(a)[0], lambda a: np.linalg.svd(a)[1]):
        x = a32 if f is not np.linalg.cholesky else S4.astype(np.float32)
        assert tg.jit(f)(x).dtype == f(x).dtype == np.float32
    ai = np.array([[2, 1], [1, 3]])
    agree(lambda a: tnp.linalg.inv(a), ai, reference=np.linalg.inv, rtol=1e-12)
    agree(lambda a: tnp.linalg.det(a), ai, reference=np.linalg.det, rtol=1e-12)


def test_result_namedtuples_come_back_from_transforms():
    res = tg.jit(np.linalg.eigh)(H4)
    assert type(res).__name__ == "EighResult"
    np.testing.assert_allclose(res.eigenvalues, np.linalg.eigh(H4).eigenvalues, rtol=1e-12)
    sv = tg.jit(lambda a: np.linalg.svd(a, full_matrices=False))(M4)
    assert type(sv).__name__ == "SVDResult" and sv.S.shape == (4,)
    sl = tg.jit(np.linalg.slogdet)(M4)
    assert type(sl).__name__ == "SlogdetResult"


def test_det_and_logdet_gradient_formulas():
    a = M4
    np.testing.assert_allclose(tg.grad(np.linalg.det)(a), np.linalg.det(a) * np.linalg.inv(a).T, rtol=1e-10)
    np.testing.assert_allclose(tg.grad(lambda a: np.linalg.slogdet(a)[1])(a), np.linalg.inv(a).T, rtol=1e-10)
    np.testing.assert_allclose(tg.grad(lambda a: np.trace(np.linalg.inv(a)))(a),
                               -np.linalg.matrix_power(np.linalg.inv(a), 2).T, rtol=1e-10)


def test_eigh_and_svd_vectors_gradients_sign_invariant_functions():
    # functions of the vectors that do not depend on LAPACK's sign choice
    grads(lambda a: np.linalg.eigh(a)[1][:, 1:3] ** 2, H4)
    a = distinct_svd(4, 3)
    grads(lambda a: (lambda u, s, vh: u[:, :2] @ vh[:2])(*np.linalg.svd(a, full_matrices=False)), a)


def test_singular_matrix_raises_linalg_error():
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])
    for f in (np.linalg.inv, lambda a: np.linalg.solve(a, np.ones(2))):
        with pytest.raises(np.linalg.LinAlgError):
            f(sing)                                    # NumPy
        with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
            tg.jit(f)(sing)                            # interpreter
        with tg.eager():
            with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
                tg.jit(f)(sing)
            with pytest.raises(np.linalg.LinAlgError):
                tg.grad(lambda a: np.sum(f(a)))(np.zeros((2, 2)))
    # det of a singular matrix is 0, as NumPy says, not an error
    assert tg.jit(np.linalg.det)(sing) == 0.0
    sign, logdet = tg.jit(np.linalg.slogdet)(sing)
    assert sign == 0.0 and logdet == -np.inf
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        tg.jit(np.linalg.cholesky)(-S4)


@pytest.mark.parametrize("f, exc", [
    (lambda a: np.linalg.inv(a[0]), np.linalg.LinAlgError),                 # 1-D
    (lambda a: np.linalg.det(a[:, :3]), np.linalg.LinAlgError),             # not square
    (lambda a: np.linalg.solve(a, np.ones(3)), ValueError),
    (lambda a: np.linalg.norm(a, "nuc", axis=0), ValueError),
    (lambda a: np.linalg.norm(a, 3), ValueError),
    (lambda a: np.linalg.norm(a, axis=(0, 0)), ValueError),
    (lambda a: np.linalg.norm(a, axis=(0, 1, 1)), ValueError),
    (lambda a: np.linalg.eigh(a, UPLO="X"), ValueError),
    (lambda a: np.linalg.matrix_power(a, 1.5), TypeError),
])
def test_errors(f, exc):
    with pytest.raises(exc):
        f(M4)
    with pytest.raises(exc):
        tg.jit(f)(M4)


@pytest.mark.parametrize("shape", [(4, 2), (2, 5)])
def test_svd_full_matrices_of_non_square(shape):
    a = distinct_svd(*shape)
    k = min(shape)
    # singular values and the first k vectors: derivatives agree with finite differences
    grads(lambda a: np.linalg.svd(a)[1], a)
    grads(lambda a: (lambda u, s, vh: u[:, :k] @ vh[:k])(*np.linalg.svd(a)), a)
    # the complement vectors follow the minimal-rotation convention: U and V stay orthogonal,
    # and reverse mode is the exact transpose of forward mode
    t = rng.standard_normal(shape)
    (u, s, vh), (du, ds, dvh) = tg.jvp(np.linalg.svd, (a,), (t,))
    np.testing.assert_allclose(du.T @ u + u.T @ du, 0, atol=1e-12)
    np.testing.assert_allclose(dvh @ vh.T + vh @ dvh.T, 0, atol=1e-12)
    cts = tuple(rng.standard_normal(x.shape) for x in (u, s, vh))
    _, pullback = tg.vjp(np.linalg.svd, a)
    (ct_a,) = pullback(type(np.linalg.svd(a))(*cts))   # an SVDResult, like the output
    lhs = np.sum(ct_a * t)
    rhs = sum(np.sum(c * d) for c, d in zip(cts, (du, ds, dvh)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.integers(1, 4), st.integers(0, 2), st.integers(1, 3))
def test_any_size_and_batch(n, batch, k):
    r = np.random.default_rng(n * 10 + batch)
    lead = (batch,) if batch else ()
    a = r.standard_normal(lead + (n, n)) + 3 * np.eye(n)
    b = r.standard_normal(lead + (n, k))
    agree(lambda a, b: np.linalg.solve(a, b), a, b, reference=np.linalg.solve, rtol=1e-10)
    agree(np.linalg.det, a, reference=np.linalg.det, rtol=1e-10)
    s = spd(*(lead + (n, n)), r=r)
    agree(np.linalg.cholesky, s, reference=np.linalg.cholesky, rtol=1e-10)
    agree(lambda s: np.linalg.eigh(s)[0], s, rtol=1e-10)
    c = r.standard_normal(lead + (n, k))
    agree(lambda c: np.linalg.svd(c, compute_uv=False), c, rtol=1e-10)
    agree(lambda c: np.linalg.norm(c, axis=(-2, -1)), c, rtol=1e-10)
    grads(lambda a, b: np.linalg.solve(a, b), a, b, order=1)
    grads(np.linalg.cholesky, s, order=1)
