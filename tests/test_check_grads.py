"""check_grads itself must catch wrong derivative rules."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad import ops
from tracegrad import primitives as P




def f(x):
    return np.sum(np.sin(x) * x)


X = np.array([0.3, -1.2, 2.0])


def test_passes_on_correct_rules():
    tg.check_grads(f, (X,), order=2)


def test_catches_wrong_vjp(monkeypatch):
    monkeypatch.setitem(P.vjp_rules, P.sin_p, lambda ct, x, *, out: (ops.mul(ct, ops.sin(x)),))
    with pytest.raises(AssertionError, match="reverse mode"):
        tg.check_grads(f, (X,), order=1, modes=("rev",))
    tg.check_grads(f, (X,), order=1, modes=("fwd",))   # forward mode is untouched


def test_catches_wrong_jvp(monkeypatch):
    monkeypatch.setitem(P.jvp_rules, P.sin_p, lambda ts, x, *, out: ops.mul(ts[0], 1.01))
    with pytest.raises(AssertionError, match="forward mode"):
        tg.check_grads(f, (X,), order=1, modes=("fwd",))


def test_catches_rule_wrong_only_at_second_order(monkeypatch):
    # cos's derivative is used only when differentiating sin's rule a second time
    monkeypatch.setitem(P.vjp_rules, P.cos_p, lambda ct, x, *, out: (ops.mul(ct, ops.sin(x)),))
    tg.check_grads(f, (X,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match="order"):
        tg.check_grads(f, (X,), order=2, modes=("rev",))


def test_reports_worst_mismatch_and_handles_float32_args():
    tg.check_grads(lambda x: np.sum(np.exp(x)), (X.astype(np.float32),))
    with pytest.raises(ValueError, match="unknown mode"):
        tg.check_grads(f, (X,), modes=("sideways",))
