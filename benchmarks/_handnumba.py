"""Hand-written Numba versions of the benchmark workloads (the 'what a person would write' peer).

Forward and backward passes are derived by hand; no autodiff. Imported only when the handnumba peer
runs. `TG_BENCH_NUMBA_CACHE=1` turns on Numba's on-disk cache (used by the `compile` workload).
"""
import os

import numba as nb
import numpy as np

_CACHE = os.environ.get("TG_BENCH_NUMBA_CACHE", "") == "1"
jit = nb.njit(cache=_CACHE, fastmath=False)


@jit
def _col_sum(a):
    """a.sum(axis=0) for a 2-d array."""
    out = np.zeros(a.shape[1], a.dtype)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[i, j]
    return out


@jit
def small_mlp_step(W1, b1, W2, b2, X, Y, lr):
    """SGD step of a 16->64->1 tanh MLP with mean-squared error; returns (new params..., loss)."""
    H = np.tanh(X @ W1 + b1)
    D = H @ W2 + b2 - Y
    scale = X.dtype.type(2.0 / D.size)
    loss = (D * D).sum() / D.size
    dOut = D * scale
    dW2 = H.T @ dOut
    db2 = _col_sum(dOut)
    dZ = (dOut @ W2.T) * (1 - H * H)
    dW1 = X.T @ dZ
    db1 = _col_sum(dZ)
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2, loss


@jit
def mnist_mlp_step(W1, b1, W2, b2, X, Y, lr):
    """SGD step of a 784->256->10 ReLU MLP with softmax cross-entropy on one-hot rows of Y."""
    Z = X @ W1 + b1
    H = np.maximum(Z, 0)
    out = H @ W2 + b2
    n, k = out.shape
    dOut = np.empty_like(out)
    total = 0.0
    for i in range(n):
        m = out[i, 0]
        for j in range(1, k):
            m = max(m, out[i, j])
        s = 0.0
        for j in range(k):
            s += np.exp(out[i, j] - m)
        lse = m + np.log(s)
        ysum = 0.0
        for j in range(k):
            total += Y[i, j] * (out[i, j] - lse)
            ysum += Y[i, j]
        for j in range(k):
            dOut[i, j] = (np.exp(out[i, j] - lse) * ysum - Y[i, j]) / n
    loss = X.dtype.type(-total / n)
    dW2 = H.T @ dOut
    db2 = _col_sum(dOut)
    dZ = (dOut @ W2.T) * (Z > 0)
    dW1 = X.T @ dZ
    db1 = _col_sum(dZ)
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2, loss


@jit
def chain_grad(x):
    """d/dx of sum(tanh(sin(x) exp(-x^2)) + log1p(x^2)), one serial loop."""
    g = np.empty_like(x)
    for i in range(x.shape[0]):
        xi = x[i]
        s, c, e = np.sin(xi), np.cos(xi), np.exp(-xi * xi)
        t = np.tanh(s * e)
        g[i] = (1.0 - t * t) * e * (c - 2.0 * xi * s) + 2.0 * xi / (1.0 + xi * xi)
    return g


@jit
def pendulum_grad(p, x0, v0, steps, dt):
    """Gradient w.r.t. (k, c) of sum((x_T - 0.5)^2) after `steps` explicit-Euler steps.

    Forward: store the trajectory. Backward: the adjoint recursion, pendulum by pendulum.
    """
    k, c = p[0], p[1]
    n = x0.shape[0]
    xs = np.empty((steps + 1, n))
    vs = np.empty((steps + 1, n))
    xs[0], vs[0] = x0, v0
    for t in range(steps):
        for j in range(n):
            x, v = xs[t, j], vs[t, j]
            xs[t + 1, j] = x + dt * v
            vs[t + 1, j] = v + dt * (-k * np.sin(x) - c * v)
    return _pendulum_adjoint(xs, vs, steps, k, c, dt)


@jit
def pendulum_while_grad(p, x0, v0, dt, e_stop, max_steps):
    """`pendulum_grad`, stepping while the energy sum(v^2/2 + k (1 - cos x)) exceeds `e_stop`
    (at most `max_steps`): the trajectory goes into arrays doubled as the loop needs rows."""
    k, c = p[0], p[1]
    n = x0.shape[0]
    xs = np.empty((64, n))
    vs = np.empty((64, n))
    xs[0], vs[0] = x0, v0
    steps = 0
    while steps < max_steps:
        energy = 0.0
        for j in range(n):
            energy += 0.5 * vs[steps, j] ** 2 + k * (1.0 - np.cos(xs[steps, j]))
        if energy <= e_stop:
            break
        if steps + 1 == xs.shape[0]:
            bigger_x, bigger_v = np.empty((2 * xs.shape[0], n)), np.empty((2 * xs.shape[0], n))
            bigger_x[:xs.shape[0]], bigger_v[:xs.shape[0]] = xs, vs
            xs, vs = bigger_x, bigger_v
        for j in range(n):
            x, v = xs[steps, j], vs[steps, j]
            xs[steps + 1, j] = x + dt * v
            vs[steps + 1, j] = v + dt * (-k * np.sin(x) - c * v)
        steps += 1
    return _pendulum_adjoint(xs, vs, steps, k, c, dt)


@jit
def _pendulum_adjoint(xs, vs, steps, k, c, dt):
    """The gradient w.r.t. (k, c) from the stored trajectory xs[:steps + 1], vs[:steps + 1]."""
    gk = 0.0
    gc = 0.0
    for j in range(xs.shape[1]):
        lx = 2.0 * (xs[steps, j] - 0.5)     # adjoint of x_{t+1}
        lv = 0.0                             # adjoint of v_{t+1}
        for t in range(steps - 1, -1, -1):
            x, v = xs[t, j], vs[t, j]
            la = dt * lv                     # adjoint of the acceleration a_t
            gk -= la * np.sin(x)
            gc -= la * v
            lx, lv = lx - la * k * np.cos(x), lv + dt * lx - la * c
    return np.array([gk, gc])


@jit
def dispatch_grad(x):
    """d/dx of sum(sin(x) * x)."""
    g = np.empty_like(x)
    for i in range(x.shape[0]):
        g[i] = np.cos(x[i]) * x[i] + np.sin(x[i])
    return g
