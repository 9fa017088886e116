"""The eager, per-call-transform and vmap workloads of benchmarks/run.py (see the README beside this file).

Each model is written once, generic in its NumPy module `xp`: plain `numpy` for tracegrad (its tracers
implement NumPy's protocols) and for the float64 references, `autograd.numpy`, `jax.numpy`. The
references are hand-derived NumPy derivatives in float64 (tests/test_benchmarks.py also checks the ODE
one against finite differences).
"""
from __future__ import annotations

import numpy as np

from _common import NotAvailable, Variants

EAGER = ("eager_small_mlp", "eager_pendulum", "eager_many_ops")
TRANSFORMS = ("inline_grad", "odeint", "tracing")
VMAP = ("per_example_grads", "jacrev_tanh")
WORKLOADS = EAGER + TRANSFORMS + VMAP

MANY_ITERS = 100                    # eager_many_ops: 100 x (mul, add, tanh) = 300 ops on 10 elements
ODE_D, ODE_H, ODE_STEPS, ODE_DT = 8, 32, 100, 0.05    # odeint: state, hidden units, RK4 steps, step
JAC_N = 100                         # jacrev_tanh: a 100 -> 100 tanh layer
TRACE_STEPS = 166                   # tracing: 166 x (mul, add, tanh) + sum = 499 forward operations


def _run():
    import run      # benchmarks/run.py (registers itself under this name when run as a script)
    return run


def dtype(workload):
    return np.float32 if workload in ("eager_small_mlp", "per_example_grads") else np.float64


# ---------------------------------------------------------------- models, generic in xp

def mlp_loss(P, X, Y, xp):
    """small_mlp: tanh MLP 16->64->1, mean squared error."""
    W1, b1, W2, b2 = P
    out = xp.tanh(X @ W1 + b1) @ W2 + b2
    return xp.mean((out - Y) ** 2)


def pendulum_loss(p, x0, v0, xp):
    """The pendulum workload as a plain Python loop (no loop primitive)."""
    run = _run()
    k, c = p[0], p[1]
    x, v = x0, v0
    for _ in range(run.STEPS):
        x, v = x + run.DT * v, v + run.DT * (-k * xp.sin(x) - c * v)
    return xp.sum((x - 0.5) ** 2)


def many_ops(x, xp):
    y = x
    for _ in range(MANY_ITERS):
        y = xp.tanh(y * 0.9 + x)
    return xp.sum(y)


def h(x, xp):
    return xp.sum(xp.sin(x) * x)


def traced_chain(x, c, xp):
    """The tracing workload's function: 499 operations (many_ops, longer, with a coefficient `c`)."""
    y = x
    for _ in range(TRACE_STEPS):
        y = xp.tanh(y * c + x)
    return xp.sum(y)


def ode_f(y, params, xp):
    W1, b1, W2, b2 = params
    return W2 @ xp.tanh(W1 @ y + b1) + b2


def rk4_step(y, params, xp):
    k1 = ode_f(y, params, xp)
    k2 = ode_f(y + 0.5 * ODE_DT * k1, params, xp)
    k3 = ode_f(y + 0.5 * ODE_DT * k2, params, xp)
    k4 = ode_f(y + ODE_DT * k3, params, xp)
    return y + ODE_DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def ode_grad_by_vjp(vjp, step, y0, params, target):
    """Gradient of sum((y_T - target)**2) w.r.t. params through the whole RK4 solve, one VJP per step.

    `vjp(step, y, params) -> (y_next, pullback)`, `pullback(ct) -> (ct_y, ct_params)` (JAX's and
    tracegrad's convention; autograd's make_vjp is adapted by its caller).
    """
    y, pullbacks = y0, []
    for _ in range(ODE_STEPS):
        y, pb = vjp(step, y, params)
        pullbacks.append(pb)
    ct, g = 2 * (y - target), None
    for pb in reversed(pullbacks):
        ct, gp = pb(ct)
        g = tuple(gp) if g is None else tuple(a + b for a, b in zip(g, gp))
    return g


