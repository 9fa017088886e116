"""`tracegrad.scipy.integrate.odeint`: a differentiable ODE solver with SciPy's signature.

Solver: adaptive Dormand-Prince 5(4) (the 5th-order solution is kept, the embedded 4th-order one
estimates the error; FSAL), one `tg.while_loop` per output interval inside a `tg.scan` over the
output times. Each interval is stepped to exactly its end (the last step is shortened), so no
dense-output interpolation is needed. A step is accepted when the RMS of
err / (atol + rtol * max(|y|, |y_new|)) is at most 1; the next step is
h * clip(0.9 * ratio^(-1/5), 0.2, 10). The first step comes from Hairer's heuristic
(Hairer, Norsett & Wanner, Solving ODEs I, II.4). Decreasing `t` is integrated in reversed time.
An interval that needs more than `mxstep` steps gives NaN for that output and all later ones.

Gradient (reverse mode): the adjoint method through `tg.custom_vjp`. Between consecutive output
times, going backwards, the augmented system
    y' = f(y, t),   a' = -a . df/dy,   (t0_bar)' = -a . df/dt,   (args_bar)' = -a . df/dargs
is solved by the same integrator (in reversed time) from (y(t_i), a, t0_bar, args_bar); the
cotangent g_i of output i is added to a at t_i, and output time t_i's own cotangent is
g_i . f(y_i, t_i). t_0's is -a(t_0) . f(y_0, t_0), which (since d(a . f)/dt = a . df/dt along the
solution) is minus the sum of the others plus the integral t0_bar accumulates.
The vector-Jacobian products a . df come from `tg.vjp` of the user's `func`. Parameters must reach
`func` through `args` to get adjoint gradients; values it closes over are differentiated through
the solver's own steps instead.

Outside a trace, odeint is scipy.integrate.odeint (LSODA).
"""
from __future__ import annotations

import numpy as np
import scipy.integrate as _si

import tracegrad as _tg

from .. import ops
from ..numpy._dispatch import has_tracer
from ..numpy.indexing import take as _take
from ..pytree import tree_flatten, tree_leaves, tree_map, tree_unflatten

# Dormand-Prince 5(4) tableau
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((),
      (1 / 5,),
      (3 / 40, 9 / 40),
      (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4))

_DEFAULT_TOL = 1.49012e-8          # SciPy's odeint default rtol and atol
_DEFAULT_MXSTEP = 10_000           # LSODA's is 500; an explicit 5th-order method takes more steps

_UNSUPPORTED = {"Dfun": None, "col_deriv": 0, "full_output": 0, "ml": None, "mu": None,
                "tcrit": None, "h0": 0.0, "hmin": 0.0, "ixpr": 0, "mxhnil": 0, "mxordn": 12,
                "mxords": 5, "printmessg": 0}


def odeint(func, y0, t, args=(), Dfun=None, col_deriv=0, full_output=0, ml=None, mu=None,
           rtol=None, atol=None, tcrit=None, h0=0.0, hmax=0.0, hmin=0.0, ixpr=0, mxstep=0,
           mxhnil=0, mxordn=12, mxords=5, printmessg=0, tfirst=False):
    """Integrate y' = func(y, t, *args) from y(t[0]) = y0; returns y at every t, shape (len(t), *y0.shape).

    Traced: rtol, atol (default 1.49012e-8), mxstep (steps per output interval; 0: 10,000),
    hmax (0: unbounded) and tfirst are honoured; LSODA's other options raise."""
    given = dict(Dfun=Dfun, col_deriv=col_deriv, full_output=full_output, ml=ml, mu=mu,
                 tcrit=tcrit, h0=h0, hmin=hmin, ixpr=ixpr, mxhnil=mxhnil, mxordn=mxordn,
                 mxords=mxords, printmessg=printmessg)
    if not isinstance(args, tuple):
        args = (args,)
    if not (has_tracer((y0, t)) or has_tracer(args)):
        return _si.odeint(func, y0, t, args=args, rtol=rtol, atol=atol, hmax=hmax,
                          mxstep=mxstep, tfirst=tfirst, **given)
    bad = [k for k, v in given.items() if v is not _UNSUPPORTED[k] and v != _UNSUPPORTED[k]]
    if bad:
        raise NotImplementedError(f"odeint: argument(s) {bad} are not supported on traced values "
                                  f"(LSODA options; the traced solver is Dormand-Prince)")
    f = (lambda y, s, *a: func(s, y, *a)) if tfirst else func
    rtol = _DEFAULT_TOL if rtol is None else float(rtol)
    atol = _DEFAULT_TOL if atol is None else float(atol)
    opts = (rtol, atol, int(mxstep) or _DEFAULT_MXSTEP, float(hmax) or np.inf)
    y0 = ops.float_operand(ops.as_operand(y0))
    t = ops.as_dtype(ops.as_operand(t), ops.dtype_of(y0))
    args = tuple(ops.float_operand(ops.as_operand(a)) for a in args)
    return _odeint_adjoint(f, opts)(y0, t, *args)


