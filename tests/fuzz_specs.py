"""The derivative fuzzer's spec table: for every function of the registry (the coverage table,
`tools/coverage.py registry()`), how to draw a case: shapes (zero-size and size-1 broadcasting
dims included), keyword arguments, and values from the function's domain with its *special
points*, and, where the function has a documented convention at kinks, that convention.

Values come from a `Dom` (the open interval where the function is defined and finite, and its
special points: kinks, jumps, branch switches, edges). Each array gets a *mode*, drawn by
hypothesis: "generic" (uniform in a typical range), "mixed" (each element one of: generic,
special point exactly or a hair away, a small step inside a domain edge, a large or tiny
magnitude, zero, a repeat of another element, inf/nan where meaningful) or "lattice" (a few
values, so that ties are everywhere). Several float operands are then, sometimes, made equal at
aligned broadcast positions (ties of binary and selecting functions).

Shapes and keyword arguments come from the op tests' case generators (tests/op_specs.py) where
one exists; linear algebra has its own, with special matrices (singular of every rank, repeated
eigen- and singular values, orthogonal, triangular, nilpotent, near-singular).

`SPECS` maps every registry name to a `FuzzSpec`; tests/test_fuzz_derivatives.py checks that the
two sets are equal, so a new function without a spec fails, naming it.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from scipy import linalg as scipy_linalg

import op_specs as O
from _coverage_tool import load as _tool
from fuzz_engine import Case, _same_value

REGISTRY = _tool().registry()
inf, nan = np.inf, np.nan


# ---------------------------------------------------------------- value domains

@dataclass(frozen=True)
class Dom:
    name: str
    lo: float = -inf            # the function is defined and finite on (lo, hi) ...
    hi: float = inf
    lo_ok: bool = False         # ... and at lo / hi themselves if these are True
    hi_ok: bool = False
    specials: tuple = ()        # points where something happens (kinks, jumps, branch switches)
    typical: tuple = (-3.0, 3.0)
    big: float = 1e8            # the largest magnitude drawn
    tiny: bool = True           # magnitudes down to 1e-25 (where the domain reaches 0)
    avoid: tuple = ()           # poles: never drawn (NumPy's value there is inf, no derivative)
    nonfinite: bool = False     # inf / nan are meaningful inputs (value checks)
    integer: bool = False       # integer values only (e.g. exponents of a negative base)
    min_abs: float = 0.0        # |x| at least this (divisors of mod: finite differences cannot
                                # resolve jumps closer together than their steps)

    def inside(self, x):
        with np.errstate(invalid="ignore"):
            ok = ((x > self.lo) | (self.lo_ok & (x == self.lo))) & ((x < self.hi) | (self.hi_ok & (x == self.hi)))
            for p in self.avoid:
                ok &= x != p
            if self.integer:
                ok &= x == np.round(x)
            if self.min_abs:
                ok &= np.abs(x) >= self.min_abs
        return ok


REAL = Dom("real", specials=(0.0, 1.0, -1.0), nonfinite=True)
LINEAR = Dom("real", specials=(0.0,))
NONZERO = Dom("nonzero", specials=(1.0, -1.0), avoid=(0.0,))
POS = Dom("(0, inf)", lo=0.0, specials=(1.0,), typical=(0.0, 3.0), big=1e12)
NONNEG = Dom("[0, inf)", lo=0.0, lo_ok=True, specials=(1.0,), typical=(0.0, 3.0), big=1e12)
UNIT = Dom("(-1, 1)", lo=-1.0, hi=1.0, specials=(0.0,))
EXP = Dom("(-inf, 700)", hi=700.0, specials=(0.0,), big=700.0)
EXP2 = Dom("(-inf, 1000)", hi=1000.0, specials=(0.0,), big=1000.0)
HYP = Dom("(-700, 700)", lo=-700.0, hi=700.0, specials=(0.0,), big=700.0)
TRIG = Dom("trig", specials=(0.0, math.pi / 2, math.pi), big=1e3)
TAN = Dom("(-pi/2, pi/2)", lo=-math.pi / 2, hi=math.pi / 2, specials=(0.0,), typical=(-1.5, 1.5))
GE1 = Dom("(1, inf)", lo=1.0, specials=(2.0,), typical=(1.0, 4.0), big=1e12)
LOG1P = Dom("(-1, inf)", lo=-1.0, specials=(0.0,), typical=(-1.0, 3.0), big=1e12)
# (piecewise constant: beyond 1e3 the smallest finite-difference step no longer resolves a stair
# of width 0.01 and sees a slope)
ROUNDING = Dom("halves", specials=(0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1.0, 0.05, 0.15),
               nonfinite=True, big=1e3)
SINC = Dom("sinc", specials=(0.0, 1.0, -1.0, 2.0, 1e-3 / math.pi, -1e-3 / math.pi), big=1e3)
PROD = Dom("near 1", specials=(0.0, 1.0, -1.0), typical=(-2.0, 2.0), big=10.0)
EXPONENT = Dom("exponent", specials=(0.0, 1.0, 2.0, 0.5, -1.0), typical=(-3.0, 3.0), big=20.0)
INT_EXPONENT = Dom("integer exponent", specials=(0.0, 1.0, 2.0, -1.0, 3.0), typical=(-3.0, 4.0),
                   big=8.0, integer=True)
MOD_X = Dom("dividend", specials=(0.0, 1.0, -1.0, 0.5), big=1e4, nonfinite=True)
MOD_Y = Dom("divisor", specials=(1.0, -1.0, 0.5, 2.0), avoid=(0.0,), big=1e4, tiny=False, min_abs=0.1)
LATTICE = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)


def _uniform_in(dom, rng, n):
    lo = max(dom.typical[0], dom.lo if np.isfinite(dom.lo) else -inf)
    hi = min(dom.typical[1], dom.hi if np.isfinite(dom.hi) else inf)
    x = rng.uniform(lo, hi, n)
    if dom.min_abs:
        x = np.where(np.abs(x) < dom.min_abs, np.copysign(dom.min_abs, x) + x, x)
    return np.round(x) if dom.integer else x


def sample(dom, rng, shape, mode):
    """Values of `shape` from `dom` in the given mode (see the module docstring)."""
    n = int(np.prod(shape, dtype=np.int64))
    x = _uniform_in(dom, rng, n)
    if n == 0 or mode == "generic":
        return _fix(dom, x, rng).reshape(shape)
    if mode == "lattice":
        pts = [p for p in tuple(dom.specials) + LATTICE if dom.inside(np.float64(p))]
        if pts:
            x = rng.choice(pts, n)
        return _fix(dom, x, rng).reshape(shape)
    cats = rng.choice(["generic", "special", "near", "edge", "large", "tiny", "zero", "repeat",
                       "nonfinite"], n, p=[.3, .14, .08, .1, .1, .1, .06, .1, .02])
    for i, c in enumerate(cats):
        if c == "special" and dom.specials:
            x[i] = rng.choice(dom.specials)
        elif c == "near" and dom.specials:
            p = rng.choice(dom.specials)
            x[i] = p + rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-9, -5) * max(1.0, abs(p))
        elif c == "edge":
            ends = [(e, s) for e, s in ((dom.lo, 1.0), (dom.hi, -1.0)) if np.isfinite(e)]
            if ends:
                e, s = ends[rng.integers(len(ends))]
                x[i] = e + s * 10.0 ** rng.uniform(-8, -2) * max(1.0, abs(e))
        elif c == "large":
            x[i] = rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(1, math.log10(dom.big))
        elif c == "tiny" and dom.tiny:
            x[i] = rng.choice([-1.0, 1.0]) * 10.0 ** -rng.uniform(3, 25)
        elif c == "zero":
            x[i] = rng.choice([0.0, -0.0])
        elif c == "repeat" and i:
            x[i] = x[rng.integers(i)]
        elif c == "nonfinite" and dom.nonfinite:
            x[i] = rng.choice([inf, -inf, nan])
    return _fix(dom, x, rng, keep_nonfinite=dom.nonfinite).reshape(shape)


def _fix(dom, x, rng, keep_nonfinite=False):
    """Values outside the domain redrawn generically (the mixed draws ignore the domain)."""
    if dom.integer:
        x = np.where(np.isfinite(x), np.round(x), x)
    bad = ~dom.inside(x)
    if keep_nonfinite:
        bad &= np.isfinite(x)
    if bad.any():
        x = np.where(bad, _uniform_in(dom, rng, x.size), x)
        for p in dom.avoid:
            x = np.where(x == p, p + 0.5, x)
    return x


MODES = st.sampled_from(["generic", "mixed", "mixed", "lattice"])


def tie_up(data, rng, arrays, slots, doms=None):
    """Sometimes make the float operands `slots` equal where their broadcast positions align (and
    the value is in the receiving operand's domain `doms[k]`)."""
    if len(slots) < 2 or not data.draw(st.booleans(), label="ties"):
        return arrays
    arrays = list(arrays)
    a0 = arrays[slots[0]]
    for k in slots[1:]:
        ak = arrays[k]
        if ak.size == 0 or a0.size == 0:
            continue
        try:
            full = np.broadcast_shapes(a0.shape, ak.shape)
        except ValueError:
            continue
        src = np.broadcast_to(a0, full)
        # the element of a0 at each broadcast position, read back at ak's positions
        lead = len(full) - ak.ndim
        idx = tuple([0] * lead + [slice(None) if d > 1 or f == 1 else slice(0, 1)
                                  for d, f in zip(ak.shape, full[lead:])])
        view = np.broadcast_to(src[idx], ak.shape)
        mask = rng.uniform(size=ak.shape) < 0.7
        if doms is not None and doms.get(k) is not None:
            mask &= doms[k].inside(view) | ~np.isfinite(view) & doms[k].nonfinite
        arrays[k] = np.where(mask, view, ak)
    return arrays


# ---------------------------------------------------------------- specs

@dataclass
class FuzzSpec:
    name: str                           # registry name ("numpy.hypot")
    draw: Callable                      # draw(data, rng) -> Case
    second: bool = True                 # check second derivatives
    forward: bool = True                # False: reverse mode only (custom_vjp functions: odeint),
                                        # checked against finite differences directly
    kink_nonfinite: bool = False        # NaN/inf derivatives allowed where not differentiable
    convention: Callable | None = None  # convention(case, arrays, tangents) -> expected jvp
    kinks: Callable | None = None       # kinks(case, arrays) -> per float output, where the
                                        # function is known not to be differentiable (ties of 3
                                        # or more, repeated eigenvalues: finite differences can
                                        # look smooth along a few directions there)
    check: Callable | None = None       # check(got, want, case): values valid in another way
    align: Callable | None = None       # align(outputs, base): NumPy's outputs near the point made
                                        # continuous with those at the point (eigen- and
                                        # singular vectors: LAPACK may flip a sign in between)
    hull: bool = True                   # at kinks, the derivative lies between the one-sided ones
                                        # (False where non-differentiable points are not all
                                        # between two smooth pieces: order statistics, spectra)
    values: bool = True                 # False: only shapes and dtypes are NumPy's (empty_like)
    unstable: Callable | None = None    # unstable(case): the outcome is rounding noise, not
                                        # compared (solve/inv of numerically singular matrices:
                                        # whether an LU meets an exact zero pivot, and so raises,
                                        # depends on its order of operations); LinAlgError allowed
    empty_quirks: str | None = None     # SciPy's own quirks at zero-size inputs: "raises" (where
                                        # SciPy raises, tracegrad's outcome is not compared: 1-d
                                        # convolve's "v cannot be empty", n-d logsumexp's
                                        # IndexError, softmax's and dirichlet's reductions of
                                        # nothing), "any" (its results are not compared either:
                                        # convolve 'valid' of (0, 2) and (1, 3) gives shape (2, 2))
    grad: bool = True                   # False: no derivative to check against NumPy's (ditto)
    rtol: float = 1e-9                  # values against NumPy
    atol: float = 1e-12                 # (times the largest finite |value|)
    note: str = ""
    examples: float = 1.0               # this share of TRACEGRAD_FUZZ_EXAMPLES (at least one):
                                        # for functions whose every example costs seconds

    @property
    def np_fn(self):
        return REGISTRY[self.name][0]

    @property
    def impl(self):
        return REGISTRY[self.name][1]


def _float64_kwargs(kwargs):
    return {k: (np.float64 if k == "dtype" and v is not None and np.dtype(v) == np.float32 else v)
            for k, v in kwargs.items()}


def from_op(op_name, doms=None, ties=True, dtype=np.float64, call=None):
    """Draw with the op tests' case generator for `op_name` (shapes, kwargs, how to call), and
    values from the fuzz domains `doms` (one per array; conditions keep the op test's domain)."""
    def draw(data, rng):
        c = O.BY_NAME[op_name].draw(data)
        arrays, slots, used = [], [], {}
        for i, (shape, d) in enumerate(zip(c.shapes, c.domains)):
            if d.condition or d.fixed is not None or np.dtype(dtype).kind != "f":
                arrays.append(d.draw(rng, shape, np.bool_ if d.condition else dtype))
                continue
            dom = used[i] = (doms[i] if i < len(doms) else doms[-1]) if doms else REAL
            arrays.append(sample(dom, rng, shape, data.draw(MODES, label=f"mode{i}")))
            slots.append(i)
        if ties:
            arrays = tie_up(data, rng, arrays, slots, used)
        c = O.Case(c.shapes, c.domains, _float64_kwargs(c.kwargs), c.call)
        invoke = call or (lambda fn, *xs: c.invoke(fn, xs))
        op = O.BY_NAME[op_name]
        grad_call = None
        if op.grad_call is not None:
            grad_call = lambda fn, *xs: c.invoke(lambda *a, **k: op.grad_call(fn, *a, **k), xs)
        return Case(arrays, invoke, tuple(slots), note=f"{op_name} kwargs={c.kwargs}", extra=c,
                    grad_call=grad_call)
    return draw


def _kw(kwargs):
    """A case's `extra` for the conventions and kink masks: its keyword arguments."""
    return types.SimpleNamespace(kwargs=kwargs)


def spec(name, draw, **kw):
    return FuzzSpec(name, draw, **kw)


# ---------------------------------------------------------------- conventions (documented in
# tracegrad/numpy/conventions.py, which the coverage table's notes come from)

def _zero_conv(case, arrays, tangents):
    """Piecewise-constant functions: derivative 0 everywhere, jumps included."""
    return quiet_call(case.call, _Zeros(), *arrays)


class _Zeros:
    """Stands for a piecewise-constant function in a case's call: zeros of its output's shape."""

    def __call__(self, x, *args, **kw):
        return np.zeros(np.shape(x))


def _abs_conv(case, arrays, tangents):
    (x,), (t,) = arrays, tangents
    return t * np.where(x >= 0, 1.0, -1.0)


def _tie(x, y, tx, ty, big):
    """maximum (big) / minimum: the winner's tangent, the mean of both at a tie."""
    win_x = x > y if big else x < y
    win_y = y > x if big else y < x
    return np.where(win_x, tx, np.where(win_y, ty, 0.5 * (tx + ty)))


def _minmax_conv(big):
    def conv(case, arrays, tangents):
        x, y = np.broadcast_arrays(*arrays)
        tx, ty = np.broadcast_arrays(*tangents)
        return _tie(x, y, tx, ty, big)
    return conv


def _fminmax_conv(big):
    def conv(case, arrays, tangents):
        x, y = np.broadcast_arrays(*arrays)
        tx, ty = np.broadcast_arrays(*tangents)
        pick = ((x > y) if big else (x < y)) | np.isnan(y)
        return np.where(pick, tx, ty)
    return conv


class _Dual:
    """A value with its tangent, for conventions of compositions (clip, reductions, ...)."""

    def __init__(self, v, t):
        self.v, self.t = np.asarray(v, np.float64), np.asarray(t, np.float64)


def _dual(x):
    return x if isinstance(x, _Dual) else _Dual(x, np.zeros_like(np.asarray(x, np.float64)))


def _dmax(a, b, big=True):
    a, b = _dual(a), _dual(b)
    v = np.maximum(a.v, b.v) if big else np.minimum(a.v, b.v)
    av, bv = np.broadcast_arrays(a.v, b.v)
    at, bt = np.broadcast_arrays(a.t, b.t)
    return _Dual(v, _tie(av, bv, at, bt, big))


def _clip_conv(case, arrays, tangents):
    duals = [_Dual(a, t) if t is not None else a for a, t in zip(arrays, tangents)]

    def clip(a, a_min=None, a_max=None, **kw):
        a_min = kw.get("min", a_min)
        a_max = kw.get("max", a_max)
        x = a
        if a_min is not None:
            x = _dmax(x, a_min, True)
        if a_max is not None:
            x = _dmax(x, a_max, False)
        return x.t
    return case.call(clip, *duals)


def _clip_kinks(case, arrays):
    """Where a equals a bound (with several equal, finite differences can look linear)."""
    def clip(a, a_min=None, a_max=None, **kw):
        a_min = kw.get("min", a_min)
        a_max = kw.get("max", a_max)
        hit = np.zeros(np.broadcast_shapes(*[np.shape(b) for b in (a, a_min, a_max) if b is not None]), bool)
        for b in (a_min, a_max):
            if b is not None:
                hit = hit | (np.asarray(a) == np.asarray(b))
        return hit
    return [case.call(clip, *arrays)]


def _reduce_conv(big, ptp=False):
    """max/min reductions: the tangents of the tied elements averaged (then `initial` enters as
    a maximum/minimum); ptp: max minus min."""
    def extreme(a, axis=None, keepdims=False, initial=None, big=big, **kw):
        x, t = a.v, a.t
        red = np.max if big else np.min
        if initial is None and x.size == 0:
            return None
        if x.size == 0 or (axis is not None and any(x.shape[i] == 0 for i in np.atleast_1d(axis))):
            m = red(x, axis=axis, keepdims=True, initial=initial)
            return _Dual(m if keepdims else np.squeeze(m, axis=axis if axis is not None else None),
                         np.zeros(m.shape if keepdims else np.squeeze(m, axis=axis).shape))
        m = red(x, axis=axis, keepdims=True)
        hit = (x == m)
        share = np.sum(np.where(hit, t, 0.0), axis=axis, keepdims=True) / np.sum(hit, axis=axis, keepdims=True)
        res = _Dual(m, share)
        if initial is not None:
            res = _dmax(res, float(initial), big)
        if not keepdims:
            ax = axis if axis is not None else tuple(range(x.ndim))
            res = _Dual(np.squeeze(res.v, axis=ax), np.squeeze(res.t, axis=ax))
        return res

    def conv(case, arrays, tangents):
        (x,), (t,) = arrays, tangents
        d = _Dual(x, t)
        if ptp:
            def fn(a, axis=None, keepdims=False, **kw):
                hi, lo = extreme(a, axis, keepdims, big=True), extreme(a, axis, keepdims, big=False)
                return None if hi is None else hi.t - lo.t
        else:
            def fn(a, axis=None, keepdims=False, initial=None, **kw):
                r = extreme(a, axis, keepdims, initial)
                return None if r is None else r.t
        return case.call(fn, d)
    return conv


def _sort_conv(case, arrays, tangents):
    """sort (and partition, whose checked form is sorted): each element's tangent moves with it
    to its place in a stable sort."""
    (x,), (t,) = arrays, tangents
    axis = case.extra.kwargs.get("axis", -1)
    if axis is None:
        x, t, axis = x.ravel(), t.ravel(), 0
    return np.take_along_axis(t, np.argsort(x, axis=axis, kind="stable"), axis)


def _hypot_conv(case, arrays, tangents):
    x, y = np.broadcast_arrays(*arrays)
    tx, ty = np.broadcast_arrays(*tangents)
    h = np.hypot(x, y)
    origin = (x == 0) & (y == 0)
    safe = np.where(origin, 1.0, h)
    return np.where(origin, 0.5 * (tx * np.where(x >= 0, 1, -1) + ty * np.where(y >= 0, 1, -1)),
                    (x * tx + y * ty) / safe)


def _tied(x, axis, rtol=0.0):
    """Elements of x equal to another element along `axis` (after sorting: the checked form of
    sort and partition), i.e. the tied places of the sorted output."""
    if axis is None:
        x, axis = x.ravel(), 0
    srt = np.sort(x, axis=axis)
    n = srt.shape[axis]
    if n < 2:
        return np.zeros(srt.shape, bool)
    lo = np.take(srt, range(0, n - 1), axis=axis)
    hi = np.take(srt, range(1, n), axis=axis)
    eq = np.abs(hi - lo) <= rtol * np.maximum(np.abs(hi), np.abs(lo))
    pad = [(0, 0)] * srt.ndim
    before, after = list(pad), list(pad)
    before[axis], after[axis] = (1, 0), (0, 1)
    return np.pad(eq, before) | np.pad(eq, after)


def _sort_kinks(case, arrays):
    return [_tied(arrays[0], case.extra.kwargs.get("axis", -1))]


def _repeated(w, rtol=1e-6):
    """Per entry of the last axis of w: within rtol of another entry (of the same matrix)."""
    scale = np.max(np.abs(w), axis=-1, keepdims=True, initial=0.0) + 1e-300
    d = np.abs(w[..., :, None] - w[..., None, :]) <= rtol * scale[..., None]
    n = w.shape[-1]
    return (d & ~np.eye(n, dtype=bool)).any(axis=-1)


def _matrix_mask(rep, shape_of_out):
    """A (..., k) mask spread over a matrix output (..., r, c): whole matrices where any is set."""
    anyrep = rep.any(axis=-1)[..., None, None]
    return np.broadcast_to(anyrep, shape_of_out)


def _eigh_kinks(vectors):
    """Repeated eigenvalues: those eigenvalues, and every eigenvector of the matrix."""
    def kinks(case, arrays):
        a = arrays[0]
        w = np.linalg.eigvalsh(a, UPLO=case.extra.kwargs.get("UPLO", "L"))
        rep = _repeated(w)
        return [rep, _matrix_mask(rep, a.shape)] if vectors else [rep]
    return kinks


def _svd_kinks(case, arrays):
    """Repeated singular values (zeros included); singular vectors also at a zero one."""
    a = arrays[0]
    s = np.linalg.svd(a, compute_uv=False)
    rep = _repeated(s)
    vec = rep | (s <= 1e-8 * (np.max(s, axis=-1, keepdims=True, initial=0.0) + 1e-300))
    outs = quiet_call(case.call, np.linalg.svd, a)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return [rep if o.ndim == s.ndim else _matrix_mask(vec, o.shape) for o in outs]


def _svdvals_kinks(case, arrays):
    return [_repeated(np.linalg.svd(arrays[0], compute_uv=False))]


def _spectral_kinks(case, arrays):
    """Norms 2 and -2 where the largest (smallest) singular value is tied: the output element of
    that matrix (nuc, their sum, is smooth at ties; at a zero singular value all three have an
    ordinary kink)."""
    x = arrays[0]
    kw = case.extra.kwargs
    ord_, axis = kw.get("ord"), kw.get("axis")
    fn = np.linalg.matrix_norm if case.note.startswith("matrix_norm") else np.linalg.norm
    mask = np.zeros(np.shape(quiet_call(case.call, fn, x)), bool)
    if ord_ not in (2, -2) or x.ndim < 2:
        return [mask]
    if axis is None:
        axis = (-2, -1) if "matrix_norm" in case.note or x.ndim == 2 else None
    if axis is None or len(np.atleast_1d(axis)) != 2:
        return [mask]
    r, c = (a % x.ndim for a in axis)
    rest = [i for i in range(x.ndim) if i not in (r, c)]
    sv = np.linalg.svd(np.transpose(x, rest + [r, c]), compute_uv=False)
    if sv.shape[-1] < 2:
        return [mask]
    pair = sv[..., :2] if ord_ == 2 else sv[..., -2:]
    tied = np.abs(pair[..., 0] - pair[..., 1]) <= 1e-6 * (sv[..., 0] + 1e-300)
    if kw.get("keepdims"):
        shape = list(x.shape)
        shape[r] = shape[c] = 1
        tied = tied.reshape(shape)
    return [np.broadcast_to(tied, mask.shape)]


def _align_columns(x, ref):
    """Columns of x (..., r, c) flipped where they point away from those of ref."""
    dots = np.sum(x * ref, axis=-2, keepdims=True)
    return np.where(dots < 0, -x, x)


def _align_eigh(outs, base):
    if len(outs) == 2:          # (w, v)
        return [outs[0], _align_columns(outs[1], base[1])]
    return outs


def _align_svd(outs, base):
    """u's columns and vh's rows (the first k; projectors need nothing)."""
    out = list(outs)
    if len(outs) >= 3:
        out[0] = _align_columns(outs[0], base[0])
        out[2] = np.swapaxes(_align_columns(np.swapaxes(outs[2], -1, -2),
                                            np.swapaxes(base[2], -1, -2)), -1, -2)
    return out


def quiet_call(fn, *args):
    with np.errstate(all="ignore"):
        return fn(*args)


# ---------------------------------------------------------------- linear algebra cases

def _batch(data, max_dims=2):
    return tuple(data.draw(st.lists(st.integers(0, 2), max_size=max_dims), label="batch"))


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.where(np.diag(r) == 0, 1, np.diag(r)))


