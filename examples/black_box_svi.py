"""Black-box variational inference: fit a diagonal Gaussian to a posterior by stochastic gradient
descent on the negative evidence lower bound, with the random draws inside the objective.

    python examples/black_box_svi.py                      # also writes black_box_svi.png (matplotlib)
    python examples/black_box_svi.py --steps 300 --figure none

The model is a Bayesian linear regression on synthetic data (two correlated inputs, a Gaussian
prior on the two weights, Gaussian noise), so the exact posterior is a Gaussian we can write down
and the fit can be checked: the best diagonal Gaussian has the posterior's mean and, per weight,
the standard deviation 1 / sqrt(precision[i, i]), narrower than the posterior's marginal one when
the weights are correlated (mean-field VI's well-known underestimate).

The objective is written in plain NumPy, the way autograd's examples write it: a RandomState
created once, and `rs.randn(num_samples, D)` called inside the objective. tracegrad records those
calls as run-time draws, so every step of the compiled optimiser (`tg.optim.minimize`) draws fresh
samples from `rs`, exactly the samples an eager (or plain NumPy) loop would draw.
"""
from __future__ import annotations

import argparse

import numpy as np

import tracegrad as tg

D = 2               # number of weights
PRIOR_STD = 1.0
NOISE_STD = 0.5


def make_data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, D))
    x = np.column_stack([z[:, 0], 0.8 * z[:, 0] + 0.6 * z[:, 1]])    # correlated inputs
    y = x @ np.array([1.5, -0.7]) + NOISE_STD * rng.standard_normal(n)
    return x, y


def log_posterior(w, x, y):
    """Unnormalised log posterior of a batch of weight vectors w (shape (S, D)): shape (S,)."""
    log_prior = -0.5 * np.sum(w ** 2, axis=1) / PRIOR_STD ** 2
    residuals = y[None, :] - w @ x.T
    return log_prior - 0.5 * np.sum(residuals ** 2, axis=1) / NOISE_STD ** 2


def black_box_variational_inference(logprob, dim, num_samples, seed=0):
    """(objective, unpack): a stochastic estimate of the negative ELBO of a diagonal Gaussian
    q = N(mean, exp(log_std)^2), by the reparameterisation trick."""
    rs = np.random.RandomState(seed)

    def unpack(params):
        return params[:dim], params[dim:]

    def gaussian_entropy(log_std):
        return 0.5 * dim * (1.0 + np.log(2 * np.pi)) + np.sum(log_std)

    def objective(params):
        mean, log_std = unpack(params)
        samples = rs.randn(num_samples, dim) * np.exp(log_std) + mean
        return -(gaussian_entropy(log_std) + np.mean(logprob(samples)))

    return objective, unpack


def exact_posterior(x, y):
    precision = np.eye(D) / PRIOR_STD ** 2 + x.T @ x / NOISE_STD ** 2
    cov = np.linalg.inv(precision)
    return cov @ x.T @ y / NOISE_STD ** 2, cov, precision


def main(steps=600, num_samples=64, lr=0.05, seed=0, verbose=True, figure=None):
    x, y = make_data()
    objective, unpack = black_box_variational_inference(lambda w: log_posterior(w, x, y), D,
                                                        num_samples, seed)
    init = np.concatenate([np.zeros(D), np.full(D, -2.0)])

    def report(step, params, loss):
        if verbose and (step == 0 or (step + 1) % 100 == 0):
            print(f"step {step + 1:4d}  -ELBO estimate {float(loss):9.3f}")

    params, losses = tg.optim.minimize(objective, init, optimizer=tg.optim.adam(lr), steps=steps,
                                       callback=report)
    mean, log_std = unpack(params)
    std = np.exp(log_std)
    exact_mean, cov, precision = exact_posterior(x, y)
    mean_field_std = 1 / np.sqrt(np.diag(precision))
    if verbose:
        print(f"{'':18s}{'fitted':>18s}{'exact':>18s}")
        print(f"{'mean':18s}{np.array2string(mean, precision=3):>18s}"
              f"{np.array2string(exact_mean, precision=3):>18s}")
        print(f"{'std (mean-field)':18s}{np.array2string(std, precision=3):>18s}"
              f"{np.array2string(mean_field_std, precision=3):>18s}")
        print(f"{'posterior std':18s}{'':>18s}{np.array2string(np.sqrt(np.diag(cov)), precision=3):>18s}")
    if figure:
        plot(figure, losses, mean, std, exact_mean, cov, verbose)
    return {"mean": mean, "std": std, "exact_mean": exact_mean, "mean_field_std": mean_field_std,
            "losses": losses}


def plot(path, losses, mean, std, exact_mean, cov, verbose=True):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if verbose:
            print("(matplotlib is not installed: no figure; pip install matplotlib)")
        return
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.2))
    g0, g1 = np.meshgrid(np.linspace(exact_mean[0] - 0.6, exact_mean[0] + 0.6, 120),
                         np.linspace(exact_mean[1] - 0.6, exact_mean[1] + 0.6, 120))
    pts = np.stack([g0.ravel(), g1.ravel()], axis=1)

    def gaussian(m, c):
        d = pts - m
        return np.exp(-0.5 * np.sum(d @ np.linalg.inv(c) * d, axis=1)).reshape(g0.shape)
    ax0.contour(g0, g1, gaussian(exact_mean, cov), levels=4, colors="k")
    ax0.contour(g0, g1, gaussian(mean, np.diag(std ** 2)), levels=4, colors="C1")
    ax0.set(title="exact posterior (black), fitted q (orange)", xlabel="w0", ylabel="w1")
    ax1.plot(losses, lw=0.6, color="C0")
    ax1.set(title="-ELBO estimate per step (fresh samples each step)", xlabel="step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if verbose:
        print(f"figure: {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--figure", default="black_box_svi.png", help="output PNG, or 'none'")
    args = ap.parse_args()
    main(args.steps, args.samples, args.lr, figure=None if args.figure == "none" else args.figure)
