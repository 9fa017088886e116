"""Shape smoke with a differentiable fluid simulation: find the initial velocity field that makes a
square of smoke flow into a ring, with scipy.optimize.minimize and tracegrad's gradient.

    python examples/fluid_sim.py                          # also writes fluid_sim.png (matplotlib)
    python examples/fluid_sim.py --grid 24 --steps 8 --iters 15 --figure none

The simulation is written in plain NumPy, the way autograd's fluidsim example (after Jos Stam's
"Real-Time Fluid Dynamics for Games") writes it: Python loops, `np.roll` for the neighbours, and
semi-Lagrangian advection that looks up where each cell's contents came from with integer indices
computed from the (traced) velocities, `np.floor(...).astype(int)`, then gathers a field at those
indices. In the first step that field is the initial smoke, a NumPy constant: `init_smoke[rows,
cols]` with traced index arrays records a gather. The objective is a weighted mean of squared pixel
errors written as a matrix product with a row of pixel weights, so it returns shape (1,), which
`tg.value_and_grad` accepts as scipy does.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.optimize

import tracegrad as tg


def project(vx, vy, iterations=8):
    """Make the velocity field (nearly) divergence-free: solve for a pressure with a few Jacobi
    iterations and subtract its gradient (periodic boundaries)."""
    h = 1.0 / vx.shape[0]
    div = -0.5 * h * (np.roll(vx, -1, axis=1) - np.roll(vx, 1, axis=1)
                      + np.roll(vy, -1, axis=0) - np.roll(vy, 1, axis=0))
    p = np.zeros(vx.shape)
    for _ in range(iterations):
        p = (div + np.roll(p, 1, axis=0) + np.roll(p, -1, axis=0)
             + np.roll(p, 1, axis=1) + np.roll(p, -1, axis=1)) / 4.0
    vx = vx - 0.5 * (np.roll(p, -1, axis=1) - np.roll(p, 1, axis=1)) / h
    vy = vy - 0.5 * (np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)) / h
    return vx, vy


def advect(field, vx, vy):
    """Move `field` along the velocities for one time step: each cell takes the value found where
    its contents were a step ago, interpolated bilinearly between the four surrounding cells."""
    rows, cols = field.shape
    cell_rows, cell_cols = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    src_rows = (cell_rows - vy).ravel()
    src_cols = (cell_cols - vx).ravel()
    top = np.floor(src_rows).astype(int)
    left = np.floor(src_cols).astype(int)
    down = src_rows - top                    # weight of the row below
    right = src_cols - left                  # weight of the column to the right
    top, bottom = np.mod(top, rows), np.mod(top + 1, rows)     # wrap around the edges
    left, rightmost = np.mod(left, cols), np.mod(left + 1, cols)
    flat = ((1 - down) * ((1 - right) * field[top, left] + right * field[top, rightmost])
            + down * ((1 - right) * field[bottom, left] + right * field[bottom, rightmost]))
    return np.reshape(flat, (rows, cols))


def simulate(vx, vy, smoke, steps):
    for _ in range(steps):
        vx_next = advect(vx, vx, vy)
        vy_next = advect(vy, vx, vy)
        vx, vy = project(vx_next, vy_next)
        smoke = advect(smoke, vx, vy)
    return smoke


def make_problem(n):
    """A square of smoke in the middle, a ring as the target (synthetic images, n x n)."""
    r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    centre = (n - 1) / 2
    init_smoke = ((np.abs(r - centre) < n / 6) & (np.abs(c - centre) < n / 6)).astype(float)
    radius = np.hypot(r - centre, c - centre)
    target = np.exp(-((radius - n / 3.2) / (n / 14)) ** 2)
    target *= init_smoke.sum() / target.sum()           # the same amount of smoke
    return init_smoke, target


def outward_flow(n, speed):
    """A gentle radial flow to start from: at zero velocity the interpolation's derivative sees only
    the cells below and to the right (np.floor of an integer position), which biases the first
    steps of the optimiser to one side."""
    r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    centre = (n - 1) / 2
    radius = np.hypot(r - centre, c - centre) + 1e-9
    return np.concatenate([(speed * (c - centre) / radius).ravel(), (speed * (r - centre) / radius).ravel()])


def make_objective(init_smoke, target, steps):
    n = target.shape[0]
    pixel_weights = np.full((1, n * n), 1.0 / (n * n))   # a row of weights: a (1,)-shaped objective

    def unpack(params):
        return np.reshape(params[:n * n], (n, n)), np.reshape(params[n * n:], (n, n))

    def objective(params):
        vx, vy = unpack(params)
        final = simulate(vx, vy, init_smoke, steps)
        return pixel_weights @ ((final - target) ** 2).ravel()

    return objective, unpack


def main(grid=32, steps=12, iters=60, verbose=True, figure=None):
    init_smoke, target = make_problem(grid)
    objective, unpack = make_objective(init_smoke, target, steps)
    value_and_grad = tg.value_and_grad(objective)
    history = []

    def record(params):
        history.append(float(objective(params)[0]))     # plain NumPy: no transform is active
        if verbose:
            print(f"iteration {len(history):3d}  objective {history[-1]:.6f}")

    x0 = outward_flow(grid, 0.4)
    start = float(objective(x0)[0])
    if verbose:
        print(f"initial objective {start:.6f}  ({grid}x{grid} grid, {steps} time steps)")
    t0 = time.perf_counter()
    result = scipy.optimize.minimize(value_and_grad, x0, jac=True, method="L-BFGS-B",
                                     options={"maxiter": iters}, callback=record)
    if verbose:
        print(f"({time.perf_counter() - t0:.1f} s, {result.nfev} objective+gradient evaluations)")
    vx, vy = unpack(result.x)
    final = simulate(vx, vy, init_smoke, steps)
    if figure:
        plot(figure, init_smoke, final, target, verbose)
    return {"initial": start, "final": float(result.fun[0]) if np.ndim(result.fun) else float(result.fun),
            "history": history, "x": result.x, "smoke": final}


def plot(path, init_smoke, final, target, verbose=True):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if verbose:
            print("(matplotlib is not installed: no figure; pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, img, title in zip(axes, (init_smoke, final, target),
                              ("initial smoke", "after the optimised flow", "target")):
        ax.imshow(img, cmap="magma")
        ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if verbose:
        print(f"figure: {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--figure", default="fluid_sim.png", help="output PNG, or 'none'")
    args = ap.parse_args()
    main(args.grid, args.steps, args.iters, figure=None if args.figure == "none" else args.figure)
