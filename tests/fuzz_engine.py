"""The derivative fuzzer's checking engine: one case (a call and its concrete inputs) is checked
for values against NumPy and for first and second derivatives against central finite differences
of NumPy itself, in float64 (tests/test_fuzz_derivatives.py drives it; tests/fuzz_specs.py says,
per registered function, how to draw cases).

Finite differences, per output element, along a direction d scaled to the inputs' magnitudes
(d_i = r_i * max(|x_i|, tiny), so steps stay relative for huge and tiny values alike), with steps
h = 1e-3, 1e-3/8, ... and stencils at x + k h d, k = -3..3:
  smooth   the second-order one-sided derivatives agree (they differ by O(h^3) for a smooth
           function, by the jump at a kink) and the 5-point central derivative converged between
           two steps: the reference is that derivative, with that difference as its error;
  kink     one-sided derivatives disagree at every step: the AD derivative must lie between them
           (a valid one-sided choice), and equal the spec's documented convention if it has one;
  undefined  the stencil leaves the domain (NaN/inf) or the estimates diverge (an infinite
           derivative): not compared.
Second derivatives use the same stencils (one-sided second-order second differences agree: C2)
along v + w and v - w, whose difference is 4 v^T H w.

AD, in each mode ("jit": traced, on the tier the test runs on, "eager"): forward (jvp, elementwise against
the finite differences), reverse (<vjp(u), v> against <u, jvp(v)>), and second order
forward-over-forward (elementwise), forward-over-reverse, reverse-over-reverse and
reverse-over-forward (each against u . forward-over-forward, and all against finite differences).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tracegrad as tg

EPS = np.finfo(np.float64).eps
H0 = 1e-3
LEVELS = 6          # steps H0 / 8**k, k < LEVELS
STENCIL = (-3, -2, -1, 1, 2, 3)


class FuzzFailure(AssertionError):
    pass


@dataclass
class Case:
    """One concrete call: `call(fn, *arrays)` with `fn` NumPy's function or tracegrad's."""
    arrays: list
    call: Callable
    diff: tuple = ()            # indices of the arrays to differentiate (float64 ones)
    note: str = ""
    extra: object = None        # whatever the spec's convention / check needs (e.g. kwargs)
    grad_call: Callable | None = None   # what derivatives are checked on, if not `call` (e.g. a
                                        # partition sorted: NumPy's order within sides differs)

    def describe(self):
        parts = []
        for a in self.arrays:
            a = np.asarray(a)
            parts.append(f"{a.dtype}{list(a.shape)}={np.array2string(a, precision=17, threshold=64)}"
                         .replace("\n", " "))
        return f"{self.note} args: " + "; ".join(parts)


def quiet(fn, *args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


# (Functions given to tracegrad close over what they use and nothing more: a trace's cache key walks
# a function's environment, and a bound method of Fuzz or a closure over a spec would walk the
# finite differences, the spec table and the registry behind them at every call.)

def _traced(impl, call):
    return lambda *xs: call(impl, *xs)


def _differentiable(impl, call, arrays, diff, float_out):
    """tracegrad's side of a case as a function of its differentiable arrays (float outputs only)."""
    def G(*xs):
        full = list(arrays)
        for i, x in zip(diff, xs):
            full[i] = x
        leaves, _ = tg.tree_flatten(call(impl, *full))
        return tuple(leaves[k] for k in float_out)
    return G


def _run(mode, fn, *args):
    if mode == "eager":
        with tg.eager():
            return quiet(fn, *args)
    return quiet(fn, *args)


def _leaves(out):
    leaves, tree = tg.tree_flatten(out)
    return leaves, tree


def _is_float(x):
    return np.asarray(x).dtype.kind == "f"


# ---------------------------------------------------------------- values

