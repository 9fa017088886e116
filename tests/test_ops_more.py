"""Scans, sorting, splitting/tiling/rearranging, differences, cross, select, linspace, einsum and
the other contractions and matrix-structure functions: NumPy agreement and derivatives."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from _opcheck import agree, grads




rng = np.random.default_rng(1)
A = rng.standard_normal((3, 4))
B3 = rng.standard_normal((2, 3, 4))
V = rng.standard_normal(5)
SQ = rng.standard_normal((4, 4))

# (id, f(ns, *args) using namespace ns (np or tnp), args, differentiable)
CASES = [
    ("cumsum", lambda ns, x: ns.cumsum(x), (B3,), True),
    ("cumsum_axis", lambda ns, x: ns.cumsum(x, axis=1), (B3,), True),
    ("cumsum_neg_axis_f32", lambda ns, x: ns.cumsum(x, axis=-1), (B3.astype(np.float32),), False),
    ("cumsum_int", lambda ns, x: ns.cumsum(x, axis=0), (np.arange(12, dtype=np.int32).reshape(3, 4),), False),
    ("cumsum_bool", lambda ns, x: ns.cumsum(x), (A > 0,), False),
    ("cumsum_dtype", lambda ns, x: ns.cumsum(x, dtype=np.float32), (A,), False),
    ("cumprod", lambda ns, x: ns.cumprod(x, axis=1), (A,), True),
    ("cumprod_flat", lambda ns, x: ns.cumprod(x), (A,), True),
    ("cumprod_int", lambda ns, x: ns.cumprod(x, axis=1), (np.arange(1, 7).reshape(2, 3),), False),
    ("sort", lambda ns, x: ns.sort(x), (B3,), True),
    ("sort_axis0", lambda ns, x: ns.sort(x, axis=0), (A,), True),
    ("sort_none", lambda ns, x: ns.sort(x, axis=None), (A,), True),
    ("sort_int", lambda ns, x: ns.sort(x), (np.array([[3, 1, 2], [0, -5, 9]]),), False),
    ("argsort", lambda ns, x: ns.argsort(x, axis=1), (B3,), False),
    ("argsort_stable_ties", lambda ns, x: ns.argsort(x, kind="stable"), (np.array([2.0, 1.0, 2.0, 1.0, 0.0]),), False),
    ("split", lambda ns, x: ns.split(x, 2, axis=1), (A,), True),
    ("split_indices", lambda ns, x: ns.split(x, [1, -1, 9]), (V,), True),
    ("array_split", lambda ns, x: ns.array_split(x, 3, axis=-1), (B3,), True),
    ("hsplit", lambda ns, x: ns.hsplit(x, [1, 3]), (A,), True),
    ("hsplit_1d", lambda ns, x: ns.hsplit(x, 5), (V,), True),
    ("vsplit", lambda ns, x: ns.vsplit(x, 3), (A,), True),
    ("dsplit", lambda ns, x: ns.dsplit(x, [2]), (B3,), True),
    ("tile", lambda ns, x: ns.tile(x, (2, 1, 3)), (A,), True),
    ("tile_int", lambda ns, x: ns.tile(x, 2), (V,), True),
    ("repeat", lambda ns, x: ns.repeat(x, 2), (A,), True),
    ("repeat_axis", lambda ns, x: ns.repeat(x, [1, 0, 3], axis=0), (A,), True),
    ("repeat_axis1", lambda ns, x: ns.repeat(x, 3, axis=1), (A,), True),
    ("repeat_counts_axis2", lambda ns, x: ns.repeat(x, [2, 0, 1, 1], axis=2), (B3,), True),
    ("roll", lambda ns, x: ns.roll(x, 2), (A,), True),
    ("roll_axes", lambda ns, x: ns.roll(x, (1, -3), axis=(0, 2)), (B3,), True),
    ("roll_same_axis", lambda ns, x: ns.roll(x, (1, 1), axis=(1, 1)), (A,), True),
    ("rot90", lambda ns, x: ns.rot90(x), (A,), True),
    ("rot90_k", lambda ns, x: ns.rot90(x, k=-1, axes=(2, 0)), (B3,), True),
    ("rot90_2", lambda ns, x: ns.rot90(x, 2), (A,), True),
    ("rot90_3", lambda ns, x: ns.rot90(x, 3, axes=(1, 2)), (B3,), True),
    ("rollaxis", lambda ns, x: ns.rollaxis(x, 2), (B3,), True),
    ("rollaxis_start", lambda ns, x: ns.rollaxis(x, 0, 3), (B3,), True),
    ("rollaxis_neg", lambda ns, x: ns.rollaxis(x, -1, 1), (B3,), True),
    ("pad", lambda ns, x: ns.pad(x, 2), (A,), True),
    ("pad_pairs", lambda ns, x: ns.pad(x, ((1, 0), (2, 3)), constant_values=((1.5, 2.5), (-1, 7))), (A,), True),
    ("pad_mode", lambda ns, x: ns.pad(x, [(0, 1), (1, 1), (0, 0)], mode="constant"), (B3,), True),
    ("pad_int", lambda ns, x: ns.pad(x, (1, 2), constant_values=9), (np.arange(4),), False),
    ("diff", lambda ns, x: ns.diff(x), (A,), True),
    ("diff_n2_axis0", lambda ns, x: ns.diff(x, n=2, axis=0), (B3,), True),
    ("diff_prepend", lambda ns, x: ns.diff(x, prepend=0.5, append=A[:, :1]), (A,), True),
    ("diff_bool", lambda ns, x: ns.diff(x), (A > 0,), False),
    ("diff_int", lambda ns, x: ns.diff(x), (np.array([1, 5, 2], np.int32),), False),
    ("ediff1d", lambda ns, x: ns.ediff1d(x), (A,), True),
    ("ediff1d_ends", lambda ns, x: ns.ediff1d(x, to_end=[9.0, 8.0], to_begin=-1.0), (V,), True),
    ("append", lambda ns, x: ns.append(x, A), (V,), True),
    ("append_axis", lambda ns, x: ns.append(x, x[:1], axis=0), (A,), True),
    ("cross3", lambda ns, x: ns.cross(x, x[::-1] + 1.0), (rng.standard_normal((4, 3)),), True),
    ("cross2", lambda ns, x: ns.cross(x, np.array([0.5, -2.0])), (rng.standard_normal((3, 2)),), True),
    ("cross23", lambda ns, x: ns.cross(x, np.array([0.5, -2.0, 1.0])), (rng.standard_normal((3, 2)),), True),
    ("cross_axis", lambda ns, x: ns.cross(x, x * x, axisa=0, axisb=0, axisc=1), (rng.standard_normal((3, 2, 2)),), True),
    ("select", lambda ns, x: ns.select([x < -0.5, x > 0.5], [x * 2, np.sin(x)], default=x ** 3), (A,), True),
    ("select_default", lambda ns, x: ns.select([x > 0], [x]), (A,), True),
    ("select_f32", lambda ns, x: ns.select([x > 0], [x], 1.5), (A.astype(np.float32),), False),
    ("einsum_matmul", lambda ns, x: ns.einsum("ij,jk->ik", x, x.T), (A,), True),
    ("einsum_implicit", lambda ns, x: ns.einsum("ij,jk", x, x.T), (A,), True),
    ("einsum_implicit_sorted", lambda ns, x: ns.einsum("ba", x), (A,), True),
    ("einsum_trace", lambda ns, x: ns.einsum("ii", x), (SQ,), True),
    ("einsum_diag", lambda ns, x: ns.einsum("ii->i", x), (SQ,), True),
    ("einsum_sum", lambda ns, x: ns.einsum("ijk->", x), (B3,), True),
    ("einsum_batch", lambda ns, x: ns.einsum("bij,bkj->bik", x, x), (B3,), True),
    ("einsum_three", lambda ns, x: ns.einsum("ij,jk,kl->il", x, x.T, x), (A,), True),
    ("einsum_ellipsis", lambda ns, x: ns.einsum("...ij,...jk->...ik", x, np.ones((1, 4, 2))), (B3,), True),
    ("einsum_ellipsis_implicit", lambda ns, x: ns.einsum("...j,j", x, V[:4]), (B3,), True),
    ("einsum_outer", lambda ns, x: ns.einsum("i,j->ji", x, x[:3]), (V,), True),
    ("einsum_bcast_label", lambda ns, x: ns.einsum("ij,jk", x, np.ones((1, 2))), (A,), True),
    ("einsum_sublist", lambda ns, x: ns.einsum(x, [0, 1], x, [0, 2], [1, 2]), (A,), True),
    ("einsum_repeat_in_pair", lambda ns, x: ns.einsum("iij,kj->ik", x, x[0]), (rng.standard_normal((3, 3, 2)),), True),
    ("tensordot", lambda ns, x: ns.tensordot(x, x, axes=([1, 0], [1, 0])), (B3,), True),
    ("tensordot_int", lambda ns, x: ns.tensordot(x, x.T, 1), (A,), True),
    ("tensordot_0", lambda ns, x: ns.tensordot(x, V, 0), (A,), True),
    ("kron", lambda ns, x: ns.kron(x, x[:2, :2]), (A,), True),
    ("kron_mixed", lambda ns, x: ns.kron(x, B3[0]), (V,), True),
    ("trace", lambda ns, x: ns.trace(x), (A,), True),
    ("trace_offset", lambda ns, x: ns.trace(x, offset=-1, axis1=2, axis2=1), (B3,), True),
    ("trace_int", lambda ns, x: ns.trace(x), (np.arange(9, dtype=np.int32).reshape(3, 3),), False),
    ("diagonal", lambda ns, x: ns.diagonal(x), (A,), True),
    ("diagonal_offset", lambda ns, x: ns.diagonal(x, 1, 0, 2), (B3,), True),
    ("diagonal_far", lambda ns, x: ns.diagonal(x, 7), (A,), False),
    ("diag_1d", lambda ns, x: ns.diag(x), (V,), True),
    ("diag_1d_k", lambda ns, x: ns.diag(x, -2), (V,), True),
    ("diag_2d_k", lambda ns, x: ns.diag(x, 1), (A,), True),
    ("diagflat", lambda ns, x: ns.diagflat(x, 1), (A[:2, :2],), True),
    ("triu", lambda ns, x: ns.triu(x), (A,), True),
    ("triu_k", lambda ns, x: ns.triu(x, -1), (B3,), True),
    ("tril", lambda ns, x: ns.tril(x, 1), (A,), True),
    ("tril_1d", lambda ns, x: ns.tril(x), (V,), True),
    ("partition_sorted_kth", lambda ns, x: ns.sort(ns.partition(x, 2, axis=1), axis=1), (A,), True),
]


@pytest.mark.parametrize("ns", [np, tnp], ids=["np", "tnp"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_numpy(case, ns):
    _, f, args, _ = case
    agree(lambda *a: f(ns, *a), *args, reference=lambda *a: f(np, *a))


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_derivatives(case):
    _, f, args, _ = case
    grads(lambda *a: f(np, *a), *args)


def test_cumprod_gradient_with_zeros():
    x = np.array([[1.5, 0.0, 2.0, -1.0, 0.0, 3.0], [0.0, 0.0, 1.0, 2.0, -0.5, 1.0]])
    for axis in (0, 1):
        grads(lambda x: np.cumprod(x, axis=axis), x, order=2)
    # exact values: d/dx_k sum(cumprod(x)) for x = [2, 0, 3]
    g = tg.grad(lambda x: np.sum(np.cumprod(x)))(np.array([2.0, 0.0, 3.0]))
    np.testing.assert_allclose(g, [1.0, 2.0 + 2.0 * 3.0, 0.0])


def test_array_methods():
    f = lambda x: x.cumsum(axis=0) * x.cumprod(axis=0)
    agree(f, A)
    grads(f, A)
    g = lambda x: (x.cumsum(), x.argsort(axis=0), x.repeat(2, axis=1), x.take([0, -1], axis=1),
                   x.trace(), x.diagonal(1))
    agree(g, A, reference=g)
    grads(lambda x: g(x)[2:4], A)


def test_select_with_lists_of_traced_values():
    f = lambda x: np.select([x > 0, x < -1], [[x[0], x[2], x[1]], 2.0], default=-x)
    agree(f, A)
    grads(f, A)


def test_sort_gradient_goes_through_the_permutation():
    x = np.array([3.0, -1.0, 2.0, 0.5])
    w = np.array([1.0, 10.0, 100.0, 1000.0])
    g = tg.grad(lambda x: np.sum(np.sort(x) * w))(x)
    np.testing.assert_array_equal(g, [1000.0, 1.0, 100.0, 10.0])
    np.testing.assert_array_equal(tg.grad(lambda x: np.sum(np.argsort(x) * x))(x), np.argsort(x))


def test_sort_nan_last_and_argsort_no_gradient():
    x = np.array([2.0, np.nan, -1.0, 0.0])
    agree(lambda x: np.sort(x), x)
    agree(lambda x: np.argsort(x), x, reference=lambda x: np.argsort(x, kind="stable"))
    assert tg.grad(lambda x: np.sum(np.argsort(x).astype(np.float64)))(np.array([1.0, 0.0])).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kth", [0, 2, -1, [1, 3]])
def test_partition(kth):
    x = rng.standard_normal((3, 5))
    got = tg.jit(lambda x: np.partition(x, kth, axis=1))(x)
    want = np.partition(x, kth, axis=1)
    for k in np.atleast_1d(kth):
        np.testing.assert_array_equal(got[:, k], want[:, k])
        assert (got[:, :k % 5] <= got[:, k:k % 5 + 1]).all() and (got[:, k % 5:] >= got[:, k:k % 5 + 1]).all()
    np.testing.assert_array_equal(np.sort(got, axis=1), np.sort(x, axis=1))
    idx = tg.jit(lambda x: np.argpartition(x, kth, axis=1))(x)
    np.testing.assert_array_equal(np.take_along_axis(x, idx, 1), got)
    grads(lambda x: np.partition(x, kth, axis=1)[:, np.atleast_1d(kth)], x)
    g = tg.grad(lambda x: np.partition(x, 2)[2])(np.array([5.0, 1.0, 3.0, 4.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0, 1.0])   # the median is x[3] = 4


def test_linspace_traced_endpoints():
    for kwargs in (dict(num=5), dict(num=4, endpoint=False), dict(num=1), dict(num=0),
                   dict(num=3, retstep=True), dict(num=6, dtype=np.float32)):
        agree(lambda a, b: tnp.linspace(a, b, **kwargs), 0.5, 3.0,
              reference=lambda a, b: np.linspace(a, b, **kwargs))
    agree(lambda a, b: np.linspace(a, b, 4, axis=1), np.array([0.0, 1.0]), np.array([2.0, -1.0]),
          reference=lambda a, b: np.linspace(a, b, 4, axis=1))
    agree(lambda a: np.linspace(a, 10, 3, dtype=int), np.float64(1.7))
    grads(lambda a, b: tnp.linspace(a, b, 7), 0.5, 3.0)
    grads(lambda a, b: np.linspace(a, b, 3, endpoint=False, axis=-1), np.array([0.0, 1.0]), np.array([2.0, -1.0]))
    # float32 ends stay float32 (NEP 50)
    assert tg.jit(lambda a: tnp.linspace(a, 1, 3))(np.float32(0)).dtype == np.float32


# ---------------------------------------------------------------- hypothesis: varying shapes

shapes = st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(shapes, st.integers(-3, 2), st.booleans())
def test_scans_sort_any_shape(shape, axis, rev):
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    axis = axis % len(shape)
    agree(lambda x: np.cumsum(x, axis=axis), x, reference=lambda x: np.cumsum(x, axis=axis))
    agree(lambda x: np.cumprod(x, axis=axis), x, reference=lambda x: np.cumprod(x, axis=axis))
    agree(lambda x: np.sort(x, axis=axis), x, reference=lambda x: np.sort(x, axis=axis))
    if x.size and rev:
        grads(lambda x: np.cumprod(x, axis=axis) + np.sort(x, axis=axis), x, order=1)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(shapes, st.integers(1, 3), st.integers(-5, 5), st.data())
def test_split_tile_roll_any_shape(shape, sections, shift, data):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    reps = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4).map(tuple))
    agree(lambda x: np.array_split(x, sections, axis=axis), x,
          reference=lambda x: np.array_split(x, sections, axis=axis))
    agree(lambda x: np.tile(x, reps), x, reference=lambda x: np.tile(x, reps))
    agree(lambda x: np.roll(x, shift, axis=axis), x, reference=lambda x: np.roll(x, shift, axis=axis))
    agree(lambda x: np.repeat(x, sections, axis=axis), x, reference=lambda x: np.repeat(x, sections, axis=axis))
    width = data.draw(st.integers(0, 2))
    agree(lambda x: np.pad(x, width, constant_values=-1.0), x)
    if shape[axis % len(shape)] >= 1:
        agree(lambda x: np.diff(x, axis=axis), x, reference=lambda x: np.diff(x, axis=axis))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2))
def test_einsum_and_tensordot_any_sizes(i, j, k, b):
    r = np.random.default_rng(i * 100 + j * 10 + k)
    x = r.standard_normal((b, i, j) if b else (i, j))
    y = r.standard_normal((j, k))
    spec = "...ij,jk->...ki"
    agree(lambda x, y: np.einsum(spec, x, y), x, y, reference=lambda x, y: np.einsum(spec, x, y))
    agree(lambda x, y: np.tensordot(x, y, 1), x, y, reference=lambda x, y: np.tensordot(x, y, 1))
    agree(lambda x: np.trace(x, axis1=-1, axis2=-2), x, reference=lambda x: np.trace(x, axis1=-1, axis2=-2))
    for off in (-1, 0, 2):
        agree(lambda x: np.diagonal(x, off, -2, -1), x, reference=lambda x: np.diagonal(x, off, -2, -1))
        agree(lambda x: np.tril(x, off), x, reference=lambda x: np.tril(x, off))


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("f, exc", [
    (lambda x: np.cumsum(x, axis=2), np.exceptions.AxisError),
    (lambda x: np.sort(x, axis=-3), np.exceptions.AxisError),
    (lambda x: np.split(x, 3, axis=1), ValueError),          # 4 columns into 3: unequal
    (lambda x: np.vsplit(x[0], 2), ValueError),
    (lambda x: np.dsplit(x, 2), ValueError),
    (lambda x: np.diagonal(x, 0, 1, 1), ValueError),
    (lambda x: np.einsum("ij,jk", x, x), ValueError),
    (lambda x: np.einsum("ij->k", x), ValueError),
    (lambda x: np.einsum("ij", x, x), ValueError),
    (lambda x: np.tensordot(x, x, axes=([0], [1])), ValueError),
    (lambda x: np.cross(x, x), ValueError),
    (lambda x: np.rot90(x, axes=(0, 0)), ValueError),
    (lambda x: np.select([x > 0], [x, x]), ValueError),
    (lambda x: np.diag(x[None]), ValueError),
    (lambda x: np.partition(x, 9), ValueError),
    (lambda x: np.roll(x, 1, axis=3), np.exceptions.AxisError),
])
def test_errors(f, exc):
    with pytest.raises(exc):
        f(A)                 # NumPy raises it ...
    with pytest.raises(exc):
        tg.jit(f)(A)         # ... and so does the traced version


def test_unsupported_forms_name_the_problem():
    with pytest.raises(NotImplementedError, match="reflect"):
        tg.jit(lambda x: np.pad(x, 1, mode="reflect"))(A)
    with pytest.raises(NotImplementedError, match="repeat"):
        tg.jit(lambda x, r: np.repeat(x, r))(A, np.array(2))
