"""Shared checks for the per-op test files (test_ops_indexing/linalg/more.py).

`agree(f, *args)`: f on plain arrays (NumPy itself, through tracegrad.numpy's fallback) is the
reference; f traced and run by the interpreter backend (tg.jit) and in eager mode must give the
same pytree structure, shapes, dtypes and values.
"""
import numpy as np

import tracegrad as tg


def _leaves(out):
    leaves, tree = tg.tree_flatten(out)
    return [np.asarray(l) for l in leaves], tree


def assert_same(got, want, rtol=1e-12, atol=1e-12, what=""):
    g, gt = _leaves(got)
    w, wt = _leaves(want)
    assert gt == wt, f"{what}: structure {gt} != {wt}"
    for a, b in zip(g, w):
        assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
        if b.dtype.kind in "fc":
            if b.dtype.itemsize < 8 and rtol > 0:   # float32: a different summation order moves the last bits
                rtol, atol = max(rtol, 1e-5), max(atol, 1e-6)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)
        else:
            np.testing.assert_array_equal(a, b, err_msg=what)


def agree(f, *args, reference=None, rtol=1e-12, atol=1e-12):
    """f(*args) untraced == reference(*args) exactly (if given); traced (jit, eager) == untraced."""
    want = f(*args)
    if reference is not None:
        ref = reference(*args)
        assert_same(want, ref, rtol=0, atol=0, what="untraced vs NumPy")
    assert_same(tg.jit(f)(*args), want, rtol, atol, "jit (interpreter)")
    with tg.eager():
        assert_same(tg.jit(f)(*args), want, rtol, atol, "eager")
    return want


def grads(f, *args, order=2, modes=("fwd", "rev"), atol=None, rtol=None):
    tg.check_grads(f, args, order=order, modes=modes, atol=atol, rtol=rtol)