def _square(data, rng, n, kind):
    """One n-by-n matrix of a special kind."""
    if n == 0:
        return np.zeros((0, 0))
    if kind == "generic":
        return rng.standard_normal((n, n))
    if kind == "shifted":
        return rng.standard_normal((n, n)) + 3 * np.eye(n)
    if kind == "rank":        # exactly rank r < n
        r = int(rng.integers(0, n))
        return rng.integers(-2, 3, (n, r)).astype(float) @ rng.integers(-2, 3, (r, n)).astype(float)
    if kind == "zero-row":
        a = rng.standard_normal((n, n))
        a[rng.integers(n)] = 0.0
        return a if rng.uniform() < 0.5 else a.T.copy()
    if kind == "nilpotent":   # strictly upper triangular: every pivot is zero
        return np.triu(rng.integers(-2, 3, (n, n)).astype(float), 1)
    if kind == "triangular":
        a = np.triu(rng.standard_normal((n, n)))
        return a if rng.uniform() < 0.5 else a.T.copy()
    if kind == "identity":
        return float(rng.choice([1.0, -2.0, 0.5])) * np.eye(n)
    if kind == "orthogonal":
        return _orthogonal(rng, n)
    if kind == "repeated":    # symmetric, eigenvalues repeated
        q = _orthogonal(rng, n)
        w = rng.choice([-1.0, 1.0, 2.0], n)
        return (q * w) @ q.T
    if kind == "diagonal":
        return np.diag(rng.choice([0.0, 1.0, -1.0, 2.0], n))
    if kind == "near-singular":
        u, v = _orthogonal(rng, n), _orthogonal(rng, n)
        s = np.sort(rng.uniform(0.5, 2.0, n))[::-1]
        s[-1] = 10.0 ** rng.uniform(-9, -5)
        return (u * s) @ v.T
    if kind == "integer":
        return rng.integers(-2, 3, (n, n)).astype(float)
    raise ValueError(kind)


