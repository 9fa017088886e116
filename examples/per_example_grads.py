"""Per-example gradients with tg.vmap: DP-SGD-style clipping on the bundled digits MLP.

    python examples/per_example_grads.py                # 64 -> 128 -> 10 tanh MLP, DP-SGD
    python examples/per_example_grads.py --epochs 3     # shorter run

Differentially private SGD needs the gradient of EVERY example, not just the batch mean: each one
is clipped to a maximum L2 norm C (so no single example can move the model much), then the clipped
gradients are averaged and Gaussian noise of scale sigma * C / batch is added. `tg.vmap(tg.grad(
example_loss), in_axes=(None, 0, 0))` computes all per-example gradients of a batch in one batched
pass (the per-example matrix-vector products become matrix products); the whole step -- per-example
gradients, norms, clipping, noise and the update -- is one `tg.jit` function.

The first batch's per-example gradient norms are checked against a Python loop calling `tg.grad`
once per example. Model, data loading and preprocessing are `train_mlp.py`'s. (Only the clipping
and noise of DP-SGD are shown; accounting for the privacy budget is out of scope.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import tracegrad as tg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_mlp  # noqa: E402  (the digits data and the MLP)


def example_loss(params, x, y):
    """Softmax cross-entropy of ONE example (x of 64 pixels, one-hot y of 10)."""
    logits = train_mlp.forward(params, x[None, :])
    return -np.sum(y * train_mlp.log_softmax(logits)[0])


per_example_grads = tg.vmap(tg.grad(example_loss), in_axes=(None, 0, 0))


def global_norms(grads):
    """The L2 norm of each example's whole gradient (all parameters), shape (batch,)."""
    return np.sqrt(sum(np.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in grads.values()))


def clipped_mean(grads, clip):
    """DP-SGD's clipping: g_i * min(1, C / |g_i|), averaged over the batch."""
    norms = global_norms(grads)
    factor = np.minimum(1.0, clip / np.maximum(norms, 1e-12))
    return {k: np.mean(g * factor.reshape((-1,) + (1,) * (g.ndim - 1)), axis=0)
            for k, g in grads.items()}, norms


@tg.jit
def dp_step(params, x, y, noise, lr, clip, sigma):
    """One DP-SGD step: per-example gradients, clipping, noise, SGD update (one compiled function)."""
    grads = per_example_grads(params, x, y)
    mean, norms = clipped_mean(grads, clip)
    scale = sigma * clip / x.shape[0]
    new = {k: params[k] - lr * (mean[k] + scale * noise[k]) for k in params}
    return new, norms


def loop_norms(params, x, y):
    """The reference: one tg.grad call per example, in a Python loop."""
    grad = tg.grad(example_loss)
    out = []
    for i in range(len(x)):
        g = grad(params, x[i], y[i])
        out.append(np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in g.values())))
    return np.array(out)


def main(epochs=10, batch_size=64, lr=0.2, clip=1.0, sigma=0.5, hidden=128, seed=0, verbose=True):
    """Check per-example norms against a loop, train with DP-SGD; return a dict of results."""
    say = print if verbose else (lambda *a, **k: None)
    t_start = time.perf_counter()
    x, labels = train_mlp.load_digits()
    x_train, y_train, x_test, y_test = train_mlp.split_and_standardise(x, labels, train_mlp.N_TEST, seed)
    t_train = train_mlp.one_hot(y_train)
    params = train_mlp.init_params((x.shape[1], hidden, 10), seed)

    # the check: vmap(grad) against a Python loop of grad, on the first batch
    xb, yb = x_train[:batch_size], t_train[:batch_size]
    vm = np.asarray(global_norms(per_example_grads(params, xb, yb)), np.float64)
    ref = loop_norms(params, xb, yb)
    max_rel = float(np.max(np.abs(vm - ref) / ref))
    say(f"per-example gradient norms of the first batch ({batch_size} examples): "
        f"min {vm.min():.3f}, median {np.median(vm):.3f}, max {vm.max():.3f}; "
        f"vmap vs a Python loop of tg.grad: max relative difference {max_rel:.1e}")

    rng = np.random.default_rng(seed + 1)
    n_batches = len(x_train) // batch_size
    lr, clip, sigma = np.float32(lr), np.float32(clip), np.float32(sigma)
    clipped_share = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            noise = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in params.items()}
            params, norms = dp_step(params, x_train[idx], t_train[idx], noise, lr, clip, sigma)
            clipped_share.append(float(np.mean(norms > clip)))
        test_acc = train_mlp.accuracy(params, x_test, y_test)
        say(f"epoch {epoch:3d}/{epochs}  examples clipped this epoch "
            f"{np.mean(clipped_share[-n_batches:]):6.1%}  test acc {test_acc:6.2%}")
    test_acc = train_mlp.accuracy(params, x_test, y_test)
    say(f"final test accuracy with DP-SGD (C={float(clip)}, sigma={float(sigma)}): {test_acc:.2%} "
        f"after {epochs} epochs in {time.perf_counter() - t_start:.1f} s")
    return {"max_rel_diff": max_rel, "norms": vm, "loop_norms": ref, "test_acc": test_acc,
            "clipped_share": clipped_share}


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = _parse()
    main(epochs=a.epochs, batch_size=a.batch_size, clip=a.clip, sigma=a.sigma, seed=a.seed)