def example_loss(P, x, y, xp, stop_gradient):
    """mnist_mlp's loss for one example (x of 784, one-hot y of 10)."""
    W1, b1, W2, b2 = P
    out = xp.maximum(x @ W1 + b1, 0) @ W2 + b2
    z = out - stop_gradient(xp.max(out))
    logp = z - xp.log(xp.sum(xp.exp(z)))
    return -xp.sum(y * logp)


def tanh_layer(x, W, b, xp):
    return xp.tanh(W @ x + b)


# ---------------------------------------------------------------- data and references

def make_data(workload):
    run = _run()
    if workload == "eager_small_mlp":
        return run.make_data("small_mlp")
    if workload == "eager_pendulum":
        return run.make_data("pendulum")
    if workload in ("eager_many_ops", "inline_grad", "tracing"):
        return run.make_data("dispatch")           # 10 float64 values, seed 0
    if workload == "odeint":
        rng = np.random.default_rng(0)
        D, H = ODE_D, ODE_H
        params = (rng.standard_normal((H, D)) / np.sqrt(D), 0.1 * rng.standard_normal(H),
                  0.5 * rng.standard_normal((D, H)) / np.sqrt(H), 0.1 * rng.standard_normal(D))
        return params, rng.standard_normal(D), 0.5 * rng.standard_normal(D)
    if workload == "per_example_grads":
        return run.make_data("mnist_mlp")
    if workload == "jacrev_tanh":
        rng = np.random.default_rng(0)
        return rng.standard_normal(JAC_N), rng.standard_normal((JAC_N, JAC_N)) / np.sqrt(JAC_N), \
            0.1 * rng.standard_normal(JAC_N)
    raise ValueError(workload)