KINDS = ["generic", "shifted", "rank", "zero-row", "nilpotent", "triangular", "identity",
         "orthogonal", "repeated", "diagonal", "near-singular", "integer"]


def _matrices(data, rng, n, batch, kinds=KINDS, symmetric=False, spd=False):
    kind = data.draw(st.sampled_from(kinds), label="kind")
    mats = [_square(data, rng, n, kind) for _ in range(int(np.prod(batch, dtype=np.int64)) or 0)]
    a = np.stack(mats).reshape(batch + (n, n)) if mats else np.zeros(batch + (n, n))
    if symmetric or spd:
        a = (a + np.swapaxes(a, -1, -2)) / 2
    if spd:
        a = a @ np.swapaxes(a, -1, -2) + data.draw(st.sampled_from([1e-3, 0.5, 2.0]), label="shift") * np.eye(n)
    if symmetric and data.draw(st.booleans(), label="one triangle"):
        a = a + np.triu(rng.standard_normal(a.shape), 1)     # only one triangle is read
    return a, kind


def _square_case(fn_call, kinds=KINDS, symmetric=False, spd=False, nmax=4, extra=None):
    def draw(data, rng):
        n = data.draw(st.integers(0, nmax), label="n")
        batch = _batch(data)
        a, kind = _matrices(data, rng, n, batch, kinds, symmetric, spd)
        kw = data.draw(extra, label="kwargs") if extra is not None else {}
        return Case([a], lambda fn, a: fn_call(fn, a, **kw), (0,), note=f"{kind} {kw}", extra=_kw(kw))
    return draw


