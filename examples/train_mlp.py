"""Train a small MLP classifier on the bundled 8x8 digits with tracegrad.

    python examples/train_mlp.py                 # 64 -> 128 -> 10, tanh, Adam
    python examples/train_mlp.py --epochs 5      # shorter run
    TRACEGRAD_EAGER=1 python examples/train_mlp.py --epochs 1    # no compilation, op by op

The whole training step -- forward pass, loss, gradient and parameter update -- is one function
compiled by `tg.jit`. Parameters are a dict (a pytree); the gradient comes back as the same dict.
Everything is seeded, so the printed accuracy is the same on every run.
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import time

import numpy as np

import tracegrad as tg

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "digits.csv.gz")
N_TEST = 360            # 1797 samples -> 1437 train / 360 test


# ---------------------------------------------------------------- data

def load_digits(path=DATA):
    """(images float32 (n, 64) with pixel counts 0..16, labels int64 (n,))."""
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return raw[:, :-1].astype(np.float32), raw[:, -1]


def split_and_standardise(x, y, n_test, seed):
    """Fixed-seed shuffle, split, and standardise with the training set's statistics."""
    perm = np.random.default_rng(seed).permutation(len(x))
    test, train = perm[:n_test], perm[n_test:]
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0                     # a few border pixels are always 0
    norm = lambda a: ((a - mean) / std).astype(np.float32)
    return norm(x[train]), y[train], norm(x[test]), y[test]


def one_hot(labels, n_classes=10):
    return np.eye(n_classes, dtype=np.float32)[labels]


# ---------------------------------------------------------------- model

def init_params(sizes, seed):
    """Glorot-uniform weights, zero biases, as a dict {W1, b1, W2, b2, ...}."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        lim = np.sqrt(6.0 / (n_in + n_out))
        params[f"W{i}"] = rng.uniform(-lim, lim, (n_in, n_out)).astype(np.float32)
        params[f"b{i}"] = np.zeros(n_out, np.float32)
    return params


def forward(params, x):
    """Logits of the MLP: tanh hidden layers, linear output layer."""
    n_layers = len(params) // 2
    h = x
    for i in range(1, n_layers):
        h = np.tanh(h @ params[f"W{i}"] + params[f"b{i}"])
    return h @ params[f"W{n_layers}"] + params[f"b{n_layers}"]


def log_softmax(z):
    # Subtracting the row maximum keeps exp() from overflowing. The shift does not change the
    # result, so its derivative is zero: stop_gradient saves differentiating through max.
    z = z - tg.stop_gradient(np.max(z, axis=1, keepdims=True))
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def loss_fn(params, x, y, weight_decay):
    """Mean softmax cross-entropy against one-hot labels `y`, plus L2 on the weights."""
    xent = -np.mean(np.sum(y * log_softmax(forward(params, x)), axis=1))
    l2 = sum(np.sum(w * w) for name, w in params.items() if name.startswith("W"))
    return xent + 0.5 * weight_decay * l2


# ---------------------------------------------------------------- optimiser

def make_train_step(optimizer):
    """The training step for `optimizer` (any `tg.optim` optimizer: init / update over pytrees)."""

    @tg.jit
    def train_step(params, opt_state, x, y, weight_decay):
        """Loss, gradient and the optimizer's update in ONE compiled function."""
        loss, grads = tg.value_and_grad(loss_fn)(params, x, y, weight_decay)
        params, opt_state = optimizer.update(grads, opt_state, params)
        return params, opt_state, loss
    return train_step


@tg.jit
def predict_logits(params, x):
    return forward(params, x)


def accuracy(params, x, labels):
    return float(np.mean(np.argmax(predict_logits(params, x), axis=1) == labels))


# ---------------------------------------------------------------- progress bar

class ProgressBar:
    """A one-line text progress bar redrawn in place (only when the stream is a terminal)."""

    def __init__(self, total, prefix="", width=24, stream=None):
        stream = sys.stderr if stream is None else stream
        self.total, self.prefix, self.width, self.stream = total, prefix, width, stream
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.t0 = self.last = time.perf_counter()
        self.last -= 1.0
        self.shown = 0

    def update(self, done, info=""):
        now = time.perf_counter()
        if not self.live or (now - self.last < 0.05 and done < self.total):
            return                                  # redraw at most 20 times a second
        self.last = now
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        rate = done / max(now - self.t0, 1e-9)
        text = f"{self.prefix} [{bar}] {done}/{self.total} {rate:6.0f} it/s {info}"
        self.stream.write("\r" + text.ljust(self.shown))
        self.stream.flush()
        self.shown = max(self.shown, len(text))

    def close(self):
        if self.live:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()


# ---------------------------------------------------------------- training loop

def main(epochs=25, batch_size=32, lr=3e-3, weight_decay=1e-4, hidden=128, seed=0, verbose=True):
    """Train and return a dict with the final `test_acc`, `train_acc`, `loss` and timings."""
    say = print if verbose else (lambda *a, **k: None)
    t_start = time.perf_counter()
    x, labels = load_digits()
    x_train, y_train, x_test, y_test = split_and_standardise(x, labels, N_TEST, seed)
    t_train = one_hot(y_train)
    params = init_params((x.shape[1], hidden, 10), seed)
    optimizer = tg.optim.adam(lr)
    opt_state = optimizer.init(params)
    train_step = make_train_step(optimizer)
    weight_decay = np.float32(weight_decay)
    shuffle_rng = np.random.default_rng(seed + 1)
    n_batches = len(x_train) // batch_size         # drop the ragged tail: every step has one shape

    eager = os.environ.get("TRACEGRAD_EAGER", "").strip().lower() not in ("", "0", "false", "no")
    mode = "eager" if eager else os.environ.get("TRACEGRAD_BACKEND", "numba")
    say(f"digits: {len(x_train)} train / {len(x_test)} test, MLP {x.shape[1]}-{hidden}-10, "
        f"batch {batch_size}, {n_batches} steps/epoch, tracegrad mode: {mode}")

    history = []
    for epoch in range(1, epochs + 1):
        order = shuffle_rng.permutation(len(x_train))
        bar = ProgressBar(n_batches, prefix=f"epoch {epoch:3d}/{epochs}")
        bar.update(0, "(compiling the training step)" if epoch == 1 and mode == "numba" else "")
        losses = []
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            params, opt_state, loss = train_step(params, opt_state, x_train[idx], t_train[idx],
                                                 weight_decay)
            losses.append(float(loss))
            bar.update(b + 1, f"loss {losses[-1]:.4f}")
        bar.close()
        train_acc = accuracy(params, x_train, y_train)
        test_acc = accuracy(params, x_test, y_test)
        history.append((float(np.mean(losses)), train_acc, test_acc))
        say(f"epoch {epoch:3d}/{epochs}  loss {history[-1][0]:.4f}  train acc {train_acc:6.2%}  "
            f"test acc {test_acc:6.2%}  ({time.perf_counter() - t_start:5.1f} s)")

    elapsed = time.perf_counter() - t_start
    loss, train_acc, test_acc = history[-1] if history else (float("nan"), 0.0, 0.0)
    say(f"final test accuracy: {test_acc:.2%} ({int(round(test_acc * len(x_test)))}/{len(x_test)}) "
        f"after {epochs} epochs in {elapsed:.1f} s")
    return {"test_acc": test_acc, "train_acc": train_acc, "loss": loss, "seconds": elapsed,
            "history": history}


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = _parse()
    main(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, hidden=a.hidden, seed=a.seed)