def ode_reference(params, y0, target):
    """(loss, grads) of the odeint workload: forward RK4 and its adjoint derived by hand, float64."""
    W1, b1, W2, b2 = params
    dt = ODE_DT

    def f(y):
        return W2 @ np.tanh(W1 @ y + b1) + b2

    def f_vjp(y, ct):       # cotangent of y and of (W1, b1, W2, b2) for f(y) with output cotangent ct
        hid = np.tanh(W1 @ y + b1)
        dz = (W2.T @ ct) * (1 - hid * hid)
        return W1.T @ dz, (np.outer(dz, y), dz, np.outer(ct, hid), ct)

    ys = [y0]
    for _ in range(ODE_STEPS):
        y = ys[-1]
        k1 = f(y)
        k2 = f(y + 0.5 * dt * k1)
        k3 = f(y + 0.5 * dt * k2)
        k4 = f(y + dt * k3)
        ys.append(y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
    loss = np.sum((ys[-1] - target) ** 2)
    ct = 2 * (ys[-1] - target)
    g = [np.zeros_like(p) for p in params]
    for y in reversed(ys[:-1]):
        k1 = f(y)
        k2 = f(y + 0.5 * dt * k1)
        k3 = f(y + 0.5 * dt * k2)
        c1, c2, c3, c4 = dt / 6 * ct, dt / 3 * ct, dt / 3 * ct, dt / 6 * ct
        cy = ct.copy()
        # k4 = f(y + dt k3)
        dy, dp = f_vjp(y + dt * k3, c4)
        cy, c3 = cy + dy, c3 + dt * dy
        g = [a + b for a, b in zip(g, dp)]
        # k3 = f(y + dt/2 k2)
        dy, dp = f_vjp(y + 0.5 * dt * k2, c3)
        cy, c2 = cy + dy, c2 + 0.5 * dt * dy
        g = [a + b for a, b in zip(g, dp)]
        # k2 = f(y + dt/2 k1)
        dy, dp = f_vjp(y + 0.5 * dt * k1, c2)
        cy, c1 = cy + dy, c1 + 0.5 * dt * dy
        g = [a + b for a, b in zip(g, dp)]
        # k1 = f(y)
        dy, dp = f_vjp(y, c1)
        cy = cy + dy
        g = [a + b for a, b in zip(g, dp)]
        ct = cy
    return loss, g


def reference(workload):
    run = _run()
    d = make_data(workload)
    if workload == "eager_small_mlp":
        return run.reference("small_mlp")
    if workload == "eager_pendulum":
        return run.reference("pendulum")
    if workload == "eager_many_ops":
        x = d
        y, dy = x, np.ones_like(x)
        for _ in range(MANY_ITERS):
            y = np.tanh(y * 0.9 + x)
            dy = (1 - y * y) * (0.9 * dy + 1)
        return [dy]
    if workload == "inline_grad":
        return [np.cos(d) * d + np.sin(d)]
    if workload == "tracing":
        x = d
        y, dy = x, np.ones_like(x)
        for _ in range(TRACE_STEPS):
            y = np.tanh(y * 0.9 + x)
            dy = (1 - y * y) * (0.9 * dy + 1)
        return [dy]
    if workload == "odeint":
        return ode_reference(*d)[1]
    if workload == "per_example_grads":
        P, X, Y = d
        W1, b1, W2, b2 = [p.astype(np.float64) for p in P]
        X, Y = X.astype(np.float64), Y.astype(np.float64)
        Z = X @ W1 + b1
        Hd = np.maximum(Z, 0)
        out = Hd @ W2 + b2
        prob = np.exp(out - out.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        dout = prob * Y.sum(axis=1, keepdims=True) - Y
        dZ = (dout @ W2.T) * (Z > 0)
        return [X[:, :, None] * dZ[:, None, :], dZ, Hd[:, :, None] * dout[:, None, :], dout]
    if workload == "jacrev_tanh":
        x, W, b = d
        t = np.tanh(W @ x + b)
        return [(1 - t * t)[:, None] * W]
    raise ValueError(workload)


# ---------------------------------------------------------------- tracegrad

def _needs(tg, name):
    if not hasattr(tg, name):
        raise NotAvailable("n/a (not available)")
    return getattr(tg, name)


def tracegrad_jitted(workload):
    """(compiled callable, args) for the workloads that have one jitted tracegrad function."""
    import tracegrad as tg
    d = make_data(workload)
    if workload == "odeint":
        params, y0, target = d

        def loss(params, y0, target):
            y = tg.fori_loop(0, ODE_STEPS, lambda i, y: rk4_step(y, params, np), y0)
            return np.sum((y - target) ** 2)
        return tg.jit(tg.grad(loss)), (params, y0, target)
    if workload == "per_example_grads":
        vmap = _needs(tg, "vmap")
        loss = lambda P, x, y: example_loss(P, x, y, np, tg.stop_gradient)    # noqa: E731
        P, X, Y = d
        return tg.jit(vmap(tg.grad(loss), in_axes=(None, 0, 0))), (P, X, Y)
    if workload == "jacrev_tanh":
        x, W, b = d
        return tg.jit(tg.jacrev(lambda x: tanh_layer(x, W, b, np))), (x,)
    raise ValueError(workload)


def _eager(tg, fn):
    def call():
        with tg.eager():
            return fn()
    return call


def tracegrad_impl(workload):
    import tracegrad as tg
    d = make_data(workload)
    if workload == "eager_small_mlp":
        P, X, Y = d
        vg = tg.value_and_grad(lambda P, X, Y: mlp_loss(P, X, Y, np))
        lr = _run().LR

        def step(P, X, Y):          # the gradient step as a plain Python function
            value, grads = vg(P, X, Y)
            return [p - lr * g for p, g in zip(P, grads)], value
        return _eager(tg, lambda: step(P, X, Y))
    if workload == "eager_pendulum":
        p, x0, v0 = d
        g = tg.grad(lambda p, x0, v0: pendulum_loss(p, x0, v0, np))
        return _eager(tg, lambda: g(p, x0, v0))
    if workload == "eager_many_ops":
        g = tg.grad(lambda x: many_ops(x, np))
        return _eager(tg, lambda: g(d))
    if workload == "inline_grad":
        x = d

        def h_np(x):
            return h(x, np)

        def prebuilt():
            g = tg.grad(h_np)
            return lambda: g(x)

        def vjp_call():
            out, pb = tg.vjp(h_np, x)
            return pb(1.0)

        def eager():
            g = tg.grad(h_np)
            return _eager(tg, lambda: g(x))
        return Variants({
            "g(x), g = tg.grad(h) built once": prebuilt,
            "tg.grad(h)(x) inline": lambda: (lambda: tg.grad(h_np)(x)),
            "tg.grad(lambda z: h(z))(x) inline": lambda: (lambda: tg.grad(lambda z: h_np(z))(x)),
            "out, pb = tg.vjp(h, x); pb(1.0)": lambda: vjp_call,
            "g(x) in tg.eager()": eager,
        })
    if workload == "odeint":
        params, y0, target = d
        def rk4(y, p):          # one function object, passed to tg.vjp at every step
            return rk4_step(y, p, np)

        def jitted():
            cf, args = tracegrad_jitted("odeint")
            return lambda: cf(*args)
        return Variants({
            "tg.vjp per step": lambda: (lambda: ode_grad_by_vjp(tg.vjp, rk4, y0, params, target)),
            "tg.vjp per step in tg.eager()": lambda: _eager(
                tg, lambda: ode_grad_by_vjp(tg.vjp, rk4, y0, params, target)),
            "tg.jit(tg.grad) of a tg.fori_loop solve": jitted,
        })
    if workload == "tracing":
        x = d
        calls = iter(range(1 << 62))

        def first_call():
            # A new coefficient per call (closed-over Python scalars key traces by value): every call
            # traces the gradient of `traced_chain` anew and runs it once on the interpreter tier.
            c = 0.9 + next(calls) * 1e-12
            return tg.jit(tg.grad(lambda x: traced_chain(x, c, np)), compile="never")(x)
        return Variants({"first call of tg.jit(tg.grad(f), compile='never'), a new trace each call":
                         lambda: first_call})
    if workload == "per_example_grads":
        P, X, Y = d

        def vmapped():
            cf, args = tracegrad_jitted("per_example_grads")
            return lambda: cf(*args)

        def loop():
            g = tg.grad(lambda P, x, y: example_loss(P, x, y, np, tg.stop_gradient))

            def per_example():
                gs = [g(P, X[i], Y[i]) for i in range(len(X))]
                return [np.stack(parts) for parts in zip(*gs)]
            return per_example
        return Variants({
            "tg.jit(tg.vmap(tg.grad(loss), in_axes=(None, 0, 0)))": vmapped,
            "Python loop over tg.grad(loss) per example": loop,
        })
    if workload == "jacrev_tanh":
        cf, args = tracegrad_jitted("jacrev_tanh")
        return lambda: cf(*args)
    raise ValueError(workload)


# ---------------------------------------------------------------- peers

def autograd_impl(workload):
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        raise NotAvailable("not installed") from None
    d = make_data(workload)
    if workload == "eager_small_mlp":
        P, X, Y = d
        vg = autograd.value_and_grad(lambda P, X, Y: mlp_loss(P, X, Y, anp))
        lr = _run().LR

        def step(P, X, Y):
            value, grads = vg(P, X, Y)
            return [p - lr * g for p, g in zip(P, grads)], value
        return lambda: step(P, X, Y)
    if workload == "eager_pendulum":
        p, x0, v0 = d
        g = autograd.grad(lambda p, x0, v0: pendulum_loss(p, x0, v0, anp))
        return lambda: g(p, x0, v0)
    if workload == "eager_many_ops":
        g = autograd.grad(lambda x: many_ops(x, anp))
        return lambda: g(d)
    if workload == "inline_grad":
        def h_ag(x):
            return h(x, anp)
        return lambda: autograd.grad(h_ag)(d)
    if workload == "tracing":       # autograd records the operations at every call
        return lambda: autograd.grad(lambda x: traced_chain(x, 0.9, anp))(d)
    if workload == "odeint":
        params, y0, target = d
        step_vjp = autograd.make_vjp(lambda y, p: rk4_step(y, p, anp), argnum=(0, 1))

        def vjp(_, y, p):           # make_vjp returns (pullback, value)
            pb, y_next = step_vjp(y, p)
            return y_next, pb
        return lambda: ode_grad_by_vjp(vjp, None, y0, params, target)
    raise NotAvailable("n/a")


def jax_impl(workload):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise NotAvailable("not installed") from None
    jax.config.update("jax_enable_x64", True)
    ready = jax.block_until_ready
    d = make_data(workload)
    if workload == "inline_grad":
        x = jnp.asarray(d)

        def h_jax(x):
            return h(x, jnp)
        return lambda: ready(jax.grad(h_jax)(x))           # un-jitted, as users write it inline
    if workload == "tracing":       # tracing only: make_jaxpr of the gradient, a new function each call
        x = jnp.asarray(d)
        checked = []

        def call():
            jaxpr = jax.make_jaxpr(jax.grad(lambda x: traced_chain(x, 0.9, jnp)))(x)
            if not checked:          # (the first, untimed call also returns the value to check)
                checked.append(True)
                return ready(jax.grad(lambda x: traced_chain(x, 0.9, jnp))(x))
            return jaxpr
        return call
    if workload == "odeint":
        params, y0, target = jax.tree_util.tree_map(jnp.asarray, d)
        step = lambda y, p: rk4_step(y, p, jnp)           # noqa: E731
        return lambda: ready(ode_grad_by_vjp(jax.vjp, step, y0, params, target))
    if workload in ("per_example_grads", "jacrev_tanh"):
        jf, args = jax_jitted(workload)
        return lambda: ready(jf(*args))
    raise NotAvailable("n/a")


def jax_jitted(workload):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    d = make_data(workload)
    if workload == "per_example_grads":
        P, X, Y = d
        loss = lambda P, x, y: example_loss(P, x, y, jnp, jax.lax.stop_gradient)   # noqa: E731
        return (jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))),
                ([jnp.asarray(p) for p in P], jnp.asarray(X), jnp.asarray(Y)))
    if workload == "jacrev_tanh":
        x, W, b = (jnp.asarray(a) for a in d)
        return jax.jit(jax.jacrev(lambda x: tanh_layer(x, W, b, jnp))), (x,)
    if workload == "odeint":
        params, y0, target = jax.tree_util.tree_map(jnp.asarray, d)

        def loss(params, y0, target):
            y = jax.lax.fori_loop(0, ODE_STEPS, lambda i, y: rk4_step(y, params, jnp), y0)
            return jnp.sum((y - target) ** 2)
        return jax.jit(jax.grad(loss)), (params, y0, target)
    raise ValueError(workload)


def torch_impl(workload):
    try:
        import torch
    except ImportError:
        raise NotAvailable("not installed") from None
    if workload == "eager_small_mlp":
        return _run().torch_impl("small_mlp")
    if workload == "eager_pendulum":
        return _run().torch_impl("pendulum")        # a Python loop there too
    if workload == "eager_many_ops":
        x = torch.tensor(make_data(workload), requires_grad=True)

        def g():
            y = x
            for _ in range(MANY_ITERS):
                y = torch.tanh(y * 0.9 + x)
            return torch.autograd.grad(torch.sum(y), x)[0]
        return g
    raise NotAvailable("n/a")


IMPLS = {"tracegrad": tracegrad_impl, "autograd": autograd_impl, "jax": jax_impl, "torch": torch_impl}