def _rect(data, rng, batch=None):
    m, n = data.draw(st.integers(0, 4), label="m"), data.draw(st.integers(0, 4), label="n")
    batch = _batch(data, 1) if batch is None else batch
    kind = data.draw(st.sampled_from(["generic", "rank", "orthogonal", "repeated", "zero"]), label="kind")
    k = min(m, n)
    size = int(np.prod(batch, dtype=np.int64))
    out = []
    for _ in range(size):
        if kind == "generic" or k == 0:
            a = rng.standard_normal((m, n))
        elif kind == "rank":
            r = int(rng.integers(0, k))
            a = rng.integers(-2, 3, (m, r)).astype(float) @ rng.integers(-2, 3, (r, n)).astype(float)
        elif kind == "zero":
            a = np.zeros((m, n))
        else:
            u, v = _orthogonal(rng, m)[:, :k], _orthogonal(rng, n)[:, :k]
            s = np.ones(k) if kind == "orthogonal" else rng.choice([1.0, 2.0], k)
            a = (u * s) @ v.T
        out.append(a)
    a = np.stack(out).reshape(batch + (m, n)) if out else np.zeros(batch + (m, n))
    return a, kind


def _svd_call(fn, a, full_matrices=True, compute_uv=True):
    """svd, made comparable: the first k singular vectors as they are (LAPACK's, NumPy's), and
    for full_matrices the complement columns through their projector (any orthonormal basis of
    the complement is valid; tracegrad's derivative rotates it minimally, see rules/linalg.py)."""
    if not compute_uv:
        return fn(a, full_matrices=full_matrices, compute_uv=False)
    u, s, vh = fn(a, full_matrices=full_matrices)
    m, n = a.shape[-2:]
    k = min(m, n)
    if not full_matrices or m == n:
        return u, s, vh
    uc, vc = u[..., :, k:], np.swapaxes(vh[..., k:, :], -1, -2)
    return (u[..., :, :k], s, vh[..., :k, :], uc @ np.swapaxes(uc, -1, -2),
            vc @ np.swapaxes(vc, -1, -2))


def _draw_svd(data, rng):
    a, kind = _rect(data, rng)
    kw = data.draw(st.sampled_from([{}, {"full_matrices": False}, {"compute_uv": False},
                                    {"full_matrices": True}]), label="kwargs")
    return Case([a], lambda fn, a: _svd_call(fn, a, **kw), (0,), note=f"{kind} {kw}", extra=_kw(kw))


def _draw_rect(call, extra=None):
    def draw(data, rng):
        a, kind = _rect(data, rng)
        kw = data.draw(extra, label="kwargs") if extra is not None else {}
        return Case([a], lambda fn, a: call(fn, a, **kw), (0,), note=f"{kind} {kw}", extra=_kw(kw))
    return draw


def _draw_solve(data, rng):
    n = data.draw(st.integers(0, 4), label="n")
    batch = _batch(data, 1)
    a, kind = _matrices(data, rng, n, batch)
    if data.draw(st.booleans(), label="vector") and not batch:
        b = sample(LINEAR, rng, (n,), data.draw(MODES))
    else:
        b = sample(LINEAR, rng, batch + (n, data.draw(st.integers(0, 2))), data.draw(MODES))
    return Case([a, b], lambda fn, a, b: fn(a, b), (0, 1), note=kind)


def _numerically_singular(case):
    """The first array holds a matrix with condition number above 1e14 (singular ones included)."""
    a = case.arrays[0]
    if a.ndim < 2 or a.size == 0:
        return False
    with np.errstate(all="ignore"):
        return bool(np.any(~(np.linalg.cond(a) <= 1e14)))


def _draw_matrix_power(data, rng):
    p = data.draw(st.integers(-3, 4), label="power")
    n = data.draw(st.integers(0, 3), label="n")
    a, kind = _matrices(data, rng, n, _batch(data, 1))
    return Case([a], lambda fn, a: fn(a, p), (0,), note=f"{kind} n={p}", extra=_kw({"p": p}))


def _draw_multi_dot(data, rng):
    k = data.draw(st.integers(2, 4), label="count")
    dims = [data.draw(st.integers(0, 3), label="dim") for _ in range(k + 1)]
    shapes = [(dims[i], dims[i + 1]) for i in range(k)]
    if data.draw(st.booleans(), label="vector first"):
        shapes[0] = (dims[1],)
    if data.draw(st.booleans(), label="vector last"):
        shapes[-1] = (dims[-2],)
    arrays = [sample(LINEAR, rng, s, data.draw(MODES)) for s in shapes]
    return Case(arrays, lambda fn, *xs: fn(list(xs)), tuple(range(k)))


_NORM_ORDS = [None, 2, 1, -1, np.inf, -np.inf, 0, 3, 0.5, -2, "fro", "nuc"]


