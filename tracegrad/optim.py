"""Optimizers as pure functions over pytrees (`tg.optim`): `sgd`, `momentum`, `adam`, and
`minimize`, which drives the loop.

Each constructor returns an `Optimizer(init, update)`:
    state = opt.init(params)
    params, state = opt.update(grads, state, params)
Both are written with traceable ops, so they run on NumPy arrays (returning NumPy arrays), in eager
mode, and inside `tg.jit`, where a whole training step (loss, gradient, update) compiles into one
function. States are pytrees (registered NamedTuples), so they pass through `jit` like parameters.

Dtypes are preserved: every hyperparameter and the step counter are converted to each parameter's
own dtype before they meet it, so float32 parameters (and their states) stay float32 whether the
hyperparameters are Python floats, NumPy float64 scalars or traced values. Non-float leaves of the
parameter tree (e.g. integer buffers) are passed through unchanged.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import ops
from . import primitives as P
from .pytree import register_pytree_node, tree_flatten, tree_map, tree_unflatten
from .staging import Staged
from .trace import Tracer
from .transforms import value_and_grad

__all__ = ["Optimizer", "sgd", "momentum", "adam", "MomentumState", "AdamState", "minimize",
           "OptimizeResult"]


class Optimizer(NamedTuple):
    init: Callable      # init(params) -> state
    update: Callable    # update(grads, state, params) -> (new_params, new_state)


class MomentumState(NamedTuple):
    velocity: Any


class AdamState(NamedTuple):
    count: Any    # int32 scalar: number of updates done
    mu: Any       # first-moment estimates, like params
    nu: Any       # second-moment estimates, like params


for _cls in (MomentumState, AdamState):
    register_pytree_node(_cls, lambda s: (list(s), None), lambda _, children, cls=_cls: cls(*children))


def _is_float(p) -> bool:
    return ops.dtype_of(p).kind == "f"


def _in(h, dtype):
    """A hyperparameter (Python or NumPy scalar, or traced) as an operand of exactly `dtype`."""
    return ops.as_dtype(h, dtype)


def _one_minus(h, dtype):
    # computed in Python/NumPy precision when h is a constant, then rounded once to `dtype`
    return ops.sub(1, _in(h, dtype)) if isinstance(h, Tracer) else _in(1 - h, dtype)


def _keep(new, like):
    """`new` with `like`'s dtype; outside a trace, a NumPy array (not a NumPy scalar)."""
    if isinstance(new, Tracer):
        return new
    return np.asarray(new, dtype=ops.dtype_of(like))


def _zeros(p):
    if isinstance(p, Tracer):
        return ops.zeros_like(p)
    return np.zeros(np.shape(p), ops.dtype_of(p))


def _grad_in(g, p):
    return ops.as_dtype(g, ops.dtype_of(p))


def sgd(lr) -> Optimizer:
    """Plain gradient descent: p <- p - lr * g. The state is `()`."""
    def init(params):
        return ()

    def update(grads, state, params):
        def step(p, g):
            if not _is_float(p):
                return p
            dt = ops.dtype_of(p)
            return _keep(ops.sub(p, ops.mul(_in(lr, dt), _grad_in(g, p))), p)
        p_leaves, tree = tree_flatten(params)
        new = [step(p, g) for p, g in zip(p_leaves, _leaves_like(grads, tree, "grads"))]
        return tree_unflatten(tree, new), state
    return Optimizer(init, update)


