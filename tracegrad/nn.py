"""Neural-network helpers (`tg.nn`): activations, the softmax family, `one_hot` and two losses.

Each is a composition of traceable ops: on NumPy arrays it returns NumPy arrays, on traced values it
records IR, and it has derivatives of every order. This module owns the numerical-stability choices:
- exponentials only ever see non-positive arguments (shift by the max, or `-|x|`), so logits of
  +-1000 give finite values and finite, correct gradients in float32 and float64;
- the max used for shifting is wrapped in `stop_gradient` (the shifted function does not depend on
  it), and replaced by 0 when it is not finite, so an all `-inf` slice gives `-inf`, not NaN;
- branches are selected with the "double where" pattern: the branch not taken gets a harmless
  input, so its (discarded) derivative cannot be NaN/Inf.
Conventions follow JAX: relu'(0) = 0; `gelu` defaults to the tanh approximation; `one_hot`
defaults to float32 and encodes out-of-range labels as all zeros.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from . import ops
from . import primitives as P
from .numpy.reductions import logsumexp, max_shift as _max_shift, mean, sum_keepdims as _sum_keep
from .trace import Tracer

__all__ = ["relu", "sigmoid", "softplus", "gelu", "softmax", "log_softmax", "logsumexp", "one_hot",
           "mse", "softmax_cross_entropy"]


def _operand(x):
    return x if isinstance(x, Tracer) or type(x) in (bool, int, float) else np.asarray(x)


def _float(x):
    """`x` as a floating-point operand, with the dtype NumPy's `np.exp` would compute in."""
    return ops.float_operand(_operand(x))


def _gt0(x):
    return ops.compare(P.gt_p, x, 0)


# ---------------------------------------------------------------- activations

def relu(x):
    """max(x, 0), with derivative 0 at x == 0 (JAX's convention)."""
    x = _operand(x)
    return ops.select(_gt0(x), x, ops.zeros_like(x))


def sigmoid(x):
    """1 / (1 + exp(-x)), computed from exp(-|x|) so nothing overflows."""
    x = _float(x)
    e = ops.exp(ops.neg(ops.unary(P.abs_p, x)))          # in (0, 1]
    pos = ops.div(1, ops.add(1, e))                        # sigmoid(|x|)
    return ops.select(ops.compare(P.ge_p, x, 0), pos, ops.mul(e, pos))


def softplus(x):
    """log(1 + exp(x)) = x + log1p(exp(-x)) for x > 0, log1p(exp(x)) otherwise.

    Each branch gets an input for which its exp cannot overflow (the other branch sees 0), so the
    value and its derivative (sigmoid) are finite everywhere and exact at 0.
    """
    x = _float(x)
    pos = _gt0(x)
    zero = ops.zeros_like(x)
    xp = ops.select(pos, x, zero)
    xn = ops.select(pos, zero, x)
    big = ops.add(xp, ops.unary(P.log1p_p, ops.exp(ops.neg(xp))))
    small = ops.unary(P.log1p_p, ops.exp(xn))
    return ops.select(pos, big, small)


def gelu(x, approximate=True):
    """Gaussian error linear unit: x * Phi(x).

    `approximate=True` (JAX's default): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
    `approximate=False`: the exact 0.5 x (1 + erf(x / sqrt(2))).
    """
    x = _float(x)
    if approximate:
        inner = ops.mul(math.sqrt(2 / math.pi), ops.add(x, ops.mul(0.044715, ops.integer_pow(x, 3))))
        phi = ops.add(1, ops.tanh(inner))
    else:
        phi = ops.add(1, ops.unary(P.erf_p, ops.mul(x, 1 / math.sqrt(2))))
    return ops.mul(ops.mul(0.5, x), phi)


# ---------------------------------------------------------------- softmax family

def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over `axis` (int, tuple or None), shifted by the max for stability."""
    x = _float(x)
    axes = ops.normalize_axes(axis, ops.ndim_of(x))
    e = ops.exp(ops.sub(x, _max_shift(x, axes)))
    return ops.div(e, _sum_keep(e, axes))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) over `axis`, computed from the max-shifted values."""
    x = _float(x)
    axes = ops.normalize_axes(axis, ops.ndim_of(x))
    shifted = ops.sub(x, _max_shift(x, axes))
    return ops.sub(shifted, ops.log(_sum_keep(ops.exp(shifted), axes)))


# ---------------------------------------------------------------- encoding and losses

def one_hot(x, num_classes, *, dtype=None, axis=-1):
    """One-hot encode integer labels `x` along a new axis `axis` (default last).

    Labels outside [0, num_classes) give all zeros. `dtype` defaults to float32, as JAX's default
    float: 0 and 1 are exact in it, and it promotes to float64 wherever it meets float64 values, so
    it never silently widens a float32 model.
    """
    num_classes = operator.index(num_classes)
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    x = _operand(x)
    nd = ops.ndim_of(x) + 1
    if not -nd <= axis < nd:
        raise np.exceptions.AxisError(f"axis {axis} is out of bounds for one_hot of a "
                                      f"{nd - 1}-dimensional array")
    ax = axis % nd
    shape = tuple(ops.shape_of(x))
    labels = ops.reshape(x, shape[:ax] + (1,) + shape[ax:])
    classes = np.arange(num_classes).reshape([num_classes if i == ax else 1 for i in range(nd)])
    return ops.convert(ops.compare(P.eq_p, labels, classes), dtype)


def mse(pred, target):
    """Mean squared error: mean((pred - target)**2) over all elements."""
    d = ops.sub(_operand(pred), _operand(target))
    return mean(ops.integer_pow(d, 2))


def softmax_cross_entropy(logits, one_hot_labels):
    """Mean over the batch (all leading axes) of -sum(labels * log_softmax(logits), axis=-1).

    Labels may be one-hot or any distribution over the last axis; integer or bool labels are cast to
    the logits' dtype.
    """
    logits = _float(logits)
    labels = _operand(one_hot_labels)
    if ops.dtype_of(labels).kind in "biu":
        labels = ops.as_dtype(labels, ops.dtype_of(logits))
    lsm = log_softmax(logits, axis=-1)
    per_example = ops.neg(ops.reduce_sum(ops.mul(labels, lsm), (ops.ndim_of(lsm) - 1,)))
    return mean(per_example)