def _draw_norm(data, rng):
    shape = data.draw(O.shapes(max_dims=3, max_side=3), label="shape")
    nd = len(shape)
    mode = data.draw(st.sampled_from(["all", "vector", "matrix"]), label="norm kind")
    kw = {}
    if mode == "vector" and nd >= 1:
        kw["axis"] = data.draw(st.integers(-nd, nd - 1), label="axis")
        kw["ord"] = data.draw(st.sampled_from([None, 2, 1, -1, np.inf, -np.inf, 0, 3, 0.5, -2]), label="ord")
    elif mode == "matrix" and nd >= 2:
        i, j = data.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True), label="axes")
        kw["axis"] = (i, j - nd)
        kw["ord"] = data.draw(st.sampled_from([None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]), label="ord")
    elif nd in (1, 2):
        kw["ord"] = data.draw(st.sampled_from([None, 2, 1, np.inf] + (["fro", "nuc"] if nd == 2 else [])), label="ord")
    kw["keepdims"] = data.draw(st.booleans(), label="keepdims")
    x = _norm_values(data, rng, shape)
    return Case([x], lambda fn, x: fn(x, **kw), (0,), note=f"numpy.linalg.norm {kw}", extra=_kw(kw))


def _norm_values(data, rng, shape):
    if len(shape) >= 2 and data.draw(st.booleans(), label="special matrix"):
        a, _ = _rect_shaped(data, rng, shape)
        return a
    return sample(LINEAR, rng, shape, data.draw(MODES))


def _rect_shaped(data, rng, shape):
    kind = data.draw(st.sampled_from(["orthogonal", "rank", "zero", "repeated"]), label="kind")
    *batch, m, n = shape
    k = min(m, n)
    out = []
    for _ in range(int(np.prod(batch, dtype=np.int64))):
        if kind == "zero" or k == 0:
            a = np.zeros((m, n))
        elif kind == "rank":
            r = int(rng.integers(0, k))
            a = rng.integers(-2, 3, (m, r)).astype(float) @ rng.integers(-2, 3, (r, n)).astype(float)
        else:
            u, v = _orthogonal(rng, m)[:, :k], _orthogonal(rng, n)[:, :k]
            a = (u * (np.ones(k) if kind == "orthogonal" else rng.choice([1.0, 2.0], k))) @ v.T
        out.append(a)
    return (np.stack(out).reshape(shape) if out else np.zeros(shape)), kind


def _draw_vector_norm(data, rng):
    shape = data.draw(O.shapes(max_dims=3, max_side=3), label="shape")
    nd = len(shape)
    kw = {"ord": data.draw(st.sampled_from([2, 1, -1, np.inf, -np.inf, 0, 3, 0.5, -2]), label="ord"),
          "keepdims": data.draw(st.booleans(), label="keepdims")}
    if nd and data.draw(st.booleans(), label="axis"):
        kw["axis"] = O.draw_axis(data, nd, allow_none=False)
    x = sample(LINEAR, rng, shape, data.draw(MODES))
    return Case([x], lambda fn, x: fn(x, **kw), (0,), note=f"vector_norm {kw}", extra=_kw(kw))


