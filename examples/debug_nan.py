"""Find where a NaN/Inf comes from with eager mode and `tg.detect_anomaly()`.

    python examples/debug_nan.py

A binary cross-entropy written naively, `-mean(y*log(p) + (1-y)*log(1-p))`, returns inf (and a NaN
gradient) as soon as a prediction saturates to exactly 0 or 1. `tg.detect_anomaly()` stops at the first
op that produces a non-finite value and tells which primitive it was, in which pass, and at which line
of *this* file -- for the backward pass also the forward line whose derivative blew up.
Eager mode (`tg.eager()`, or TRACEGRAD_EAGER=1) runs op by op, so `print` and `breakpoint()` work
inside the function while you look around.
"""
import numpy as np

import tracegrad as tg


def predict(w, x):
    return 1.0 / (1.0 + np.exp(-(x @ w)))        # sigmoid; saturates to exactly 1.0 for large x @ w


def bce(w, x, y):
    p = predict(w, x)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))     # log(1 - p) = log(0) when p == 1


def sqrt_loss(w):
    return np.sum(np.sqrt(w * w))          # |w| written as sqrt(w*w): fine forward, d/dw is 0/0 at w == 0


def show(err):
    print(f"  AnomalyError: {err}")
    print(f"    primitive      = {err.primitive!r}")
    print(f"    phase          = {err.phase!r}")
    print(f"    source         = {err.source!r}")
    print(f"    forward_source = {err.forward_source!r}")


def main():
    x = np.array([[1.0, 2.0], [30.0, 40.0]])     # the second row saturates the sigmoid
    y = np.array([0.0, 0.0])
    w = np.array([0.5, 1.0])

    loss, g = tg.value_and_grad(bce)(w, x, y)
    print(f"1) naive cross-entropy: loss = {loss}, grad = {g}  <- where does that come from?")

    print("2) the same under eager mode + detect_anomaly:")
    with tg.eager(), tg.detect_anomaly():
        try:
            tg.value_and_grad(bce)(w, x, y)
        except tg.AnomalyError as err:
            show(err)

    print("3) an anomaly that only appears in the backward pass (sqrt at 0):")
    w0 = np.array([0.0, 1.0])
    print(f"   without detection: value = {sqrt_loss(w0)}, grad = {tg.grad(sqrt_loss)(w0)}")
    with tg.eager(), tg.detect_anomaly():
        try:
            tg.grad(sqrt_loss)(w0)
        except tg.AnomalyError as err:
            show(err)

    print("4) detect_anomaly also works on compiled (non-eager) functions:")
    with tg.detect_anomaly():
        try:
            tg.jit(tg.value_and_grad(bce))(w, x, y)
        except tg.AnomalyError as err:
            show(err)


if __name__ == "__main__":
    with np.errstate(divide="ignore", invalid="ignore"):   # let the NaNs through quietly: we find them
        main()
