"""Every primitive under vmap: a batch of members stacked along random axes, against a Python loop
over the members (values, and gradients: vmap of grad against a loop of grad, and grad/jvp of vmap
against central finite differences), on the interpreter tier and in eager mode. One compiled test
runs many cases in one jitted function."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import primitives as P

from vmap_cases import CASES, BY_NAME

B = 3


def draw(case, seed, size=B):
    """(operands, in_axes, per-member operands): a random choice of batched operands and axes."""
    rng = np.random.default_rng(seed)
    members = [[g(rng) for g in case.gens] for _ in range(size)]
    cand = [k for k in range(len(case.gens)) if k not in case.shared]
    batched = [k for k in cand if rng.random() < 0.6] or [cand[rng.integers(len(cand))]]
    operands, axes = [], []
    for k in range(len(case.gens)):
        if k not in batched:
            for m in members:
                m[k] = members[0][k]
            operands.append(members[0][k])
            axes.append(None)
            continue
        r = np.ndim(members[0][k])
        a = int(rng.integers(0, r + 1))
        operands.append(np.stack([np.asarray(m[k]) for m in members], axis=a))
        axes.append(a - (r + 1) if rng.random() < 0.3 else a)     # negative axes too
    return operands, tuple(axes), members


def stacked(outs):
    leaves = [tg.tree_flatten(o)[0] for o in outs]
    return [np.stack([np.asarray(l[j]) for l in leaves]) for j in range(len(leaves[0]))]


def assert_tree_close(got, want, tol, what):
    got = tg.tree_flatten(got)[0]
    assert len(got) == len(want), f"{what}: {len(got)} outputs, loop gives {len(want)}"
    for g, w in zip(got, want):
        g = np.asarray(g)
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what}: {g.dtype}{g.shape} vs loop {w.dtype}{w.shape}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=what)
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


def seed_of(name, k=0):
    return zlib.crc32(f"{name}/{k}".encode())


def loss_of(case, members, seed):
    """A scalar of the outputs with fixed random weights, and the operand positions to differentiate."""
    out0 = tg.tree_flatten(case.fn(*members[0]))[0]
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(np.shape(o)) if np.asarray(o).dtype.kind == "f" else None for o in out0]

    def loss(*a):
        outs = tg.tree_flatten(case.fn(*a))[0]
        return sum(np.sum(o * w) for o, w in zip(outs, weights) if w is not None)
    nums = tuple(k for k, g in enumerate(members[0]) if np.asarray(g).dtype.kind == "f"
                 and k not in case.no_grad and k not in case.shared)
    return loss, nums


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_values_against_a_loop(name, capsys):
    case = BY_NAME[name]
    for k, mode in enumerate(("interpret", "interpret", "interpret", "eager")):
        operands, axes, members = draw(case, seed_of(name, k))
        want = stacked([case.fn(*m) for m in members])
        f = tg.vmap(case.fn, in_axes=axes)
        if mode == "eager":
            with tg.eager():
                got = f(*operands)
        else:
            got = f(*operands)
        assert_tree_close(got, want, case.tol, f"{name} {mode} in_axes={axes}")


@pytest.mark.parametrize("name", sorted(n for n, c in BY_NAME.items() if c.grad))
def test_gradients(name, capsys):
    case = BY_NAME[name]
    operands, axes, members = draw(case, seed_of(name, 7))
    loss, nums = loss_of(case, members, seed_of(name, 8))
    if not nums:
        return
    grad = tg.grad(loss, argnums=nums)
    want = stacked([grad(*m) for m in members])
    got = tg.vmap(grad, in_axes=axes)(*operands)
    assert_tree_close(got, want, max(case.tol, 1e-9), f"{name} vmap(grad) in_axes={axes}")
    with tg.eager():
        got = tg.vmap(grad, in_axes=axes)(*operands)
    assert_tree_close(got, want, max(case.tol, 1e-9), f"{name} eager vmap(grad) in_axes={axes}")
    if case.fd:
        def of_diff(*diff):
            full = list(operands)
            for k, d in zip(nums, diff):
                full[k] = d
            return tg.vmap(case.fn, in_axes=axes)(*full)
        tg.check_grads(of_diff, tuple(operands[k] for k in nums), order=1)


def test_every_primitive_has_a_case():
    seen = set()
    for case in CASES:
        operands, axes, _ = draw(case, 0)
        ir = tg.make_ir(tg.vmap(case.fn, in_axes=axes))(*operands)
        todo = [ir]
        while todo:
            cur = todo.pop()
            for e in cur.eqns:
                seen.add(e.prim.name)
                todo += [v for v in e.params.values() if isinstance(v, tg.IR)]
                todo += [v for t in e.params.values() if isinstance(t, tuple) for v in t
                         if isinstance(v, tg.IR)]
    missing = sorted(set(P.all_primitives) - seen)
    assert not missing, f"primitives no vmap case exercises (add one in tests/vmap_cases.py): {missing}"


@pytest.mark.compiled
@pytest.mark.parametrize("half", [0, 1])
def test_many_cases_compiled_in_one_function(half):
    # every batch rule, but elementwise ones only by a few representatives (one rule for all); in
    # two functions, each well inside the compile-memory budget
    unary = {p.name for p in P.all_primitives.values() if p.family in ("unary", "predicate")}
    names = [n for n in sorted(BY_NAME) if not n.startswith(("callback", "debug"))
             and (n not in unary or n in ("exp", "tanh", "lgamma", "isnan", "round"))][half::2]
    drawn = [draw(BY_NAME[n], seed_of(n, 3)) for n in names]

    def everything(*all_ops):
        outs, k = [], 0
        for n, (ops, axes, _) in zip(names, drawn):
            outs.append(tg.vmap(BY_NAME[n].fn, in_axes=axes)(*all_ops[k:k + len(ops)]))
            k += len(ops)
        return outs

    flat = [o for ops, _, _ in drawn for o in ops]
    jf = tg.jit(everything, compile="sync")
    got = jf(*flat)
    # (the entries of both halves: one code object)
    assert {e.tier for e in jf.cache_info().entries} == {"native"}, jf.cache_info()
    for n, (_, _, members), g in zip(names, drawn, got):
        case = BY_NAME[n]
        assert_tree_close(g, stacked([case.fn(*m) for m in members]), max(case.tol, 1e-6), n)