def _draw_matrix_norm(data, rng):
    shape = data.draw(O.shapes(min_dims=2, max_dims=3, max_side=3), label="shape")
    kw = {"ord": data.draw(st.sampled_from(["fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]), label="ord"),
          "keepdims": data.draw(st.booleans(), label="keepdims")}
    x = _norm_values(data, rng, shape)
    return Case([x], lambda fn, x: fn(x, **kw), (0,), note=f"matrix_norm {kw}", extra=_kw(kw))


def _draw_linalg_1d_pair(op):
    def draw(data, rng):
        if op == "outer":
            sa, sb = (data.draw(st.integers(0, 3)),), (data.draw(st.integers(0, 3)),)
            call = lambda fn, a, b: fn(a, b)
        elif op == "cross":
            lead = O.broadcast_pair(data)
            sa, sb = tuple(lead[0]) + (3,), tuple(lead[1]) + (3,)
            call = lambda fn, a, b: fn(a, b)
        elif op == "tensordot":
            c = O.BY_NAME["tensordot"].draw(data)
            sa, sb = c.shapes
            axes = c.kwargs["axes"]
            call = lambda fn, a, b: fn(a, b, axes=axes)
        else:   # matmul
            c = O.BY_NAME["matmul"].draw(data)
            sa, sb = c.shapes
            call = lambda fn, a, b: fn(a, b)
        a = sample(LINEAR, rng, sa, data.draw(MODES))
        b = sample(LINEAR, rng, sb, data.draw(MODES))
        return Case([a, b], call, (0, 1))
    return draw


def _draw_linalg_one(op):
    def draw(data, rng):
        shape = data.draw(O.shapes(min_dims=2, max_dims=4, max_side=3), label="shape")
        x = sample(LINEAR, rng, shape, data.draw(MODES))
        if op == "diagonal":
            off = data.draw(st.integers(-3, 3), label="offset")
            return Case([x], lambda fn, x: fn(x, offset=off), (0,))
        if op == "trace":
            off = data.draw(st.integers(-3, 3), label="offset")
            return Case([x], lambda fn, x: fn(x, offset=off), (0,))
        return Case([x], lambda fn, x: fn(x), (0,))
    return draw


def _draw_isclose(data, rng):
    sx, sy = O.broadcast_pair(data)
    mode = data.draw(MODES, label="mode")
    x = sample(REAL, rng, sx, mode)
    y = sample(REAL, rng, sy, data.draw(MODES, label="mode y"))
    x, y = tie_up(data, rng, [x, y], [0, 1])
    # near ties: some y within and some just outside the tolerance
    near = rng.uniform(size=y.shape) < 0.3
    y = np.where(near & np.isfinite(y), y * (1 + rng.choice([1e-6, 1e-4, -1e-5], y.shape)), y)
    kw = data.draw(st.sampled_from([{}, {"equal_nan": True}, {"rtol": 0.0, "atol": 0.5},
                                    {"rtol": 1e-3}, {"atol": 0.0}]), label="kwargs")
    return Case([x, y], lambda fn, a, b: fn(a, b, **kw), (), note=str(kw))


def _ints(name, op_name=None):
    def draw(data, rng):
        c = O.BY_NAME[op_name or name.split(".")[-1]].draw(data)
        dt = data.draw(st.sampled_from([np.int64, np.int32, np.bool_]), label="dtype")
        arrays = [d.draw(rng, s, dt) for s, d in zip(c.shapes, c.domains)]
        return Case(arrays, lambda fn, *xs: c.invoke(fn, xs), ())
    return spec(name, draw)


def _slogdet_check(got, want, case):
    """slogdet: sign and log|det| as NumPy's, except for numerically singular matrices (|det|
    below 1e-10 of Hadamard's bound), whose log|det| is rounding noise (any LU's)."""
    a = case.arrays[0]
    sign, logdet = (np.asarray(g) for g in got)
    wsign, wlog = (np.asarray(w) for w in want)
    assert sign.shape == wsign.shape and logdet.shape == wlog.shape and logdet.dtype == wlog.dtype
    with np.errstate(all="ignore"):
        bound = np.sum(np.log(np.linalg.norm(a, axis=-1)), axis=-1) if a.shape[-1] else np.zeros(a.shape[:-2])
        clear = wlog > bound + np.log(1e-10)
    # (two LUs' log|det| differ by about eps * cond)
    cond = np.linalg.cond(a) if a.shape[-1] else np.ones(a.shape[:-2])
    np.testing.assert_array_equal(sign[clear], wsign[clear])
    assert np.all(np.abs(logdet - wlog)[clear] <= 1e-9 + 1e-13 * cond[clear]), (logdet, wlog)


def _op_check(check, values=False):
    """The op tests' check of a result that is one of several valid ones (partitions, unstable
    argsorts), on the traced result; NaN (sorted last) stands in as +inf for the comparisons."""
    def run(got, want, case):
        arrays = [np.where(np.isnan(a), np.inf, a) if np.asarray(a).dtype.kind == "f" else a
                  for a in case.arrays]
        got = np.asarray(got)
        if values:
            got = np.where(np.isnan(got), np.inf, got)
        check(got, np.asarray(want), arrays, case.extra)
    return run


# ---------------------------------------------------------------- SciPy cases

# gamma-like functions: poles at 0, -1, -2, ... (never drawn; steps that cross one are undefined)
NOT_A_POLE = Dom("not a pole", specials=(1.0, 2.0, 0.5, -0.5, -1.5), avoid=(0.0, -1.0, -2.0, -3.0, -4.0),
                 typical=(-4.0, 6.0), big=1e6)
GAMMA_ARG = replace(NOT_A_POLE, hi=171.0, big=170.0)          # Gamma overflows beyond 171.6
OPEN_UNIT = Dom("(0, 1)", lo=0.0, hi=1.0, specials=(0.5,), typical=(0.0, 1.0))
CLOSED_UNIT = Dom("[0, 1]", lo=0.0, hi=1.0, lo_ok=True, hi_ok=True, specials=(0.5, 0.0, 1.0),
                  typical=(0.0, 1.0))
SHAPE = Dom("shape parameter", lo=0.0, specials=(1.0, 2.0, 0.5), typical=(0.2, 6.0), big=1e3)
# (the t density's features around 0 are ~sqrt(df) wide: below df = 0.05 narrower than finite
# differences with steps relative to x resolve; they saw pdf(0) = sqrt(df) / 2 as a flat cdf)
DF = Dom("degrees of freedom", lo=0.05, specials=(1.0, 2.0, 0.5), typical=(0.2, 30.0), big=1e8, tiny=False)
SCALE = Dom("scale", lo=0.0, specials=(1.0,), typical=(0.2, 3.0), big=1e4)
ORDER = Dom("order", lo=-0.5, hi=4.5, specials=(0.0, 1.0, 2.0, 3.0), typical=(0.0, 4.0), big=10.0,
            tiny=False, integer=True)
COUNT = Dom("count", lo=-1.5, hi=60.0, specials=(0.0, 1.0, 2.0, -1.0), typical=(-1.0, 12.0), big=50.0,
            tiny=False, integer=True)
BINARY = Dom("bernoulli outcome", lo=-1.5, hi=2.5, specials=(0.0, 1.0), typical=(-1.0, 2.0), big=10.0,
             tiny=False, integer=True)
INT_LOC = Dom("integer loc", lo=-3.5, hi=3.5, specials=(0.0, 1.0), typical=(-2.0, 2.0), big=10.0,
              tiny=False, integer=True)


def _elementwise(name, doms, diff=None, ties=True, **kw):
    """A SciPy ufunc (or distribution method) on broadcast-compatible arrays, one per domain in
    `doms` (the trailing ones sometimes left out, down to `kw.pop('min_args')`), differentiating
    the arrays at the indices `diff` (all of them by default: shape parameters without a
    derivative are left out)."""
    min_args = kw.pop("min_args", len(doms))

    def draw(data, rng):
        k = data.draw(st.integers(min_args, len(doms)), label="arguments") if min_args < len(doms) else len(doms)
        shapes = O.broadcast_pair(data, num=k)
        arrays = [sample(d, rng, s, data.draw(MODES, label=f"mode{i}"))
                  for i, (d, s) in enumerate(zip(doms, shapes))]
        slots = [i for i in (range(k) if diff is None else diff) if i < k]
        if ties:
            arrays = tie_up(data, rng, arrays, slots, {i: doms[i] for i in slots})
        return Case(arrays, lambda fn, *xs: fn(*xs), tuple(slots), note=f"{name} ({k} arguments)")
    return spec(name, draw, **kw)


def _draw_logsumexp(name):
    def draw(data, rng):
        shape = data.draw(O.shapes(max_dims=3, max_side=3), label="shape")
        kw = {"axis": O.draw_axis(data, len(shape))}
        if kw["axis"] == () and 0 in shape:
            # (SciPy 1.17 reduces a zero-size array over everything for axis=(), where for any
            # other array, as tracegrad for all, axis=() reduces nothing)
            kw["axis"] = None
        if name.endswith("logsumexp"):
            kw["keepdims"] = data.draw(st.booleans(), label="keepdims")
            kw["return_sign"] = data.draw(st.booleans(), label="return_sign")
        x = sample(REAL, rng, shape, data.draw(MODES, label="mode"))
        if name.endswith("logsumexp") and data.draw(st.booleans(), label="b"):
            # weights: of either sign with return_sign (else a negative sum is NaN, as SciPy's)
            b = sample(LINEAR if kw["return_sign"] else NONNEG, rng, shape, data.draw(MODES, label="mode b"))
            return Case([x, b], lambda fn, x, b: fn(x, b=b, **kw), (0, 1), note=f"{name} {kw} b",
                        extra=_kw(kw))
        return Case([x], lambda fn, x: fn(x, **kw), (0,), note=f"{name} {kw}", extra=_kw(kw))
    return draw


def _logsumexp_check(got, want, case):
    """As SciPy, except where SciPy's value is NaN from inf * 0 (a zero weight on a term whose exp
    overflows: its max excludes zero weights, its exp does not): there the sum of the weighted
    terms, SciPy's value with the zero-weight terms at -inf (for all-zero weights: -inf)."""
    if len(case.arrays) == 2:
        x, b = case.arrays
        masked = quiet_call(case.call, REGISTRY["scipy.special.logsumexp"][0], np.where(b == 0, -inf, x), b)
        want = tuple(np.where(np.isnan(w) & ~np.isnan(m), m, w) for w, m in
                     zip(*(v if isinstance(v, tuple) else (v,) for v in (want, masked))))
        want = want if isinstance(got, tuple) else want[0]
    _same_value(got, want, 1e-9, 1e-9, "")


def _softmax_check(got, want, case):
    """As SciPy, except along an axis holding a non-finite value: SciPy's is NaN for the whole
    group (inf - inf in its shift), tracegrad's exp(log_softmax) NaN only where x is (0 beside
    +inf, as JAX's)."""
    x = case.arrays[0]
    axis = case.extra.kwargs.get("axis")
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(np.sum(x, axis=axis, keepdims=True)) if x.size else np.zeros(x.shape, bool)
    keep = ~np.broadcast_to(bad, x.shape)
    _same_value(np.asarray(got)[keep], np.asarray(want)[keep], 1e-9, 1e-9, "")


def _draw_convolve(data, rng):
    nd = data.draw(st.integers(1, 2), label="ndim")
    s1 = tuple(data.draw(st.integers(0, 4), label="side") for _ in range(nd))
    s2 = tuple(data.draw(st.integers(0, 4), label="side") for _ in range(nd))
    mode = data.draw(st.sampled_from(["full", "same", "valid"]), label="mode")
    a = sample(LINEAR, rng, s1, data.draw(MODES, label="mode a"))
    b = sample(LINEAR, rng, s2, data.draw(MODES, label="mode b"))
    return Case([a, b], lambda fn, a, b: fn(a, b, mode=mode), (0, 1), note=f"convolve {mode}")


def _draw_polygamma(data, rng):
    sn, sx = O.broadcast_pair(data)
    n = sample(ORDER, rng, sn, data.draw(MODES, label="mode n"))
    x = sample(NOT_A_POLE, rng, sx, data.draw(MODES, label="mode x"))
    return Case([n, x], lambda fn, n, x: fn(n, x), (1,), note="polygamma")


# (SciPy raises for variances below ~2e-10 of the largest: a traced function cannot raise on
# values, and tracegrad documents that cov must be positive definite)
VARIANCE = Dom("variance", lo=1e-3, specials=(1.0,), typical=(0.2, 3.0), big=1e4, tiny=False)


def _draw_mvn(data, rng):
    """x (..., d), mean (d,), cov: a positive definite matrix, its diagonal, or a scalar."""
    d = data.draw(st.integers(1, 3), label="d")
    batch = _batch(data)
    x = sample(LINEAR, rng, batch + (d,), data.draw(MODES, label="mode x"))
    mean = sample(LINEAR, rng, (d,), data.draw(MODES, label="mode mean"))
    form = data.draw(st.sampled_from(["matrix", "matrix", "diagonal", "scalar"]), label="cov")
    if form == "matrix":
        cov, _ = _matrices(data, rng, d, (), kinds=["generic", "identity", "orthogonal", "repeated"],
                           spd=True)
    elif form == "diagonal":
        cov = sample(VARIANCE, rng, (d,), data.draw(MODES, label="mode cov"))
    else:
        cov = sample(VARIANCE, rng, (), data.draw(MODES, label="mode cov"))
    return Case([x, mean, cov], lambda fn, x, m, c: fn(x, m, c), (0, 1, 2), note=f"mvn cov {form}")


def _draw_dirichlet(data, rng):
    """x: points of the simplex (k components, or k - 1 with the last implied), on the first axis,
    with a batch after it; alpha (k,). With all k components x cannot move off the simplex: only
    alpha is differentiated."""
    k = data.draw(st.integers(2, 4), label="k")
    batch = _batch(data, 1)
    alpha = sample(SHAPE, rng, (k,), data.draw(MODES, label="mode alpha"))
    n = int(np.prod(batch, dtype=np.int64))
    x = rng.dirichlet(np.full(k, data.draw(st.sampled_from([0.5, 1.0, 5.0]), label="spread")), max(n, 1))
    x = np.maximum(x, 1e-12)
    x = (x / x.sum(axis=1, keepdims=True)).T[:, :n].reshape((k,) + batch)
    implied = data.draw(st.booleans(), label="k - 1 components")
    if implied:
        x = x[:-1]
    return Case([x, alpha], lambda fn, x, a: fn(x, a), (0, 1) if implied else (1,),
                note=f"dirichlet k={k} implied={implied}")


def _damped(y, t, k, c):
    return np.stack([y[1], -k * y[0] - c * y[1]])


def _odeint_call(atol):
    """odeint of the damped oscillator y'' = -k y - c y'; as the reference, its exact solution
    (the matrix exponential: LSODA's own error would swamp the finite differences)."""
    def call(fn, y0, t, k, c):
        if fn is REGISTRY["scipy.integrate.odeint"][0]:
            a = np.array([[0.0, 1.0], [-k, -c]])
            return np.stack([scipy_linalg.expm((ti - t[0]) * a) @ y0 for ti in t])
        return fn(_damped, y0, t, args=(k, c), rtol=1e-12, atol=atol)
    return call


def _draw_odeint(data, rng):
    n = data.draw(st.integers(1, 4), label="points")
    t = np.cumsum(np.concatenate([[rng.uniform(-1.0, 1.0)], rng.uniform(0.2, 1.0, n - 1)]))
    y0 = sample(LINEAR, rng, (2,), data.draw(MODES, label="mode y0"))
    k = np.float64(rng.uniform(0.5, 4.0))
    c = np.float64(rng.choice([0.0, rng.uniform(0.0, 1.0)]))
    # atol on the scale the checks probe (the engine's directions: |y0_i|, or 1 where y0_i == 0):
    # an absolute 1e-12 leaves tiny solutions (|y0| ~ 1e-19) ~1e-6 off, and one relative to a
    # tiny y0 beside an exact 0 leaves the second derivatives along the O(1) direction there
    # ~1e-5 off (both shrink with the tolerance: the adaptive solver's accuracy, not a rule's)
    atol = 1e-12 * float(np.max(np.where(np.abs(y0) > 1e-300, np.abs(y0), 1.0)))
    return Case([y0, t, k, c], _odeint_call(atol), (0, 1, 2, 3), note=f"odeint atol={atol:.3g}")


def _stats(dist, methods, doms, shape_params=(), min_args=None, diff=None, **kw):
    """Specs for the methods of a scipy.stats distribution: doms for (x, *parameters, loc, scale);
    a cdf is not differentiated in the shape parameters (positions `shape_params`: no closed form,
    tracegrad raises there rather than return a silent zero)."""
    out = []
    for m in methods:
        cdf = m in ("cdf", "sf", "logcdf", "logsf")
        d = diff or [i for i in range(len(doms)) if not (cdf and i in shape_params)]
        out.append(_elementwise(f"scipy.stats.{dist}.{m}", doms, diff=d,
                                min_args=min_args or len(doms), **kw))
    return out


_SCIPY = [
    # scipy.special: ufuncs
    *[_elementwise("scipy.special." + n, [d]) for n, d in (
        ("gammaln", NOT_A_POLE), ("psi", NOT_A_POLE), ("gamma", GAMMA_ARG), ("erf", REAL),
        ("erfc", REAL), ("erfinv", UNIT), ("log_ndtr", REAL), ("ndtr", REAL), ("expit", REAL),
        ("logit", OPEN_UNIT), ("i0", HYP), ("i1", HYP), ("i0e", REAL), ("i1e", REAL),
        ("entr", REAL))],
    _elementwise("scipy.special.xlogy", [REAL, NONNEG]),
    _elementwise("scipy.special.xlog1py", [REAL, LOG1P]),
    _elementwise("scipy.special.betaln", [SHAPE, SHAPE]),
    # incomplete gamma and beta: derivatives in x only (none in the shape parameters)
    _elementwise("scipy.special.gammainc", [replace(SHAPE, big=50.0), NONNEG], diff=(1,)),
    _elementwise("scipy.special.gammaincc", [replace(SHAPE, big=50.0), NONNEG], diff=(1,)),
    _elementwise("scipy.special.betainc", [replace(SHAPE, big=50.0), replace(SHAPE, big=50.0), CLOSED_UNIT],
                 diff=(2,)),
    spec("scipy.special.polygamma", _draw_polygamma),
    # scipy.special: Python functions
    spec("scipy.special.logsumexp", _draw_logsumexp("logsumexp"), atol=1e-9, empty_quirks="raises",
         check=_logsumexp_check),
    spec("scipy.special.softmax", _draw_logsumexp("softmax"), atol=1e-9, empty_quirks="raises",
         check=_softmax_check),
    spec("scipy.special.log_softmax", _draw_logsumexp("log_softmax"), atol=1e-9, empty_quirks="raises"),
    spec("scipy.signal.convolve", _draw_convolve, atol=1e-9, empty_quirks="any"),
    spec("scipy.integrate.odeint", _draw_odeint, forward=False, rtol=1e-8, atol=1e-9, examples=0.1),
    # scipy.stats: (x, *shape parameters, loc, scale)
    *_stats("norm", ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"), [REAL, REAL, SCALE], min_args=1),
    *_stats("t", ("logpdf", "pdf"), [REAL, DF, REAL, SCALE], shape_params=(1,), min_args=2),
    # (SciPy's stdtr for df == 1 is up to ~6e-10 off next to z = 0, |z| < 1e-7; tracegrad's
    # series there is exact)
    *_stats("t", ("cdf",), [REAL, DF, REAL, SCALE], shape_params=(1,), min_args=2, atol=2e-9),
    *_stats("beta", ("logpdf", "pdf", "cdf"),
            [Dom("beta x", specials=(0.0, 1.0, 0.5), typical=(-0.2, 1.2), big=10.0), SHAPE, SHAPE, REAL, SCALE],
            shape_params=(1, 2), min_args=3),
    *_stats("gamma", ("logpdf", "pdf", "cdf"), [Dom("gamma x", specials=(0.0, 1.0), typical=(-0.5, 8.0)),
                                                SHAPE, REAL, SCALE], shape_params=(1,), min_args=2),
    *_stats("poisson", ("logpmf", "pmf", "cdf"), [COUNT, replace(SCALE, typical=(0.1, 20.0), big=1e3), INT_LOC],
            min_args=2, diff=(1,)),
    *_stats("bernoulli", ("logpmf", "pmf", "cdf"), [BINARY, CLOSED_UNIT, INT_LOC], min_args=2, diff=(1,)),
    spec("scipy.stats.multivariate_normal.logpdf", _draw_mvn, rtol=1e-8, atol=1e-9),
    spec("scipy.stats.multivariate_normal.pdf", _draw_mvn, rtol=1e-8, atol=1e-9),
    spec("scipy.stats.dirichlet.logpdf", _draw_dirichlet, rtol=1e-9, atol=1e-9, empty_quirks="raises"),
    spec("scipy.stats.dirichlet.pdf", _draw_dirichlet, rtol=1e-9, atol=1e-9, empty_quirks="raises"),
]


# ---------------------------------------------------------------- the table

def _unary(name, dom, **kw):
    return spec("numpy." + name, from_op(name, [dom]), **kw)


def _binary(name, dx, dy=None, **kw):
    return spec("numpy." + name, from_op(name, [dx, dy or dx]), **kw)


def _op(name, doms=None, op_name=None, **kw):
    return spec("numpy." + name, from_op(op_name or name, doms), **kw)


_LIST = [
    # one input
    _unary("absolute", REAL, convention=_abs_conv), _unary("fabs", REAL, convention=_abs_conv),
    _unary("negative", REAL), _unary("positive", REAL), _unary("conjugate", REAL),
    _unary("real", REAL), _unary("imag", REAL), _unary("copy", REAL),
    _unary("exp", EXP), _unary("expm1", EXP), _unary("exp2", EXP2),
    _unary("log", POS), _unary("log2", POS), _unary("log10", POS), _unary("log1p", LOG1P),
    _unary("sqrt", NONNEG), _unary("cbrt", REAL), _unary("square", REAL),
    _unary("reciprocal", NONZERO),
    _unary("sin", TRIG), _unary("cos", TRIG), _unary("tan", TAN),
    _unary("arcsin", UNIT), _unary("arccos", UNIT), _unary("arctan", REAL),
    _unary("sinh", HYP), _unary("cosh", HYP), _unary("tanh", REAL),
    _unary("arcsinh", REAL), _unary("arccosh", GE1), _unary("arctanh", UNIT),
    _unary("deg2rad", REAL), _unary("rad2deg", REAL), _unary("degrees", REAL),
    _unary("radians", REAL), _unary("sinc", SINC),
    # (clip: at a triple tie a == a_min == a_max the one-sided derivatives do not bound the
    # convention, which the fuzzer checks exactly instead)
    _unary("nan_to_num", REAL), _op("clip", [REAL], convention=_clip_conv, hull=False,
                                       kinks=_clip_kinks),
    # piecewise constant: derivative 0 (finite differences of a fine staircase at large
    # magnitudes see a slope, hence no one-sided bounds)
    *[_op(n, [ROUNDING], convention=_zero_conv, hull=False)
      for n in ("sign", "floor", "ceil", "rint", "trunc", "round", "around")], _unary("isnan", REAL), _unary("isinf", REAL),
    _unary("isfinite", REAL), _unary("signbit", REAL), _unary("logical_not", REAL),
    _ints("numpy.invert"),
    # two inputs
    _binary("add", REAL), _binary("subtract", REAL), _binary("multiply", REAL),
    _binary("divide", REAL, NONZERO), _binary("power", NONNEG, EXPONENT),
    _binary("float_power", NONNEG, EXPONENT),
    _binary("maximum", REAL, convention=_minmax_conv(True)),
    _binary("minimum", REAL, convention=_minmax_conv(False)),
    _binary("fmax", REAL, convention=_fminmax_conv(True)),
    _binary("fmin", REAL, convention=_fminmax_conv(False)),
    _binary("arctan2", REAL, kink_nonfinite=True), _binary("hypot", REAL, convention=_hypot_conv),
    _binary("logaddexp", REAL), _binary("logaddexp2", REAL),
    _binary("remainder", MOD_X, MOD_Y), _binary("fmod", MOD_X, MOD_Y), _binary("divmod", MOD_X, MOD_Y),
    _op("where", [REAL]), _binary("floor_divide", MOD_X, MOD_Y, convention=_zero_conv, hull=False),
    *[_binary(n, REAL) for n in ("equal", "not_equal", "less", "less_equal", "greater",
                                 "greater_equal", "logical_and", "logical_or", "logical_xor")],
    _ints("numpy.bitwise_and"), _ints("numpy.bitwise_or"), _ints("numpy.bitwise_xor"),
    spec("numpy.isclose", _draw_isclose), spec("numpy.allclose", _draw_isclose),
    # reductions
    _op("sum", [REAL], rtol=1e-9, atol=1e-9), _op("mean", [REAL], atol=1e-9),
    _op("prod", [PROD], atol=1e-9),
    _op("max", [REAL], convention=_reduce_conv(True)), _op("amax", [REAL], convention=_reduce_conv(True)),
    _op("min", [REAL], convention=_reduce_conv(False)), _op("amin", [REAL], convention=_reduce_conv(False)),
    _op("ptp", [REAL], convention=_reduce_conv(True, ptp=True)),
    _op("var", [LINEAR], atol=1e-9), _op("std", [LINEAR], atol=1e-9, kink_nonfinite=True),
    _op("average", [LINEAR, Dom("weights", lo=0.0, typical=(0.5, 2.0), big=1e3)], atol=1e-9),
    _op("argmax", [REAL]), _op("argmin", [REAL]), _op("all", [REAL]), _op("any", [REAL]),
    _op("trace", [LINEAR], atol=1e-9),
    # scans, sorting
    _op("cumsum", [LINEAR], atol=1e-9), _op("cumprod", [PROD], atol=1e-9),
    _op("diff", [LINEAR]), _op("ediff1d", [LINEAR]),
    _op("sort", [REAL], convention=_sort_conv, kinks=_sort_kinks, hull=False),
    spec("numpy.argsort", from_op("argsort", [REAL]), check=_op_check(O._check_argsort)),
    spec("numpy.partition", from_op("partition", [REAL]), check=_op_check(O._check_partition, values=True),
         convention=_sort_conv, kinks=_sort_kinks, hull=False),
    spec("numpy.argpartition", from_op("argpartition", [REAL]),
         check=_op_check(O._check_argpartition)),
    # products
    *[_op(n, [LINEAR], atol=1e-9) for n in ("matmul", "dot", "inner", "outer", "vdot", "einsum",
                                            "tensordot", "kron", "cross")],
    # shapes and structure (linear: any values)
    *[_op(n, [LINEAR]) for n in (
        "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "rollaxis", "expand_dims",
        "squeeze", "broadcast_to", "atleast_1d", "atleast_2d", "atleast_3d", "concatenate",
        "stack", "hstack", "vstack", "column_stack", "flip", "fliplr", "flipud", "rot90", "roll",
        "tile", "repeat", "append", "pad", "split", "array_split", "hsplit", "vsplit", "dsplit",
        "diag", "diagflat", "diagonal", "tril", "triu", "take", "take_along_axis", "select",
        "asarray", "array", "zeros_like", "ones_like", "full", "full_like",
        "linspace", "shape", "ndim", "size")],
    # NumPy's empty_like is uninitialised memory (tracegrad's is zeros): shapes and dtypes only
    _op("empty_like", [LINEAR], values=False, grad=False),
    # numpy.linalg
    spec("numpy.linalg.det", _square_case(lambda fn, a: fn(a)), rtol=1e-7, atol=1e-9),
    spec("numpy.linalg.slogdet", _square_case(lambda fn, a: fn(a)), check=_slogdet_check),
    spec("numpy.linalg.inv", _square_case(lambda fn, a: fn(a)), rtol=1e-6, atol=1e-9,
         unstable=_numerically_singular),
    spec("numpy.linalg.solve", _draw_solve, rtol=1e-6, atol=1e-9, unstable=_numerically_singular),
    spec("numpy.linalg.cholesky", _square_case(lambda fn, a, upper=False: fn(a, upper=upper), spd=True,
                                               extra=st.sampled_from([{}, {"upper": True}])),
         rtol=1e-7, atol=1e-9),
    spec("numpy.linalg.eigh", _square_case(lambda fn, a, UPLO="L": tuple(fn(a, UPLO=UPLO)),
                                           symmetric=True,
                                           extra=st.sampled_from([{}, {"UPLO": "U"}, {"UPLO": "L"}])),
         kink_nonfinite=True, rtol=1e-7, atol=1e-9, kinks=_eigh_kinks(True), hull=False,
         align=_align_eigh),
    spec("numpy.linalg.eigvalsh", _square_case(lambda fn, a, UPLO="L": fn(a, UPLO=UPLO), symmetric=True,
                                               extra=st.sampled_from([{}, {"UPLO": "U"}])),
         kink_nonfinite=True, rtol=1e-7, atol=1e-9, kinks=_eigh_kinks(False), hull=False),
    spec("numpy.linalg.svd", _draw_svd, kink_nonfinite=True, rtol=1e-7, atol=1e-9,
         kinks=_svd_kinks, hull=False, align=_align_svd),
    spec("numpy.linalg.svdvals", _draw_rect(lambda fn, a: fn(a)), kink_nonfinite=True, atol=1e-9,
         kinks=_svdvals_kinks, hull=False),
    spec("numpy.linalg.pinv", _draw_rect(lambda fn, a: fn(a)), kink_nonfinite=True, rtol=1e-6,
         atol=1e-9, hull=False),
    spec("numpy.linalg.matrix_power", _draw_matrix_power, rtol=1e-7, atol=1e-9,
         unstable=lambda case: case.extra.kwargs["p"] < 0 and _numerically_singular(case)),
    spec("numpy.linalg.multi_dot", _draw_multi_dot, atol=1e-9),
    spec("numpy.linalg.norm", _draw_norm, kink_nonfinite=True, rtol=1e-8, atol=1e-9,
         kinks=_spectral_kinks, hull=False),
    spec("numpy.linalg.vector_norm", _draw_vector_norm, kink_nonfinite=True, rtol=1e-8, atol=1e-9,
         hull=False),
    spec("numpy.linalg.matrix_norm", _draw_matrix_norm, kink_nonfinite=True, rtol=1e-8, atol=1e-9,
         kinks=_spectral_kinks, hull=False),
    spec("numpy.linalg.matmul", _draw_linalg_1d_pair("matmul"), atol=1e-9),
    spec("numpy.linalg.outer", _draw_linalg_1d_pair("outer")),
    spec("numpy.linalg.cross", _draw_linalg_1d_pair("cross"), atol=1e-9),
    spec("numpy.linalg.tensordot", _draw_linalg_1d_pair("tensordot"), atol=1e-9),
    spec("numpy.linalg.diagonal", _draw_linalg_one("diagonal")),
    spec("numpy.linalg.trace", _draw_linalg_one("trace"), atol=1e-9),
    spec("numpy.linalg.matrix_transpose", _draw_linalg_one("matrix_transpose")),
]

_LIST += _SCIPY
SPECS = {s.name: s for s in _LIST}
assert len(SPECS) == len(_LIST), "duplicate fuzz specs"