def _odeint_adjoint(f, opts):
    @_tg.custom_vjp
    def solve(y0, ts, *args):
        return _solve(lambda y, s: f(y, s, *args), y0, ts, opts)

    def fwd(y0, ts, *args):
        ys = solve(y0, ts, *args)
        return ys, (ys, ts, args)

    def bwd(res, g):
        ys, ts, args = res
        n = ops.shape_of(ts)[0]

        def aug(state, s):
            y, a, _, _ = state
            dy, pullback = _tg.vjp(lambda y_, s_, *args_: f(y_, s_, *args_), y, s, *args)
            ct = pullback(a)
            return (dy, ops.neg(ct[0]), ops.neg(ct[1]), tuple(ops.neg(c) for c in ct[2:]))

        def row(x, i):
            # (x[i] would not do: the cotangent g is a NumPy array when it is a constant of an
            # outer trace, e.g. differentiating the pullback again, and i is traced)
            return _take(x, i, axis=0)

        def step_back(carry, i):
            a, t0_bar, args_bar = carry
            yi, ti, gi = row(ys, i), row(ts, i), row(g, i)
            t_bar = _dot(f(yi, ti, *args), gi)
            out = _solve(aug, (yi, a, t0_bar, args_bar), _pair(ti, row(ts, i - 1)), opts)
            _, a, t0_bar, args_bar = tree_map(lambda v: v[1], out)
            return (ops.add(a, row(g, i - 1)), ops.sub(t0_bar, t_bar), args_bar), t_bar

        zero_t = ops.zeros_like(ts[0])
        init = (g[n - 1], zero_t, tuple(ops.zeros_like(a) for a in args))
        idx = np.arange(n - 1, 0, -1)
        (a0, t0_bar, args_bar), rev_t_bars = _tg.scan(step_back, init, idx)
        ts_bar = ops.concatenate([ops.reshape(t0_bar, (1,)), rev_t_bars[::-1]], 0)
        return (a0, ts_bar) + tuple(args_bar)

    solve.defvjp(fwd, bwd)
    return solve


def _pair(a, b):
    return ops.stack([a, b], 0)


def _dot(u, v):
    return ops.reduce_sum(ops.mul(u, v), tuple(range(ops.ndim_of(u))))


# ---------------------------------------------------------------- the integrator (pytrees of arrays)

def _axpy(y, hs, ks):
    """y + sum_i hs[i] * ks[i] over pytrees (hs: scalars, zero coefficients skipped)."""
    out = y
    for c, k in zip(hs, ks):
        if isinstance(c, float) and c == 0.0:
            continue
        out = tree_map(lambda o, kk: o + c * kk, out, k)
    return out


def _rms(tree):
    leaves = tree_leaves(tree)
    total = sum(np.sum(l * l) for l in leaves)
    size = sum(int(np.prod(ops.shape_of(l))) for l in leaves)
    return np.sqrt(total / max(size, 1))


def _scaled(tree, y_a, y_b, rtol, atol):
    return tree_map(lambda e, a, b: e / (atol + rtol * np.maximum(np.abs(a), np.abs(b))), tree, y_a, y_b)


def _initial_step(fn, t0, y0, f0, rtol, atol):
    scale = lambda tree: tree_map(lambda v, y: v / (atol + rtol * np.abs(y)), tree, y0)
    d0, d1 = _rms(scale(y0)), _rms(scale(f0))
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.maximum(d1, 1e-300))
    y1 = _axpy(y0, (h0,), (f0,))
    f1 = fn(y1, t0 + h0)
    d2 = _rms(scale(tree_map(lambda a, b: a - b, f1, f0))) / h0
    big = np.maximum(d1, d2)
    h1 = np.where(big <= 1e-15, np.maximum(1e-6, h0 * 1e-3), (0.01 / np.maximum(big, 1e-300)) ** 0.2)
    return np.minimum(100 * h0, h1)


def _dopri_step(fn, y, f0, t, h):
    ks = [f0]
    for i in range(1, 7):
        yi = _axpy(y, tuple(h * a for a in _A[i]), ks)
        ks.append(fn(yi, t + _C[i] * h))
    y5 = _axpy(y, tuple(h * b for b in _B5), ks)
    err = _axpy(tree_map(np.zeros_like, y), tuple(h * e for e in _E), ks)
    return y5, ks[6], err


def _solve(func, y0, ts, opts):
    """y at every ts (a pytree of arrays, each stacked over ts); ts monotonic, either direction."""
    rtol, atol, mxstep, hmax = opts
    direction = np.where(ts[-1] >= ts[0], 1.0, -1.0).astype(ops.dtype_of(ts))
    fn = lambda y, s: tree_map(lambda v: v * direction, func(y, s * direction))
    ss = ts * direction                       # increasing
    s0 = ss[0]
    f0 = fn(y0, s0)
    h = np.minimum(_initial_step(fn, s0, y0, f0, rtol, atol), hmax)
    leaves, tree = tree_flatten(y0)
    nan = np.asarray(np.nan, ops.dtype_of(ts))

    def interval(carry, target):
        y, f, s, h, ok = carry

        def cond(st):
            i, y, f, s, h = st
            return (s < target) & (i < mxstep)

        def body(st):
            i, y, f, s, h = st
            last = h >= target - s
            step = np.where(last, target - s, h)
            y_new, f_new, err = _dopri_step(fn, y, f, s, step)
            ratio = _rms(_scaled(err, y, y_new, rtol, atol))
            accept = ratio <= 1.0
            grow = np.clip(0.9 * np.maximum(ratio, 1e-10) ** -0.2, 0.2, 10.0)
            s_new = np.where(last, target, s + step)
            pick = lambda a, b: tree_map(lambda u, v: np.where(accept, u, v), a, b)
            return (i + 1, pick(y_new, y), pick(f_new, f), np.where(accept, s_new, s),
                    np.minimum(step * grow, hmax))

        _, y, f, s_end, h = _tg.while_loop(cond, body, (0, y, f, s, h))
        ok = ok & (s_end >= target)
        y_out = tree_map(lambda v: np.where(ok, v, nan), y)
        return (y, f, s_end, h, ok), y_out

    _, ys = _tg.scan(interval, (y0, f0, s0, h, np.asarray(True)), ss[1:])
    first = tree_map(lambda v: ops.reshape(v, (1,) + tuple(ops.shape_of(v))), y0)
    return tree_map(lambda a, b: ops.concatenate([a, b], 0), first, ys)


__all__ = ["odeint"]
