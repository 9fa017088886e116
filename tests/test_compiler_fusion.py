"""The fusion planner on random programs: every plan is a valid schedule, and compiled results
agree with eager mode. (Planning is pure Python, so many programs are checked without compiling.)"""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir import Var

from compiler.fuse import Plan
from compiler.rules import Reduction

pytestmark = pytest.mark.compiled


def random_program(seed, n_ops=14):
    """A function of two (4, 3) arrays mixing elementwise ops, reductions and broadcasts back."""
    r = np.random.default_rng(seed)
    script = [(r.integers(0, 7), r.integers(0, 1 << 30), r.integers(0, 1 << 30)) for _ in range(n_ops)]

    def f(x, y):
        pool = [x, y, np.sin(x)]
        for op, i, j in script:
            a, b = pool[i % len(pool)], pool[j % len(pool)]
            if op == 0:
                out = a * b + 0.5
            elif op == 1:
                out = np.tanh(a) - b
            elif op == 2:
                out = np.sum(a, axis=0) if a.ndim == 2 else np.sum(a)
            elif op == 3:
                out = a - np.max(a, axis=-1, keepdims=True) if a.ndim else a * 2.0
            elif op == 4:
                out = a * np.mean(b)
            elif op == 5:
                out = np.exp(-a * a) if a.ndim else np.exp(-a)
            else:
                out = (a[None] if a.ndim == 1 else a) * 1.5
            pool.append(out)
        return sum(np.sum(p) for p in pool[-4:])

    return f


def check_schedule(plan):
    seen = set(plan.inputs)
    for g in plan.groups:
        produced_here = {v for i in g.members for v in plan.eqns[i].outs}
        for i in g.members:
            for a, acc in plan.reads(i):
                root = acc.root
                if not isinstance(root, Var) or root in seen:
                    continue
                p = plan.producer.get(root)
                ok = root in produced_here and plan.is_inloop_read(i, a) and a is root \
                    and not isinstance(plan.rules[p], Reduction)
                assert ok, f"equation {i} reads {root} before it is computed"
        seen |= produced_here


@pytest.mark.parametrize("seed", range(40))
def test_random_plans_are_valid_schedules(seed):
    x = np.random.default_rng(seed).standard_normal((4, 3))
    f = random_program(seed)
    for g in (f, tg.grad(f), tg.grad(f, argnums=1)):
        ir = tg.make_ir(g)(x, x + 1.0)
        for check in (False, True):
            check_schedule(Plan(ir, check))


@pytest.mark.parametrize("seed", [3, 11, 27])
def test_random_programs_compiled_agree_with_eager(seed):
    r = np.random.default_rng(seed)
    x, y = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    g = tg.grad(random_program(seed), argnums=(0, 1))
    got = g(x, y)
    with tg.eager():
        want = g(x, y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