def _same_value(got, want, rtol, atol_scale, what):
    g_leaves, g_tree = _leaves(got)
    w_leaves, w_tree = _leaves(want)
    if len(g_leaves) != len(w_leaves) or g_tree != w_tree:
        raise FuzzFailure(f"{what}: structure {g_tree} != NumPy's {w_tree}")
    for k, (g, w) in enumerate(zip(g_leaves, w_leaves)):
        if isinstance(w, (bool, int, float, tuple)) and not isinstance(w, np.generic):
            if np.asarray(g).shape != np.asarray(w).shape or not np.array_equal(np.asarray(g), np.asarray(w)):
                if not (isinstance(w, float) and math.isnan(w) and np.isnan(g)):
                    raise FuzzFailure(f"{what}: leaf {k}: {g!r} != NumPy's {w!r}")
            continue
        g, w = np.asarray(g), np.asarray(w)
        if g.dtype != w.dtype:
            raise FuzzFailure(f"{what}: leaf {k}: dtype {g.dtype} != NumPy's {w.dtype}")
        if g.shape != w.shape:
            raise FuzzFailure(f"{what}: leaf {k}: shape {g.shape} != NumPy's {w.shape}")
        if w.dtype.kind in "fc":
            fin = np.isfinite(w)
            scale = atol_scale * max(1.0, float(np.max(np.abs(w[fin]))) if fin.any() else 1.0)
            with np.errstate(all="ignore"):
                close = np.abs(g - w) <= rtol * np.abs(w) + scale
            same = (g == w) | (np.isnan(g) & np.isnan(w))
            bad = np.where(fin, ~close, ~same)
            if bad.any():
                i = tuple(np.argwhere(bad)[0])
                raise FuzzFailure(f"{what}: leaf {k} at {i}: {g[i]!r} != NumPy's {w[i]!r}")
        elif not np.array_equal(g, w):
            i = tuple(np.argwhere(g != w)[0]) if g.ndim else ()
            raise FuzzFailure(f"{what}: leaf {k} at {i}: {g[i]!r} != NumPy's {w[i]!r}")


def _base_error(exc):
    for c in type(exc).__mro__:
        if c.__module__ == "builtins":
            return c
    return Exception


def check_values(spec, case, modes):
    """Traced results equal NumPy's (or raise the same kind of error). Returns NumPy's output, or
    None if NumPy raised."""
    if spec.unstable is not None and spec.unstable(case):
        for mode in modes:          # (a result or a LinAlgError: see FuzzSpec.unstable)
            try:
                _run(mode, tg.jit(_traced(spec.impl, case.call)), *case.arrays)
            except np.linalg.LinAlgError:
                pass
        return None
    empty = any(np.size(a) == 0 for a in case.arrays)
    if spec.empty_quirks == "any" and empty:
        return None                 # (SciPy's quirks: see FuzzSpec.empty_quirks)
    try:
        want = quiet(case.call, spec.np_fn, *case.arrays)
    except Exception as e:   # noqa: BLE001 (NumPy's error is a legitimate outcome to match)
        if spec.empty_quirks == "raises" and empty:
            return None
        for mode in modes:
            try:
                _run(mode, tg.jit(_traced(spec.impl, case.call)), *case.arrays)
            except _base_error(e):
                continue
            except Exception as e2:   # noqa: BLE001
                raise FuzzFailure(f"{mode}: NumPy raised {type(e).__name__}: {e}; tracegrad raised "
                                  f"{type(e2).__name__}: {e2}") from e2
            raise FuzzFailure(f"{mode}: NumPy raised {type(e).__name__}: {e}; tracegrad returned")
        return None
    for mode in modes:
        got = _run(mode, tg.jit(_traced(spec.impl, case.call)), *case.arrays)
        if not spec.values:
            g, w = np.asarray(got), np.asarray(want)
            if g.shape != w.shape or g.dtype != w.dtype:
                raise FuzzFailure(f"value ({mode}): {g.dtype}{list(g.shape)} != NumPy's "
                                  f"{w.dtype}{list(w.shape)}")
        elif spec.check is not None:
            try:
                spec.check(got, want, case)
            except AssertionError as e:
                raise FuzzFailure(f"value ({mode}): {e}") from None
        else:
            _same_value(got, want, spec.rtol, spec.atol, f"value ({mode})")
    if case.grad_call is not None:
        want = quiet(case.grad_call, spec.np_fn, *case.arrays)
    return want


