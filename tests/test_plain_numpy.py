"""Plain NumPy spellings that convert a traced argument with np.asarray trace, with values and
gradients (tracegrad/numpy/plain.py): np.full(shape, traced), a NumPy array indexed with integer
arrays computed from traced values, ..."""
import itertools
import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.numpy import _dispatch, plain
from _coverage_tool import load as _tool

X = np.array([0.3, 1.7, 2.4])
W = np.array([1.0, -2.0, 3.0, 0.5, 4.0])
IMG = np.arange(20.0).reshape(4, 5) ** 1.5
NANS = np.array([np.nan, 1.0, np.inf, -np.inf])

CASES = {   # name -> (function written in plain NumPy, argument); the traced value is not dispatched on
    "asarray": (lambda x: np.asarray(x) * x, X),
    "array": (lambda x: np.array([x, 2.0 * x], dtype=np.float64) ** 2, X),
    "full": (lambda s: np.full((2, 3), s) * np.arange(6.0).reshape(2, 3), 1.5),
    "full_like": (lambda s: np.full_like(np.zeros(3), s) ** 2, 1.5),
    "take": (lambda x: np.take(W, np.floor(x).astype(int)) * x, X),
    "select": (lambda x: np.select([X > 1], [W[:3]], default=x) * x, X),
    "pad": (lambda s: np.pad(np.ones(3), (1, 2), constant_values=s) * np.arange(6.0), 1.5),
    "nan_to_num": (lambda s: np.nan_to_num(NANS, nan=s, posinf=2 * s, neginf=-s), 1.5),
    "ndarray.dot": (lambda x: np.arange(6.0).reshape(2, 3).dot(x) * x[:2], X),
    "ndarray.take": (lambda x: W.take(np.floor(x).astype(int)) * x + W.take(np.floor(x).astype(int), mode="clip"), X),
    # autograd's fluid simulation: a constant field gathered at indices computed from traced values
    "ndarray[]": (lambda x: IMG[np.floor(x).astype(int), np.mod(np.floor(2 * x).astype(int), 5)] * x
                  + IMG[1, np.floor(x).astype(int)] + IMG[np.floor(x).astype(int)][:, 0], X),
}


def test_the_list_covers_every_converting_function_of_the_registry():
    """Every registered NumPy function whose spelling converts an argument (no dispatch at all, or
    a tracer in an argument its dispatcher skips) is in plain.CONVERTING: probed like
    tools/coverage.py, with a tracer in every non-leading array position."""
    tool = _tool()
    missing = set()
    table = {**_dispatch.FUNCTIONS, **_dispatch.UFUNCS}
    for np_fn, impl in table.items():
        public = tool._public_name(np_fn)
        if not public.startswith("numpy."):
            continue
        module = np.linalg if public.startswith("numpy.linalg.") else np
        name = public.rsplit(".", 1)[1]
        spelled = lambda *a, **k: getattr(module, name)(*a, **k)   # noqa: E731  (resolved at call time)
        probes = tool.PROBES + [((np.zeros(3), 1), {"constant_values": 2.0}),
                                ((NANS,), {"nan": 2.0})]
        for args, kwargs in probes:
            slots = [i for i, a in enumerate(args) if isinstance(a, (np.ndarray, np.floating))]
            kw = [k for k, v in kwargs.items() if isinstance(v, float)]
            for mask in itertools.product([False, True], repeat=len(slots) + len(kw)):
                if not any(mask):
                    continue
                if _traces(impl, args, kwargs, slots, kw, mask) and \
                        _conversion_error(spelled, args, kwargs, slots, kw, mask):
                    missing.add(public)
    assert not missing, f"np.NAME does not trace where tracegrad's impl does: {sorted(missing)}"
    assert not (set(plain.CONVERTING) - {n for n in dir(np)})


def _traces(fn, args, kwargs, slots, kw, mask) -> bool:
    return _outcome(fn, args, kwargs, slots, kw, mask) is None


def _conversion_error(fn, args, kwargs, slots, kw, mask) -> bool:
    """Did NumPy fail by converting a tracer (`__array__`, or a NumPy function reached with the
    converted value that has no rule), rather than by rejecting the arguments?"""
    e = _outcome(fn, args, kwargs, slots, kw, mask)
    return isinstance(e, (tg.TracerError, NotImplementedError))


def _outcome(fn, args, kwargs, slots, kw, mask):
    arrays = [args[i] for i, m in zip(slots, mask) if m] + \
             [np.float64(kwargs[k]) for k, m in zip(kw, mask[len(slots):]) if m]

    def f(*traced):
        it = iter(traced)
        a = list(args)
        for i, m in zip(slots, mask):
            if m:
                a[i] = next(it)
        k = dict(kwargs)
        for name, m in zip(kw, mask[len(slots):]):
            if m:
                k[name] = next(it)
        return tg.tree_leaves(fn(*a, **k))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tg.make_ir(f)(*arrays)
        return None
    except Exception as e:   # noqa: BLE001  (a probe that does not fit the function)
        return e


@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_spelling_traces_values_and_gradients(name):
    fn, arg = CASES[name]
    want = fn(arg)
    for mode in ("jit", "eager"):
        if mode == "eager":
            with tg.eager():
                got = tg.jit(fn)(arg)
        else:
            got = tg.jit(fn)(arg)
        np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=f"{name} {mode}")
    tg.check_grads(fn, (arg,), order=1)
    g = tg.grad(lambda a: np.sum(fn(a)))(arg)
    assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_indexing_a_constant_with_traced_indices_compiles_without_eager_fallback():
    fn, arg = CASES["ndarray[]"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # an EagerFallbackWarning would fail here
        g = tg.grad(lambda a: np.sum(fn(a)))
        g(arg)
    assert g.cache_info().entries[0].tier != "eager"
    assert "gather" in str(tg.make_ir(fn)(arg))


def test_ndarray_subscript_is_numpys_outside_traces_and_for_constant_keys():
    a = np.arange(10.0)
    assert type(np.ndarray.__dict__["__getitem__"]).__name__ == "wrapper_descriptor"
    out = tg.jit(lambda x: x * a[np.array([1, 2])] + a[3] + a[1:3].sum())(np.ones(2))
    np.testing.assert_allclose(out, np.ones(2) * [1, 2] + 3 + 3)
    with pytest.raises(IndexError):
        tg.jit(lambda x: x * a[20])(np.ones(2))
    assert plain.ndarray_subscript.available


@pytest.mark.compiled
def test_plain_spellings_compiled():
    names = sorted(CASES)

    def all_cases(x, s):
        return [CASES[n][0](s if np.ndim(CASES[n][1]) == 0 else x) for n in names]
    got = tg.jit(all_cases)(X, 1.5)
    assert tg.jit(all_cases).lower(X, 1.5).compile() is not None
    for n, g in zip(names, got):
        np.testing.assert_allclose(g, CASES[n][0](CASES[n][1]), rtol=1e-13, err_msg=n)
    grads = tg.jit(tg.grad(lambda x, s: sum(np.sum(o) for o in all_cases(x, s)), argnums=(0, 1)))(X, 1.5)
    with tg.eager():
        ref = tg.grad(lambda x, s: sum(np.sum(o) for o in all_cases(x, s)), argnums=(0, 1))(X, 1.5)
    np.testing.assert_allclose(grads[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(grads[1], ref[1], rtol=1e-12)
