"""Recover a pendulum's stiffness and damping from a noisy trajectory, by gradient descent through
the simulation.

    python examples/fit_pendulum.py                   # compiled
    TRACEGRAD_BACKEND=interpret python examples/fit_pendulum.py     # NumPy interpreter, no Numba
    TRACEGRAD_EAGER=1 python examples/fit_pendulum.py --iters 20    # eager, op by op

64 damped pendulums, started at different angles, follow  x'' = -k sin(x) - c x'. We observe their
angles every 25 steps of a 500-step explicit-Euler simulation (dt 0.01), with noise, and fit (k, c)
by minimising the squared error between the simulated and observed angles.

The simulation is a `tg.fori_loop` (25 Euler steps) inside a `tg.scan` over the 20 observation
frames: each loop is ONE equation in the IR with its body traced once, so tracing does not grow with
the number of steps, and `tg.value_and_grad` differentiates through both loops (the forward loops
save what the backward needs; the backward is a reverse loop). The fit itself is a few lines of
Adam on (log k, log c), so both stay positive.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tracegrad as tg

N_PENDULUMS = 64
DT = 0.01
STEPS_PER_FRAME = 25
N_FRAMES = 20                  # 20 x 25 = 500 Euler steps
TRUE_K, TRUE_C = 4.0, 0.3      # stiffness (g / length) and damping


def simulate(k, c, x0, v0):
    """Angles of every pendulum at every observation frame: shape (N_FRAMES, N_PENDULUMS)."""
    def euler(i, state):
        x, v = state
        a = -k * np.sin(x) - c * v
        return x + DT * v, v + DT * a

    def frame(state, _):
        state = tg.fori_loop(0, STEPS_PER_FRAME, euler, state)
        return state, state[0]

    _, xs = tg.scan(frame, (x0, v0), None, length=N_FRAMES)
    return xs


def loss(log_params, x0, v0, observed):
    k, c = np.exp(log_params[0]), np.exp(log_params[1])
    return np.mean((simulate(k, c, x0, v0) - observed) ** 2)


def make_data(seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    x0 = np.linspace(-1.5, 1.5, N_PENDULUMS)
    v0 = rng.uniform(-0.5, 0.5, N_PENDULUMS)
    clean = simulate(TRUE_K, TRUE_C, x0, v0)          # plain NumPy here: no transform is active
    return x0, v0, clean + noise * rng.standard_normal(clean.shape)


def main(iters=150, lr=0.08, k0=2.5, c0=0.1, verbose=True):
    x0, v0, observed = make_data()
    value_and_grad = tg.jit(tg.value_and_grad(loss))
    p = np.log(np.array([k0, c0]))
    m, s = np.zeros(2), np.zeros(2)
    history = []
    t0 = time.perf_counter()
    for it in range(1, iters + 1):
        value, g = value_and_grad(p, x0, v0, observed)
        history.append(float(value))
        m = 0.9 * m + 0.1 * g                         # Adam
        s = 0.999 * s + 0.001 * g * g
        p = p - lr * (m / (1 - 0.9 ** it)) / (np.sqrt(s / (1 - 0.999 ** it)) + 1e-12)
        if verbose and (it == 1 or it % 25 == 0):
            k, c = np.exp(p)
            print(f"iter {it:4d}  loss {value:.3e}  k {k:.4f}  c {c:.4f}")
    k, c = np.exp(p)
    if verbose:
        print(f"({time.perf_counter() - t0:.1f} s)")
        print(f"{'':12s}{'recovered':>12s}{'true':>10s}")
        print(f"{'stiffness k':12s}{k:12.4f}{TRUE_K:10.4f}")
        print(f"{'damping c':12s}{c:12.4f}{TRUE_C:10.4f}")
    return {"k": float(k), "c": float(c), "history": history}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.08)
    args = ap.parse_args()
    main(args.iters, args.lr)