# ---------------------------------------------------------------- finite differences

@dataclass
class Directional:
    """Finite differences along one direction, per float output leaf, per element."""
    d1: list        # first derivative where smooth (nan elsewhere)
    e1: list        # its error estimate
    kink: list      # bool: one-sided derivatives converge to different values
    lo: list        # at kinks: the smaller one-sided derivative (minus its error)
    hi: list        # ... the larger (plus its error)
    d2: list        # second derivative where C2 (nan elsewhere)
    e2: list


def _first_true(mask):
    """Index of the first True along axis 0 (len if none)."""
    any_ = mask.any(axis=0)
    return np.where(any_, np.argmax(mask, axis=0), mask.shape[0])


def _pick(stack, idx):
    """stack[idx[e], e] per element (nan where idx is out of range)."""
    n = stack.shape[0]
    safe = np.minimum(idx, n - 1)
    out = np.take_along_axis(stack, safe[None], 0)[0]
    return np.where(idx < n, out, np.nan)


def _fd(F, xs, d, base):
    """Finite differences of F (xs -> list of float64 arrays) along d, around F(xs) = base."""
    vals = []          # vals[level][k] -> list of leaves
    for level in range(LEVELS):
        h = H0 / 8 ** level
        row = {0: base}
        for k in STENCIL:
            try:
                row[k] = quiet(F, [x + (k * h) * dx for x, dx in zip(xs, d)])
            except Exception:   # noqa: BLE001 (e.g. LinAlgError off the domain): undefined there
                row[k] = [np.full(b.shape, np.nan) for b in base]
        vals.append(row)
    out = Directional([], [], [], [], [], [], [])
    hs = np.array([H0 / 8 ** level for level in range(LEVELS)])
    for j, b in enumerate(base):
        hh = hs.reshape((-1,) + (1,) * b.ndim)
        f = {k: np.stack([vals[level][k][j] for level in range(LEVELS)]) for k in (0,) + STENCIL}
        with np.errstate(all="ignore"):
            allv = np.stack([f[k] for k in f])
            fin = np.all(np.isfinite(allv), axis=0)
            mag = np.max(np.abs(allv), axis=0)
            noise1 = 8 * EPS * mag / hh
            noise2 = 32 * EPS * mag / hh ** 2
            dp2 = (-3 * f[0] + 4 * f[1] - f[2]) / (2 * hh)
            dm2 = (3 * f[0] - 4 * f[-1] + f[-2]) / (2 * hh)
            d3 = (f[1] - f[-1]) / (2 * hh)
            d5 = (-f[2] + 8 * f[1] - 8 * f[-1] + f[-2]) / (12 * hh)
            # one-sided second-order derivatives differ by O(h^3) where F is smooth
            smooth = fin & (np.abs(dp2 - dm2) <= 1e-8 * (np.abs(dp2) + np.abs(dm2)) + 50 * noise1)
            s3 = (f[1] - 2 * f[0] + f[-1]) / hh ** 2
            s5 = (-f[2] + 16 * f[1] - 30 * f[0] + 16 * f[-1] - f[-2]) / (12 * hh ** 2)
            sp = (2 * f[0] - 5 * f[1] + 4 * f[2] - f[3]) / hh ** 2
            sm = (2 * f[0] - 5 * f[-1] + 4 * f[-2] - f[-3]) / hh ** 2
            c2 = smooth & (np.abs(sp - sm) <= 1e-4 * (np.abs(sp) + np.abs(sm)) + 50 * noise2)
            # converged: smooth at two consecutive steps, and the estimates agree
            nxt = lambda a: a[1:]
            cur = lambda a: a[:-1]
            conv1 = (cur(smooth) & nxt(smooth)
                     & (np.abs(cur(d5) - nxt(d5)) <= 1e-5 * np.abs(nxt(d5)) + 50 * (cur(noise1) + nxt(noise1))))
            conv2 = (cur(c2) & nxt(c2)
                     & (np.abs(cur(s5) - nxt(s5)) <= 1e-3 * np.abs(nxt(s5)) + 50 * (cur(noise2) + nxt(noise2))))
            # a kink: at two consecutive steps, each one-sided derivative converged, and they differ
            side_ok = lambda a: (np.abs(cur(a) - nxt(a)) <= 1e-4 * np.abs(nxt(a)) + 50 * (cur(noise1) + nxt(noise1)))
            kinky = cur(fin) & nxt(fin) & ~nxt(smooth) & side_ok(dp2) & side_ok(dm2)
        i1 = _first_true(conv1)
        i2 = _first_true(conv2)
        ik = _first_true(kinky)
        d1 = _pick(cur(d5), i1)
        e1 = _pick(np.abs(cur(d5) - nxt(d5)) + 1e-3 * np.abs(cur(d5) - cur(d3)) + 50 * cur(noise1), i1)
        kink = (ik < LEVELS - 1) & ~np.isfinite(d1)
        p, m = _pick(nxt(dp2), ik), _pick(nxt(dm2), ik)
        err = _pick(np.abs(cur(dp2) - nxt(dp2)) + np.abs(cur(dm2) - nxt(dm2)) + 50 * nxt(noise1), ik)
        out.d1.append(d1)
        out.e1.append(e1)
        out.kink.append(kink)
        out.lo.append(np.minimum(p, m) - err)
        out.hi.append(np.maximum(p, m) + err)
        out.d2.append(_pick(cur(s5), i2))
        out.e2.append(_pick(np.abs(cur(s5) - nxt(s5)) + 1e-3 * np.abs(cur(s5) - cur(s3)) + 50 * cur(noise2), i2))
    return out


