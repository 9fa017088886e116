"""Every registered NumPy (and scipy.special) function: compiled results and gradients agree with
eager mode.

The probe arguments come from tools/coverage.py (the first probe each function traces on). Functions
are batched a dozen to a kernel so the whole registry costs a handful of Numba compiles.
"""
import warnings

import numpy as np
import pytest

import tracegrad as tg
from _coverage_tool import load as _tool


def _cases():
    tool = _tool()
    from tracegrad.numpy import _dispatch
    cases = []
    for np_fn, impl in list(_dispatch.FUNCTIONS.items()) + list(_dispatch.UFUNCS.items()):
        for args, kwargs in tool.PROBES:
            try:
                if tool._primitives_of(impl, args, kwargs) is not None:
                    # (scipy.special's ufuncs have no __module__)
                    mod = getattr(np_fn, "__module__", None) or "scipy.special"
                    cases.append((mod + "." + np_fn.__name__, impl, args, kwargs))
                    break
            except Exception:
                continue
    cases.sort(key=lambda c: c[0])
    return cases


CASES = _cases()
CHUNK = 12
CHUNKS = [CASES[i:i + CHUNK] for i in range(0, len(CASES), CHUNK)]


def _batch(chunk):
    """One function of all the chunk's array arguments, returning every output leaf."""
    slots = []
    for _, _, args, _ in chunk:
        slots.append([i for i, a in enumerate(args) if isinstance(a, (np.ndarray, np.floating))])
    inputs = [np.asarray(a) for (_, _, args, _), s in zip(chunk, slots) for i, a in enumerate(args) if i in s]

    def f(*xs):
        it = iter(xs)
        outs = []
        for (_, impl, args, kwargs), s in zip(chunk, slots):
            real = [next(it) if i in s else a for i, a in enumerate(args)]
            outs.append(tg.tree_leaves(impl(*real, **kwargs)))
        return outs
    return f, inputs


def _loss(f):
    """A scalar of every floating-point output, weighted so that no gradient cancels by symmetry."""
    def loss(*xs):
        total = 0.0
        for leaves in f(*xs):
            for k, o in enumerate(leaves):
                if np.asarray(o).dtype.kind == "f" if not hasattr(o, "dtype") else o.dtype.kind == "f":
                    w = np.linspace(0.5, 1.5, max(int(np.size(o)), 1)).reshape(np.shape(o)) if np.ndim(o) else 0.7
                    total = total + np.sum(np.tanh(o * 0.1) * w) * (k + 1)
        return total
    return loss


def test_probes_cover_the_registry():
    from tracegrad.numpy import _dispatch
    assert len(CASES) == len(_dispatch.FUNCTIONS) + len(_dispatch.UFUNCS)


@pytest.mark.parametrize("chunk", CHUNKS, ids=[c[0][0].split(".")[-1] + "..." for c in CHUNKS])
def test_compiled_values_and_gradients_match_eager(chunk):
    f, inputs = _batch(chunk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = tg.jit(f)(*inputs)
        with tg.eager():
            eager = tg.jit(f)(*inputs)
    for (name, *_), c_leaves, e_leaves in zip(chunk, compiled, eager):
        assert len(c_leaves) == len(e_leaves), name
        for c, e in zip(c_leaves, e_leaves):
            assert c.shape == e.shape and c.dtype == e.dtype, (name, c.shape, e.shape, c.dtype, e.dtype)
            np.testing.assert_allclose(c, e, rtol=1e-9, atol=1e-12, err_msg=name)
    # every floating-point input, but the arguments a function declares without a derivative
    # (scipy.special.gammainc's shape parameter a: asking raises NotImplementedError)
    nondiff, k = set(), 0
    for _, impl, args, _ in chunk:
        for i, a in enumerate(args):
            if isinstance(a, (np.ndarray, np.floating)):
                if i in getattr(impl, "nondiff_args", ()):
                    nondiff.add(k)
                k += 1
    float_in = [i for i, x in enumerate(inputs) if x.dtype.kind == "f" and i not in nondiff]
    if not float_in:
        return
    loss = _loss(f)
    argnums = tuple(float_in)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g_c = tg.grad(loss, argnums=argnums)(*inputs)
        with tg.eager():
            g_e = tg.grad(loss, argnums=argnums)(*inputs)
    names = ", ".join(c[0] for c in chunk)
    for a, b in zip(g_c, g_e):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=names)
