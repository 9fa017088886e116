"""Compiled anomaly detection: the first NaN/Inf in IR order, with the same fields as eager mode."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracegrad as tg

pytestmark = pytest.mark.compiled


def forward_log(x):
    y = np.log(x - 1.0)               # -inf at x == 1: the forward anomaly
    return np.sum(y * 2.0)


def backward_sqrt(x):
    return np.sum(np.sqrt(x))         # finite at 0, but its derivative 0.5/sqrt(0) is inf


def here(fn, k):
    return f"{__file__}:{fn.__code__.co_firstlineno + k}"


def anomaly(fn, *args, eager=False):
    with tg.detect_anomaly(), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if eager:
            with tg.eager():
                fn(*args)
        else:
            fn(*args)
    return None


@pytest.mark.parametrize("eager", [False, True], ids=["compiled", "eager"])
def test_forward_anomaly_fields(eager):
    with pytest.raises(tg.AnomalyError) as info:
        anomaly(tg.jit(forward_log), np.array([1.0, 2.0, 3.0]), eager=eager)
    e = info.value
    assert (e.primitive, e.phase, e.source, e.forward_source) == ("log", "forward", here(forward_log, 1), None)


@pytest.mark.parametrize("eager", [False, True], ids=["compiled", "eager"])
def test_backward_anomaly_names_the_forward_line(eager):
    with pytest.raises(tg.AnomalyError) as info:
        anomaly(tg.grad(backward_sqrt), np.array([0.0, 4.0]), eager=eager)
    e = info.value
    assert e.phase == "backward"
    assert e.forward_source == here(backward_sqrt, 1)
    assert e.source == here(backward_sqrt, 1)
    assert e.primitive == "div"          # 0.5 / sqrt(x): the first backward equation to blow up


def test_compiled_reports_first_equation_in_ir_order_across_fused_loops():
    # c = log(x - 1) is -inf at x == 1, and everything downstream is NaN/Inf too (in the same
    # fused loop, and in a later reduction): the report is still the log.
    def f(x, y):
        a = np.exp(y) * 0.5
        c = np.log(x - 1.0)
        d = c * a + np.tanh(c)
        return np.sum(d, axis=0) + np.max(a)

    x = np.array([[2.0, 3.0], [1.0, 4.0]])
    y = np.zeros((2, 2))
    for eager in (False, True):
        with pytest.raises(tg.AnomalyError) as info:
            anomaly(tg.jit(f), x, y, eager=eager)
        assert info.value.primitive == "log" and info.value.source == here(f, 2)


def test_inputs_holding_nan_are_reported_at_their_first_use():
    def f(x):
        return np.broadcast_to(x, (3, 2)) * 2.0

    x = np.array([1.0, np.nan])
    with pytest.raises(tg.AnomalyError) as compiled:
        anomaly(tg.jit(f), x)
    with pytest.raises(tg.AnomalyError) as eager:
        anomaly(tg.jit(f), x, eager=True)
    assert compiled.value.primitive == eager.value.primitive == "broadcast_to"


def test_no_anomaly_same_results_as_unchecked():
    def f(w, x):
        return np.sum(np.tanh(x @ w) ** 2)

    w = np.random.default_rng(0).standard_normal((3, 2))
    x = np.random.default_rng(1).standard_normal((4, 3))
    plain = tg.grad(f)(w, x)
    with tg.detect_anomaly():
        checked = tg.grad(f)(w, x)
    np.testing.assert_allclose(checked, plain, rtol=1e-12)
