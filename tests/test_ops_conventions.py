"""Derivatives at ties and kinks follow JAX's conventions; expected values are computed by hand.

- d|x|/dx at 0 is +1 (JAX: select(x >= 0, g, -g)); sign, floor, round... have derivative 0;
- maximum/minimum (and clip, built from them) split the derivative 1/2 : 1/2 at ties;
- fmax/fmin (JAX: where(x1 > x2 | isnan(x2), x1, x2)) give a tie to the second operand;
- reductions max/min/amax/amin/ptp share the derivative equally among the tied elements;
- logaddexp at x == y: 1/2 each, to every order (second derivative 1/4); hypot at (0, 0): 1/2 each;
- sinc at 0: derivative 0, second derivative -pi^2/3; where: only the selected side.
Each is checked in reverse mode (grad) and forward mode (jacfwd), compiled (interpreter) and eager.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from op_harness import MODES, quiet  # noqa: F401


def _run(mode, fn, *args):
    if mode == "eager":
        with tg.eager():
            return quiet(fn, *args)
    return quiet(fn, *args)


def _both_modes(f, args, argnums, want):
    """grad (reverse) and jacfwd (forward) of a scalar f equal `want` (one array per argnum)."""
    want = [np.asarray(w, np.float64) for w in want]
    for mode in MODES:
        g = _run(mode, tg.grad(f, argnums=argnums), *args)
        for gi, w in zip(g, want):
            np.testing.assert_allclose(gi, w, rtol=1e-12, atol=1e-12, err_msg=f"grad {mode}")
        for k, (i, w) in enumerate(zip(argnums, want)):
            jf = _run(mode, tg.jacfwd(f, argnums=i), *args)
            np.testing.assert_allclose(jf, w, rtol=1e-12, atol=1e-12, err_msg=f"jacfwd {mode}")


def _elementwise(fn, xs, ys):
    f = lambda x, y: tnp.sum(fn(x, y))
    return f, (np.asarray(xs, np.float64), np.asarray(ys, np.float64))


@pytest.mark.parametrize("fn", [tnp.abs, tnp.absolute, tnp.fabs, np.abs, abs],
                         ids=["tnp.abs", "tnp.absolute", "tnp.fabs", "np.abs", "builtin abs"])
def test_abs_derivative_at_zero_is_one(fn):
    x = np.array([-2.0, -0.0, 0.0, 3.0])
    _both_modes(lambda x: tnp.sum(fn(x)), (x,), (0,), [[-1.0, 1.0, 1.0, 1.0]])


@pytest.mark.parametrize("name", ["sign", "floor", "ceil", "rint", "trunc", "round"])
def test_piecewise_constant_derivative_is_zero_at_jumps(name):
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.5])
    fn = getattr(tnp, name)
    _both_modes(lambda x: tnp.sum(fn(x) * 3.0), (x,), (0,), [np.zeros(6)])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_ties(name):
    fn = getattr(tnp, name)
    f, args = _elementwise(fn, [1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    # maximum: x wins at 3, tie at 2, y wins at 1;  minimum: the other way round
    if name == "maximum":
        gx, gy = [0.0, 0.5, 1.0], [1.0, 0.5, 0.0]
    else:
        gx, gy = [1.0, 0.5, 0.0], [0.0, 0.5, 1.0]
    _both_modes(f, args, (0, 1), [gx, gy])
    # broadcasting: a scalar y collects its share from every element
    f = lambda x, y: tnp.sum(fn(x, y))
    _both_modes(f, (np.array([1.0, 2.0, 3.0]), np.array(2.0)), (0, 1), [gx, sum(gy)])


def test_relu_as_maximum_at_zero_is_half():
    _both_modes(lambda x: tnp.sum(tnp.maximum(x, 0.0)), (np.array([-1.0, 0.0, 1.0]),), (0,),
                [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_fmin_give_ties_to_second_operand(name):
    fn = getattr(tnp, name)
    f, args = _elementwise(fn, [1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    if name == "fmax":
        gx, gy = [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]
    else:
        gx, gy = [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]
    _both_modes(f, args, (0, 1), [gx, gy])
    # NaN is ignored: the derivative goes to the other operand
    f, args = _elementwise(fn, [np.nan, 1.0], [1.0, np.nan])
    _both_modes(f, args, (0, 1), [[0.0, 1.0], [1.0, 0.0]])


def test_clip_at_bounds_is_half():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    _both_modes(lambda x: tnp.sum(tnp.clip(x, -1.0, 1.0)), (x,), (0,), [[0.0, 0.5, 1.0, 0.5, 0.0]])
    # gradients reach array bounds where they are the ones selected
    lo, hi = np.full(5, -1.0), np.full(5, 1.0)
    _both_modes(lambda x, lo, hi: tnp.sum(tnp.clip(x, lo, hi)), (x, lo, hi), (0, 1, 2),
                [[0.0, 0.5, 1.0, 0.5, 0.0], [1.0, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 1.0]])


@pytest.mark.parametrize("name", ["max", "amax", "min", "amin"])
def test_reduce_extreme_shares_ties_equally(name):
    fn = getattr(tnp, name)
    big = name in ("max", "amax")
    x = np.array([1.0, 3.0, 3.0, 0.0]) if big else np.array([1.0, -3.0, -3.0, 0.0])
    _both_modes(lambda x: fn(x), (x,), (0,), [[0.0, 0.5, 0.5, 0.0]])
    # a three-way tie: a third each
    x3 = np.array([2.0, 2.0, 2.0])
    _both_modes(lambda x: fn(x), (x3,), (0,), [[1 / 3, 1 / 3, 1 / 3]])
    # along an axis, with keepdims: each row shares its own derivative among its ties
    m = np.array([[1.0, 5.0, 5.0], [4.0, 4.0, 4.0], [7.0, 0.0, 7.0]])
    if not big:
        m = -m
    w = np.array([[1.0], [2.0], [3.0]])
    want = np.array([[0.0, 0.5, 0.5], [2 / 3, 2 / 3, 2 / 3], [1.5, 0.0, 1.5]])
    _both_modes(lambda m: tnp.sum(fn(m, axis=1, keepdims=True) * w), (m,), (0,), [want])
    # over a tuple of axes
    t = np.zeros((2, 2, 2))
    t[0, 1, 0] = t[1, 1, 1] = 9.0 if big else -9.0
    want = np.zeros((2, 2, 2))
    want[:, 0, :] = 0.25            # j = 0: four zeros tie
    want[0, 1, 0] = want[1, 1, 1] = 0.5
    _both_modes(lambda t: fn(t, axis=(0, -1)).sum(), (t,), (0,), [want])


def test_ptp_ties():
    x = np.array([1.0, 3.0, 3.0, 0.0, 0.0])
    _both_modes(lambda x: tnp.ptp(x), (x,), (0,), [[0.0, 0.5, 0.5, -0.5, -0.5]])


def test_logaddexp_tie_derivatives():
    # d/dx log(e^x + e^y) = e^x / (e^x + e^y): 1/2 at a tie; second derivative s(1 - s) = 1/4
    f = lambda x, y: tnp.sum(tnp.logaddexp(x, y))
    _both_modes(f, (np.array([1.0, -2.0]), np.array([1.0, -2.0])), (0, 1), [[0.5, 0.5], [0.5, 0.5]])
    for mode in MODES:
        h = _run(mode, tg.hessian(lambda x: tnp.logaddexp(x, 1.0)), np.array(1.0))
        np.testing.assert_allclose(h, 0.25, rtol=1e-12)
        h2 = _run(mode, tg.grad(tg.grad(lambda x: tnp.logaddexp(x, 1.0))), np.array(1.0))
        np.testing.assert_allclose(h2, 0.25, rtol=1e-12)
    # logaddexp2: d/dx log2(2^x + 2^y) = 2^x / (2^x + 2^y)
    f2 = lambda x, y: tnp.sum(tnp.logaddexp2(x, y))
    _both_modes(f2, (np.array([3.0]), np.array([3.0])), (0, 1), [[0.5], [0.5]])


def test_logaddexp_far_apart_and_infinite():
    # exp(x - out): 1 for the dominant side, exp(-1000) == 0 for the other; -inf gets 0
    f = lambda x, y: tnp.sum(tnp.logaddexp(x, y))
    _both_modes(f, (np.array([1000.0, -np.inf]), np.array([0.0, 2.0])), (0, 1),
                [[1.0, 0.0], [0.0, 1.0]])


def test_hypot_kinks():
    f = lambda x, y: tnp.sum(tnp.hypot(x, y))
    _both_modes(f, (np.array([0.0, 3.0, -3.0]), np.array([0.0, 3.0, 4.0])), (0, 1),
                [[0.5, 1 / math.sqrt(2), -0.6], [0.5, 1 / math.sqrt(2), 0.8]])


def test_sinc_at_zero():
    for mode in MODES:
        np.testing.assert_allclose(_run(mode, tg.jit(tnp.sinc), np.array([0.0, 0.0])), [1.0, 1.0])
        g = _run(mode, tg.grad(lambda x: tnp.sinc(x)), np.array(0.0))
        np.testing.assert_allclose(g, 0.0, atol=1e-15)
        h = _run(mode, tg.grad(tg.grad(lambda x: tnp.sinc(x))), np.array(0.0))
        np.testing.assert_allclose(h, -math.pi ** 2 / 3, rtol=1e-12)
        hf = _run(mode, tg.hessian(lambda x: tnp.sinc(x)), np.array(0.0))
        np.testing.assert_allclose(hf, -math.pi ** 2 / 3, rtol=1e-12)
    # and just beside 0 the series branch joins the sin(z)/z branch smoothly
    for x in (1e-4, 3e-4, 5e-4):
        tg.check_grads(lambda x: tnp.sinc(x), (np.array([x, -x]),), order=2)


def test_where_gradient_reaches_selected_side_only():
    c = np.array([True, False, True])
    x, y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    f = lambda x, y: tnp.sum(tnp.where(c, x, y) * np.array([1.0, 2.0, 3.0]))
    _both_modes(f, (x, y), (0, 1), [[1.0, 0.0, 3.0], [0.0, 2.0, 0.0]])
    # NaN in the unselected side does not leak into the gradient
    f = lambda x: tnp.sum(tnp.where(x > 0, tnp.sqrt(tnp.abs(x)), 0.0))
    _both_modes(f, (np.array([4.0, -1.0]),), (0,), [[0.25, 0.0]])


def test_mod_and_fmod_derivatives():
    # remainder(x, y) = x - y * floor(x / y): d/dx = 1, d/dy = -floor(x / y)
    # fmod(x, y) = x - y * trunc(x / y):      d/dx = 1, d/dy = -trunc(x / y)
    x, y = np.array([-5.5, 5.5, 7.0]), np.array([2.0, -2.0, 2.5])
    for name in ("mod", "remainder"):
        f = lambda x, y, fn=getattr(tnp, name): tnp.sum(fn(x, y))
        _both_modes(f, (x, y), (0, 1), [[1.0, 1.0, 1.0], -np.floor(x / y)])
    _both_modes(lambda x, y: tnp.sum(tnp.fmod(x, y)), (x, y), (0, 1), [[1.0, 1.0, 1.0], -np.trunc(x / y)])


def test_power_at_zero_base():
    # d/dx x**2 at 0 is 0; d/dy 0**y is 0 (JAX replaces log(0) by 0 there); x**0 has derivative 0
    f = lambda x, y: tnp.sum(tnp.power(x, y))
    _both_modes(f, (np.array([0.0, 0.0]), np.array([2.0, 3.0])), (0, 1), [[0.0, 0.0], [0.0, 0.0]])
    _both_modes(lambda x: tnp.sum(x ** 2 + x ** 0), (np.array([0.0, 1.5]),), (0,), [[0.0, 3.0]])


def test_sqrt_and_cbrt_at_zero_are_infinite():
    for fn in (tnp.sqrt, tnp.cbrt):
        for mode in MODES:
            assert _run(mode, tg.grad(lambda x: fn(x)), np.array(0.0)) == np.inf


def test_ties_in_second_order():
    # the second derivative of a piecewise-linear max is 0 everywhere, ties included
    for mode in MODES:
        h = _run(mode, tg.hessian(lambda x: tnp.max(x) + tnp.maximum(x[0], x[1])), np.array([2.0, 2.0]))
        np.testing.assert_array_equal(h, np.zeros((2, 2)))