def momentum(lr, beta=0.9, nesterov=False) -> Optimizer:
    """Heavy-ball momentum: v <- beta * v + g; p <- p - lr * v (PyTorch's and optax's convention).

    With `nesterov=True`, p <- p - lr * (g + beta * v) using the updated v.
    """
    def init(params):
        return MomentumState(tree_map(_zeros, params))

    def update(grads, state, params):
        def step(p, g, v):
            if not _is_float(p):
                return p, v
            dt = ops.dtype_of(p)
            g = _grad_in(g, p)
            v = ops.add(ops.mul(_in(beta, dt), v), g)
            direction = ops.add(g, ops.mul(_in(beta, dt), v)) if nesterov else v
            return _keep(ops.sub(p, ops.mul(_in(lr, dt), direction)), p), _keep(v, p)
        p_leaves, tree = tree_flatten(params)
        new = [step(*a) for a in zip(p_leaves, _leaves_like(grads, tree, "grads"),
                                     _leaves_like(state.velocity, tree, "state.velocity"))]
        return (tree_unflatten(tree, [n[0] for n in new]),
                MomentumState(tree_unflatten(tree, [n[1] for n in new])))
    return Optimizer(init, update)


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8) -> Optimizer:
    """Adam (Kingma & Ba) with bias correction:

        t += 1;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """
    def init(params):
        return AdamState(np.zeros((), np.int32), tree_map(_zeros, params), tree_map(_zeros, params))

    def update(grads, state, params):
        count = ops.add(state.count, np.int32(1))
        corrections: dict = {}     # per parameter dtype: (1 - b1^t, 1 - b2^t), computed once

        def bias(dt):
            if dt not in corrections:
                t = ops.as_dtype(count, dt)
                corrections[dt] = tuple(ops.sub(1, ops.binary(P.pow_p, _in(b, dt), t)) for b in (b1, b2))
            return corrections[dt]

        def step(p, g, m, v):
            if not _is_float(p):
                return p, m, v
            dt = ops.dtype_of(p)
            g = _grad_in(g, p)
            m = ops.add(ops.mul(_in(b1, dt), m), ops.mul(_one_minus(b1, dt), g))
            v = ops.add(ops.mul(_in(b2, dt), v), ops.mul(_one_minus(b2, dt), ops.integer_pow(g, 2)))
            c1, c2 = bias(dt)
            m_hat = ops.div(m, c1)
            v_hat = ops.div(v, c2)
            delta = ops.div(ops.mul(_in(lr, dt), m_hat), ops.add(ops.sqrt(v_hat), _in(eps, dt)))
            return _keep(ops.sub(p, delta), p), _keep(m, p), _keep(v, p)
        p_leaves, tree = tree_flatten(params)
        new = [step(*a) for a in zip(p_leaves, _leaves_like(grads, tree, "grads"),
                                     _leaves_like(state.mu, tree, "state.mu"),
                                     _leaves_like(state.nu, tree, "state.nu"))]
        new_p, new_m, new_v = (tree_unflatten(tree, [n[k] for n in new]) for k in range(3))
        count = count if isinstance(count, Tracer) else np.asarray(count, np.int32)
        return new_p, AdamState(count, new_m, new_v)
    return Optimizer(init, update)


def _leaves_like(tree, treedef, what):
    leaves, td = tree_flatten(tree)
    if td != treedef:
        raise ValueError(f"optimizer update: {what} has structure {td}, but params have {treedef}")
    return leaves


# ---------------------------------------------------------------- driving the loop

class OptimizeResult(NamedTuple):
    params: Any          # the parameters after the last step
    losses: np.ndarray   # the loss at the parameters each step started from (one per step taken)


def minimize(loss, params, *, optimizer: Optimizer, steps: int, args=(), callback=None):
    """Minimize `loss(params, *args)` with `optimizer` for `steps` steps: the loop autograd's
    optimizers and `optax` tutorials write by hand.

        params, losses = tg.optim.minimize(loss, params, optimizer=tg.optim.adam(0.01), steps=500)

    Each step (the loss, its gradient and the optimizer's update) is one function compiled per
    signature, like `tg.value_and_grad`; a loss that draws random numbers (np.random, a Generator)
    draws fresh samples on every step. `params` is any pytree of float arrays; `args` are passed to
    `loss` unchanged on every step (arrays, or pytrees of them). After each step, `callback(step,
    params, loss)` is called with the step number (from 0), the updated parameters and the loss
    before the update; a true return value stops early. Returns `OptimizeResult(params, losses)`.
    """
    if int(steps) < 0:
        raise ValueError(f"minimize: steps must be >= 0, got {steps}")
    grad_fn = value_and_grad(loss)

    def step(params, state, *args):
        value, grads = grad_fn(params, *args)
        params, state = optimizer.update(grads, state, params)
        return params, state, value
    run = Staged(step, name=f"minimize({getattr(loss, '__name__', 'loss')})")
    state = optimizer.init(params)
    losses = []
    for i in range(int(steps)):
        params, state, value = run(params, state, *args)
        losses.append(float(np.asarray(value).reshape(())))
        if callback is not None and callback(i, params, value):
            break
    return OptimizeResult(params, np.asarray(losses, np.float64))