# ---------------------------------------------------------------- AD

def _dot(a, b):
    """<a, b>, b a direction: where b is 0 (non-finite inputs are not perturbed) a is ignored."""
    total = 0.0
    for x, y in zip(a, b):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        with np.errstate(all="ignore"):
            total += float(np.sum(np.where(y != 0, x * y, 0.0)))
    return total


def _dot_abs(a, b):
    """sum |a b| over the finite products (a scale for tolerances)."""
    total = 0.0
    for x, y in zip(a, b):
        with np.errstate(all="ignore"):
            p = np.abs(np.asarray(x, np.float64) * np.asarray(y, np.float64))
        total += float(np.sum(np.where(np.isfinite(p), p, 0.0)))
    return total


def _close(got, want, err, what, rel=1e-7):
    if got == want or (math.isnan(got) and math.isnan(want)):
        return
    if not (abs(got - want) <= 3 * err + rel * max(abs(want), abs(got)) + 1e-300):
        raise FuzzFailure(f"{what}: {got!r} != {want!r} (allowed error {3 * err + rel * abs(want):.3g})")


class Fuzz:
    """Derivative checks of one case (float64 inputs `case.diff`, float64 outputs)."""

    def __init__(self, spec, case, want, rng):
        self.spec, self.case = spec, case
        self.rng = rng
        w_leaves, _ = _leaves(want)
        self.float_out = [k for k, w in enumerate(w_leaves) if np.asarray(w).dtype == np.float64]
        self.base = [np.asarray(w_leaves[k], np.float64) for k in self.float_out]
        self.xs = [np.asarray(case.arrays[i], np.float64) for i in case.diff]

    @property
    def call(self):
        return self.case.grad_call or self.case.call

    def full(self, xs):
        arrays = list(self.case.arrays)
        for i, x in zip(self.case.diff, xs):
            arrays[i] = x
        return arrays

    # F: NumPy, the reference; G: tracegrad, for AD. Both take the differentiable arrays only.
    def F(self, xs):
        out = self.call(self.spec.np_fn, *self.full([np.asarray(x) for x in xs]))
        leaves, _ = _leaves(out)
        leaves = [np.asarray(leaves[k], np.float64) for k in self.float_out]
        if self.spec.align is not None and hasattr(self, "base"):
            leaves = self.spec.align(leaves, self.base)
        return leaves

    @property
    def G(self):
        return _differentiable(self.spec.impl, self.call, self.case.arrays, self.case.diff, self.float_out)

    def direction(self):
        out = []
        for x in self.xs:
            scale = np.where(np.isfinite(x) & (np.abs(x) > 1e-300), np.abs(x), 1.0)
            r = self.rng.uniform(0.5, 1.5, x.shape) * self.rng.choice([-1.0, 1.0], x.shape)
            out.append(np.where(np.isfinite(x), r * scale, 0.0))
        return out

    def tainted(self):
        """Output elements that depend on a non-finite input (their derivative is meaningless):
        those that turn NaN when every non-finite input is made NaN."""
        self.tainted_any = not all(np.isfinite(b).all() for b in self.base)
        if all(np.isfinite(x).all() for x in self.xs):
            return [~np.isfinite(b) for b in self.base]
        nanned = quiet(self.F, [np.where(np.isfinite(x), x, np.nan) for x in self.xs])
        self.tainted_any = True
        return [np.isnan(n) & np.isfinite(b) | ~np.isfinite(b) for n, b in zip(nanned, self.base)]

    def prepare(self):
        """Directions and finite differences; False if there is nothing to differentiate."""
        if not self.xs or not self.base:
            return False
        if all(b.size == 0 for b in self.base) or all(x.size == 0 for x in self.xs):
            self.empty = True
            return True
        self.empty = False
        self.v, self.w, z = self.direction(), self.direction(), self.direction()
        self.u = [self.rng.uniform(0.5, 1.5, b.shape) * self.rng.choice([-1.0, 1.0], b.shape)
                  for b in self.base]
        v, w = self.v, self.w
        self.fd = fd = _fd(self.F, self.xs, v, self.base)
        self.fd_p = fd_p = _fd(self.F, self.xs, [a + b for a, b in zip(v, w)], self.base)
        self.fd_m = fd_m = _fd(self.F, self.xs, [a - b for a, b in zip(v, w)], self.base)
        fd_z = _fd(self.F, self.xs, z, self.base)
        fd_vz = _fd(self.F, self.xs, [a + b for a, b in zip(v, z)], self.base)
        bad_in = self.tainted()
        known = (quiet(self.spec.kinks, self.case, self.full(self.xs)) if self.spec.kinks is not None
                 else None) or [np.zeros(b.shape, bool) for b in self.base]
        # differentiable: smooth along v, w, z and their sums, and linear in the direction (a
        # non-differentiable point can look smooth along one direction: the middle of three
        # tied values moves with the median of their directions)
        self.smooth = []
        for j in range(len(self.base)):
            ds = [f.d1[j] for f in (fd, fd_p, fd_m, fd_z, fd_vz)]
            es = [f.e1[j] for f in (fd, fd_p, fd_m, fd_z, fd_vz)]
            dv, dp, dm, dz, dvz = ds
            with np.errstate(invalid="ignore"):
                lin1 = np.abs(dp + dm - 2 * dv) <= 3 * (2 * es[0] + es[1] + es[2]) + 1e-7 * (
                    np.abs(dp) + np.abs(dm) + 2 * np.abs(dv))
                lin2 = np.abs(dvz - dv - dz) <= 3 * (es[0] + es[3] + es[4]) + 1e-7 * (
                    np.abs(dvz) + np.abs(dv) + np.abs(dz))
            finite = np.all([np.isfinite(d) for d in ds], axis=0)
            self.smooth.append(finite & lin1 & lin2 & ~bad_in[j] & ~known[j])
            fd.kink[j] &= ~bad_in[j] & ~known[j]
        self.scale_f = sum(float(np.sum(np.abs(uj * np.where(np.isfinite(b), b, 0.0))))
                           for uj, b in zip(self.u, self.base)) + 1e-300
        return True

    def run(self, modes, second=True):
        if not self.prepare():
            return
        for mode in modes:
            if self.empty:
                self._empty(mode)
                continue
            if not self.spec.forward:
                self._reverse_only(mode, second and self.spec.second)
                continue
            t, cts = self.first_order(mode)
            self.check_first(mode, t, cts)
            if second and self.spec.second:
                self.check_second(mode, *self.second_order(mode), t)

    # ---- AD (each mode runs the same transforms)

    def first_order(self, mode):
        """(jvp along v, vjp of u)."""
        _, t = _run(mode, tg.jvp, self.G, tuple(self.xs), tuple(self.v))
        _, pb = _run(mode, tg.vjp, self.G, *self.xs)
        return t, _run(mode, pb, tuple(self.u))

    def second_order(self, mode):
        """(forward-over-forward tangents, and v^T H_u w by forward-over-reverse,
        reverse-over-reverse and reverse-over-forward)."""
        G, xs, u, v, w = self.G, tuple(self.xs), tuple(self.u), tuple(self.v), tuple(self.w)

        def jvp_w(*ys):
            return tg.jvp(G, ys, w)[1]

        def vjp_u(*ys):
            return tg.vjp(G, *ys)[1](u)

        _, tt = _run(mode, tg.jvp, jvp_w, xs, v)
        _, hv = _run(mode, tg.jvp, vjp_u, xs, v)
        _, pb = _run(mode, tg.vjp, lambda *ys: sum(_tsum(c, wi) for c, wi in zip(vjp_u(*ys), w)), *xs)
        rr = _run(mode, pb, np.asarray(1.0))
        _, pb = _run(mode, tg.vjp, jvp_w, *xs)
        rf = _run(mode, pb, u)
        return tt, _dot(hv, w), _dot(rr, v), _dot(rf, v)

    def _reverse_only(self, mode, second):
        """Functions with reverse mode only (custom_vjp): <vjp(u), v> and v^T (d2 <u, F>) w by
        reverse over reverse, against finite differences, where F is smooth (C2) throughout."""
        G, xs, u, v, w = self.G, tuple(self.xs), tuple(self.u), tuple(self.v), tuple(self.w)

        def vjp_u(*ys):
            return tg.vjp(G, *ys)[1](u)

        cts = _run(mode, vjp_u, *xs)
        for c, x in zip(cts, xs):
            if np.shape(c) != x.shape:
                raise FuzzFailure(f"vjp ({mode}): cotangent shape {np.shape(c)} != input {x.shape}")
        if not all(s.all() for s in self.smooth):
            return
        fd = self.fd
        want, err = _dot(fd.d1, u), _dot_abs(u, fd.e1)
        _close(_dot(cts, v), want, err + 1e-9 * (_dot_abs(cts, v) + self.scale_f),
               f"reverse mode ({mode}): <vjp(u), v> vs finite differences of <u, F> along v")
        c2 = [np.isfinite(p) & np.isfinite(m) for p, m in zip(self.fd_p.d2, self.fd_m.d2)]
        if not second or not all(c.all() for c in c2):
            return
        _, pb = _run(mode, tg.vjp, lambda *ys: sum(_tsum(c, wi) for c, wi in zip(vjp_u(*ys), w)), *xs)
        rr = _dot(_run(mode, pb, np.asarray(1.0)), v)
        d2 = [(p - m) / 4 for p, m in zip(self.fd_p.d2, self.fd_m.d2)]
        e2 = [(p + m) / 4 for p, m in zip(self.fd_p.e2, self.fd_m.e2)]
        want = _dot(d2, u)
        err = 3 * _dot_abs(u, e2) + 1e-6 * _dot_abs(u, d2)
        _close(rr, want, err, f"reverse-over-reverse ({mode}) vs finite differences u.(d2F/dv dw)")

    def _empty(self, mode):
        """Zero-size inputs or outputs: derivatives are empty or zero, with the right shapes."""
        if not self.spec.forward:
            out, pb = _run(mode, tg.vjp, self.G, *self.xs)
            cts = _run(mode, pb, tuple(np.zeros_like(b) for b in self.base))
            for c, x in zip(cts, self.xs):
                if np.shape(c) != x.shape or np.any(np.asarray(c) != 0):
                    raise FuzzFailure(f"vjp ({mode}): a zero cotangent gave {c!r} for input {x.shape}")
            return
        zeros = [np.zeros_like(x) for x in self.xs]
        _, t = _run(mode, tg.jvp, self.G, tuple(self.xs), tuple(zeros))
        for tk, b in zip(t, self.base):
            if np.shape(tk) != b.shape:
                raise FuzzFailure(f"jvp ({mode}): tangent shape {np.shape(tk)} != output {b.shape}")
            if np.any((np.asarray(tk) != 0) & np.isfinite(b)):
                raise FuzzFailure(f"jvp ({mode}): a zero tangent gave a non-zero output tangent")
        out, pb = _run(mode, tg.vjp, self.G, *self.xs)
        cts = _run(mode, pb, tuple(np.zeros_like(b) for b in self.base))
        for c, x in zip(cts, self.xs):
            if np.shape(c) != x.shape:
                raise FuzzFailure(f"vjp ({mode}): cotangent shape {np.shape(c)} != input {x.shape}")
            # (beside an inf input a gradient may be 0 * inf = NaN: no derivative there)
            c = np.asarray(c)
            nan_ok = not all(np.isfinite(xi).all() for xi in self.xs)
            if np.any((c != 0) & ~(nan_ok & np.isnan(c))) and all(np.isfinite(b).all() for b in self.base):
                raise FuzzFailure(f"vjp ({mode}): a zero cotangent gave a non-zero gradient")

    # ---- checks

    def check_first(self, mode, t, cts):
        spec, fd, v, u = self.spec, self.fd, self.v, self.u
        t = [np.asarray(tk, np.float64) for tk in t]
        for j, (tj, b) in enumerate(zip(t, self.base)):
            if tj.shape != b.shape:
                raise FuzzFailure(f"jvp ({mode}): tangent {j} shape {tj.shape} != output {b.shape}")
            smooth = self.smooth[j]
            err = 3 * fd.e1[j] + 1e-7 * np.abs(fd.d1[j]) + 1e-300
            with np.errstate(invalid="ignore"):
                bad = smooth & ~(np.abs(tj - fd.d1[j]) <= err)
            if bad.any():
                i = tuple(int(k) for k in np.argwhere(bad)[0])
                raise FuzzFailure(f"forward mode ({mode}): output {j} at {i}: jvp {tj[i]!r}, finite "
                                  f"differences {fd.d1[j][i]!r} (error {fd.e1[j][i]:.3g})")
            kink = fd.kink[j]
            if kink.any():
                fin = np.isfinite(tj)
                if not spec.kink_nonfinite and (kink & ~fin).any():
                    i = tuple(int(k) for k in np.argwhere(kink & ~fin)[0])
                    raise FuzzFailure(f"forward mode ({mode}): output {j} at {i}: non-finite "
                                      f"derivative {tj[i]!r} at a kink (one-sided "
                                      f"{fd.lo[j][i]!r} .. {fd.hi[j][i]!r})")
                tol = 1e-7 * (np.abs(fd.lo[j]) + np.abs(fd.hi[j])) + 1e-300
                with np.errstate(invalid="ignore"):
                    outside = kink & fin & ~((tj >= fd.lo[j] - tol) & (tj <= fd.hi[j] + tol))
                outside &= spec.hull
                if outside.any():
                    i = tuple(int(k) for k in np.argwhere(outside)[0])
                    raise FuzzFailure(f"forward mode ({mode}): output {j} at {i}: at a kink the "
                                      f"derivative {tj[i]!r} is not between the one-sided ones "
                                      f"{fd.lo[j][i]!r} .. {fd.hi[j][i]!r}")
        if spec.convention is not None:
            self._convention(mode, v, t)
        # reverse mode: the transpose of forward mode
        for c, x in zip(cts, self.xs):
            if np.shape(c) != x.shape:
                raise FuzzFailure(f"vjp ({mode}): cotangent shape {np.shape(c)} != input {x.shape}")
        lhs, rhs = _dot(cts, v), _dot(u, t)
        all_smooth = all(s.all() for s in self.smooth)
        nan_ok = spec.kink_nonfinite or self.tainted_any    # (NaN leaks from undefined places)
        if np.isfinite(rhs) and (np.isfinite(lhs) or all_smooth or not nan_ok):
            _close(lhs, rhs, 1e-9 * (_dot_abs(cts, v) + _dot_abs(u, t) + self.scale_f),
                   f"reverse mode ({mode}): <vjp(u), v> vs <u, jvp(v)>")
        elif not np.isfinite(rhs) and all_smooth:
            raise FuzzFailure(f"forward mode ({mode}): a non-finite tangent where every "
                              f"derivative is defined")

    def _convention(self, mode, v, t):
        tangents = [np.zeros(np.shape(a)) if _is_float(a) else None for a in self.case.arrays]
        for i, vi in zip(self.case.diff, v):
            tangents[i] = vi
        want = quiet(self.spec.convention, self.case, self.full(self.xs), tangents)
        if want is None:
            return
        want = [np.asarray(want[k], np.float64) for k in self.float_out] \
            if isinstance(want, (list, tuple)) else [np.asarray(want, np.float64)]
        for j, (tj, wj) in enumerate(zip(t, want)):
            # (where the value is finite: NaN inputs have no convention)
            with np.errstate(invalid="ignore"):
                same = ((np.abs(tj - wj) <= 1e-9 * (np.abs(wj) + np.abs(v[0]).max(initial=0) + 1))
                        | (tj == wj) | (np.isnan(tj) & np.isnan(wj)) | ~np.isfinite(self.base[j]))
            if not same.all():
                i = tuple(int(k) for k in np.argwhere(~same)[0])
                raise FuzzFailure(f"forward mode ({mode}): output {j} at {i}: {tj[i]!r}, but the "
                                  f"documented convention gives {wj[i]!r}")

    def check_second(self, mode, tt, fr, rr, rf, t1):
        u, fd_p, fd_m = self.u, self.fd_p, self.fd_m
        tt = [np.asarray(a, np.float64) for a in tt]
        t1 = [np.asarray(a, np.float64) for a in t1]
        ff = _dot(u, tt)
        scale = _dot_abs(u, tt) + abs(fr) + 1e-6 * (self.scale_f + _dot_abs(u, t1))
        # what finite differences resolve of u.(d2F/dv dw) (the modes' rounding differs by about
        # eps |v| |w| times the largest terms of the Hessian, which can dwarf the result: with
        # |x| ~ 1e7 in logsumexp, terms ~1 cancel to 0 and rounding leaves ~eps 1e14)
        fd_err = _dot_abs(u, [np.where(np.isfinite(p + m), (p + m) / 4, 0.0)
                              for p, m in zip(fd_p.e2, fd_m.e2)])
        all_smooth = all(s.all() for s in self.smooth)
        if np.isfinite(ff):
            for name, val in (("forward-over-reverse", fr), ("reverse-over-reverse", rr),
                              ("reverse-over-forward", rf)):
                if np.isfinite(val) or all_smooth or not (self.spec.kink_nonfinite or self.tainted_any):
                    _close(val, ff, 1e-8 * scale + fd_err,
                           f"{name} ({mode}) vs forward-over-forward u.(d2F/dv dw)")
        elif all((s & np.isfinite(p) & np.isfinite(m)).all()
                 for s, p, m in zip(self.smooth, fd_p.d2, fd_m.d2)):
            raise FuzzFailure(f"second derivative ({mode}): non-finite where the function is C2 "
                              f"with finite second derivatives")
        # against finite differences, element by element where F is C2 along v + w and v - w
        for j, ttj in enumerate(tt):
            ok = self.smooth[j] & np.isfinite(fd_p.d2[j]) & np.isfinite(fd_m.d2[j])
            want = (fd_p.d2[j] - fd_m.d2[j]) / 4
            err = (fd_p.e2[j] + fd_m.e2[j]) / 4
            with np.errstate(invalid="ignore"):
                bad = ok & ~(np.abs(ttj - want) <= 3 * err + 1e-6 * np.abs(want) + 1e-300)
            if bad.any():
                i = tuple(int(k) for k in np.argwhere(bad)[0])
                raise FuzzFailure(f"second derivative ({mode}, forward-over-forward): output {j} at "
                                  f"{i}: {ttj[i]!r}, finite differences {want[i]!r} (error {err[i]:.3g})")


def _tsum(a, b):
    return (a * b).sum() if hasattr(a, "sum") else a * b
