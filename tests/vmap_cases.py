"""The vmap case table: one or more functions per primitive, with per-member input generators.

A `Case` is a function of array operands and, per operand, a generator of ONE member's value
(`rng -> array`); tests draw a few members, stack them along random axes and compare `tg.vmap` of
the function with a Python loop over the members. `shared` operands are never batched (Python
scalars, static-like values); `grad` says whether the function is differentiable in its float
operands (then gradients are checked too).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import primitives as P
from tracegrad.trace import bind

X = P.all_primitives


@dataclass
class Case:
    name: str
    fn: Callable
    gens: list
    grad: bool = True
    shared: tuple = ()          # operand positions never batched
    tol: float = 1e-10
    fd: bool = True             # check against finite differences (when grad)
    no_grad: tuple = field(default=())   # operand positions not differentiated


# ---------------------------------------------------------------- generators of one member

def u(shape, lo=-2.0, hi=2.0, dtype=np.float64):
    return lambda rng: rng.uniform(lo, hi, shape).astype(dtype)


def signed(shape, lo=0.5, hi=2.0):
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def ints(shape, lo, hi, dtype=np.int64):
    return lambda rng: rng.integers(lo, hi + 1, shape).astype(dtype)


def bools(shape):
    return lambda rng: rng.integers(0, 2, shape).astype(bool)


def special(shape):
    def g(rng):
        v = rng.uniform(-2, 2, shape)
        flat = v.reshape(-1)
        flat[rng.integers(0, flat.size, 2)] = rng.choice([np.nan, np.inf, -np.inf, 0.0], 2)
        return v
    return g


def spd(n, batch=()):
    def g(rng):
        m = rng.standard_normal(batch + (n, n))
        return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)
    return g


def well(n):
    return lambda rng: rng.standard_normal((n, n)) + 3 * np.eye(n)


def distinct(shape):
    def g(rng):
        n = int(np.prod(shape))
        return (rng.permutation(n) * 0.5 + rng.uniform(0, 0.1, n)).reshape(shape)
    return g


def const(value):
    return lambda rng: value


DOMAIN = {"any": u((3, 4)), "pos": u((3, 4), 0.5, 3.0), "unit": u((3, 4), -0.9, 0.9),
          "ge1": u((3, 4), 1.2, 3.0), "small": u((3, 4), -1.0, 1.0), "halves": u((3, 4), -3, 3),
          "special": signed((3, 4))}


def prim_fn(prim, **params):
    return lambda *a: bind(prim, *a, **params)


# ---------------------------------------------------------------- the cases

def _elementwise():
    cases = []
    for p in X.values():
        if p.family in ("unary", "predicate") and p.domain is not None:
            gen = special((3, 4)) if p.family == "predicate" else DOMAIN[p.domain]
            cases.append(Case(p.name, prim_fn(p), [gen], grad=p.differentiable,
                              fd=p.name != "stop_gradient"))
    cases += [
        Case("integer_pow", prim_fn(X["integer_pow"], y=3), [u((3, 4))]),
        Case("convert", prim_fn(X["convert"], dtype=np.dtype(np.float32)), [u((3, 4))], tol=1e-6,
             fd=False),
        Case("convert_int", prim_fn(X["convert"], dtype=np.dtype(np.int32)), [u((2, 3), -5, 5)],
             grad=False),
        Case("add_rank", prim_fn(X["add"]), [u((3, 4)), u((4,))]),
        Case("sub_lit", lambda x: bind(X["sub"], np.float64(0.5), x), [u((2, 3))]),
        Case("mul_scalar", prim_fn(X["mul"]), [u(()), u((2, 3))]),
        Case("div", prim_fn(X["div"]), [u((3, 1)), u((1, 4), 0.5, 2)]),
        Case("pow", prim_fn(X["pow"]), [u((3, 4), 0.5, 2), u((3, 4))]),
        Case("max", prim_fn(X["max"]), [u((3, 4)), u((4,))]),
        Case("min", prim_fn(X["min"]), [u((2, 3)), u((2, 3))]),
        Case("atan2", prim_fn(X["atan2"]), [u((2, 3)), u((2, 3))]),
        Case("rem", prim_fn(X["rem"]), [u((2, 3), 2, 5), u((2, 3), 0.7, 1.3)]),
        Case("floordiv", prim_fn(X["floordiv"]), [u((2, 3)), u((3,), 0.5, 2)], grad=False),
        Case("and", prim_fn(X["and"]), [ints((2, 3), -4, 4), ints((3,), -4, 4)], grad=False),
        Case("or", prim_fn(X["or"]), [bools((2, 3)), bools((2, 3))], grad=False),
        Case("xor", prim_fn(X["xor"]), [ints((2, 3), 0, 7), ints((2, 3), 0, 7)], grad=False),
        Case("not", prim_fn(X["not"]), [bools((2, 3))], grad=False),
        Case("select", prim_fn(X["select"]), [bools((3, 4)), u((3, 4)), u((4,))]),
        Case("select_scalar_pred", prim_fn(X["select"]), [bools(()), u((2, 3)), u((2, 3))]),
        Case("polygamma", lambda n, x: bind(X["polygamma"], n, x), [const(np.float64(1.0)),
             u((2, 3), 0.5, 3)], shared=(0,), no_grad=(0,)),
        Case("gammainc", prim_fn(X["gammainc"]), [u((2, 3), 0.5, 3), u((2, 3), 0.5, 3)],
             no_grad=(0,)),
        Case("gammaincc", prim_fn(X["gammaincc"]), [u((3,), 0.5, 3), u((2, 3), 0.5, 3)],
             no_grad=(0,)),
        Case("betainc", prim_fn(X["betainc"]), [u((2, 3), 0.5, 3), u((2, 3), 0.5, 3),
             u((2, 3), 0.1, 0.9)], no_grad=(0, 1)),
    ]
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        cases.append(Case(name, prim_fn(X[name]), [ints((3, 4), -2, 2), ints((4,), -2, 2)], grad=False))
    return cases


def _reductions():
    cases = []
    for name in ("reduce_sum", "reduce_prod", "reduce_max", "reduce_min"):
        gen = distinct((2, 3, 4)) if name in ("reduce_max", "reduce_min") else u((2, 3, 4), 0.5, 1.5)
        for axes in [(0,), (1, 2), (0, 1, 2)]:
            cases.append(Case(f"{name}{axes}", prim_fn(X[name], axes=axes), [gen]))
    for name in ("reduce_and", "reduce_or"):
        cases.append(Case(name, prim_fn(X[name], axes=(1,)), [bools((3, 4))], grad=False))
    for name in ("argmax", "argmin"):
        cases.append(Case(name, prim_fn(X[name], axis=1), [distinct((3, 4))], grad=False))
    return cases


def _structure():
    dg = lambda lc, rc, lb=(), rb=(): dict(contract=(lc, rc), batch=(lb, rb))   # noqa: E731
    return [
        Case("reshape", prim_fn(X["reshape"], shape=(4, 6)), [u((2, 3, 4))]),
        Case("broadcast_to", prim_fn(X["broadcast_to"], shape=(2, 3, 4)), [u((3, 1))]),
        Case("transpose", prim_fn(X["transpose"], perm=(2, 0, 1)), [u((2, 3, 4))]),
        Case("slice", prim_fn(X["slice"], start=(0, 1), limit=(3, 4), strides=(2, 2)), [u((3, 4))]),
        Case("rev", prim_fn(X["rev"], axes=(0, 2)), [u((2, 3, 4))]),
        Case("pad", prim_fn(X["pad"], config=((1, 0, 1), (0, 2, 0))), [u((2, 3)), u(())]),
        Case("concatenate", prim_fn(X["concatenate"], axis=1), [u((2, 1)), u((2, 3)), u((2, 2))]),
        Case("dot_matvec", prim_fn(X["dot_general"], **dg((1,), (0,))), [u((3, 4)), u((4,))]),
        Case("dot_matmul", prim_fn(X["dot_general"], **dg((1,), (0,))), [u((3, 4)), u((4, 2))]),
        Case("dot_outer", prim_fn(X["dot_general"], **dg((), ())), [u((3,)), u((2,))]),
        Case("dot_batched", prim_fn(X["dot_general"], **dg((2,), (1,), (0,), (0,))),
             [u((2, 3, 4)), u((2, 4, 2))]),
        Case("dot_odd", prim_fn(X["dot_general"], **dg((2,), (0,), (1,), (2,))),
             [u((3, 2, 4)), u((4, 3, 2))]),
    ]


def _indexing():
    return [
        Case("gather0", prim_fn(X["gather"], axes=(0,)), [u((4, 5)), ints((3, 1), -4, 3)]),
        Case("gather1", prim_fn(X["gather"], axes=(1,)), [u((4, 5)), ints((2, 2, 1), -5, 4)]),
        Case("gather01", prim_fn(X["gather"], axes=(0, 1)), [u((4, 5)), ints((3, 2), 0, 3)]),
        Case("scatter_add", prim_fn(X["scatter"], axes=(0,), mode="add"),
             [u((4, 3)), ints((5, 1), 0, 3), u((5, 3))]),
        Case("scatter_set", prim_fn(X["scatter"], axes=(1,), mode="set"),
             [u((3, 4)), ints((2, 1), 0, 3), u((2, 3))], fd=False),
        Case("scatter_mul", prim_fn(X["scatter"], axes=(0, 1), mode="mul"),
             [u((3, 4), 0.5, 1.5), ints((4, 2), 0, 2), u((4,), 0.5, 1.5)]),
        Case("cumsum", prim_fn(X["linear_recurrence"], axis=1, reverse=False),
             [const(np.float64(1.0)), u((2, 4))], shared=(0,), no_grad=(0,)),
        Case("linrec", prim_fn(X["linear_recurrence"], axis=0, reverse=True),
             [u((3, 2), -0.9, 0.9), u((3, 2))]),
        Case("linrec_scalar_a", prim_fn(X["linear_recurrence"], axis=1, reverse=False),
             [u(()), u((2, 3))]),
        Case("sort", prim_fn(X["sort"], axis=1), [distinct((3, 4))]),
        # slices with traced bounds of static length (slice_start, then a gather)
        Case("slice_traced", lambda x, s: (x[s:s + 2], x[:, s + 4:s:-2]), [u((5, 6)), ints((), 0, 2)]),
    ]


def _linalg():
    return [
        Case("lu", prim_fn(X["lu"]), [well(3)], fd=False),
        Case("cholesky", prim_fn(X["cholesky"]), [spd(3)], fd=False),
        Case("eigh", prim_fn(X["eigh"]), [spd(3)], fd=False, tol=1e-8),
        Case("svd", prim_fn(X["svd"], full_matrices=False), [u((3, 2))], fd=False, tol=1e-8),
        Case("triangular_solve", prim_fn(X["triangular_solve"], lower=True, transpose_a=False,
                                         unit_diagonal=False), [well(3), u((3, 2))]),
        Case("triangular_solve_t", prim_fn(X["triangular_solve"], lower=False, transpose_a=True,
                                           unit_diagonal=True), [well(3), u((3, 1))]),
        Case("solve", lambda a, b: np.linalg.solve(a, b), [well(3), u((3,))]),
        Case("det", lambda a: np.linalg.det(a), [well(3)]),
    ]


# control flow and calls: functions of user-level code

def _cond(p, x, y):
    return tg.cond(p > 0, lambda a, b: np.sin(a) * b, lambda a, b: a - np.cos(b), x, y)


def _scan(c, xs, w):
    def step(carry, x):
        carry = np.tanh(carry * w + x)
        return carry, carry * 2.0
    return tg.scan(step, c, xs)


def _fori_dynamic(n, x):
    return tg.fori_loop(0, n, lambda i, v: v * 0.9 + np.sin(v), x)


def _while(x, limit):
    def body(c):
        v, k = c
        return v * 1.5 + 0.1, k + 1
    return tg.while_loop(lambda c: np.sum(c[0]) < limit, body, (x, np.int64(0)))


def _checkpoint(x, y):
    return tg.checkpoint(lambda a, b: np.sin(a) * np.exp(b))(x, y)


@tg.custom_vjp
def _clip_grad(x, y):
    return np.sin(x) * y


def _clip_fwd(x, y):
    return _clip_grad(x, y), (x, y)


def _clip_bwd(res, ct):
    x, y = res
    return (np.clip(ct * np.cos(x) * y, -1.0, 1.0), ct * np.sin(x))


_clip_grad.defvjp(_clip_fwd, _clip_bwd)


@tg.custom_jvp
def _softplus(x):
    return np.log1p(np.exp(x))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _softplus(x), t / (1 + np.exp(-x))


def _host(v, k):
    return np.sort(v)[::-1] * k


def _callback(method):
    def f(x, k):
        return tg.pure_callback(_host, tg.ShapeDtypeStruct((4,), np.float64), x, k,
                                vmap_method=method)
    return f


def _host_batched(v, k):   # works on a leading batch axis as well (expand_dims / broadcast_all)
    return np.sort(v, axis=-1)[..., ::-1] * np.asarray(k)[..., None]


def _callback_whole(method):
    def f(x, k):
        return tg.pure_callback(_host_batched, tg.ShapeDtypeStruct((4,), np.float64), x, k,
                                vmap_method=method)
    return f


def _debug(x):
    tg.debug.print("member {}", x)
    return x * 2.0


def _seeded_draw(x):
    # a generator the function creates is created afresh per call, so every member (and the batch,
    # which draws once) sees the same sample
    return x * np.random.default_rng(7).standard_normal(3)


def _control_and_calls():
    return [
        Case("cond", _cond, [u(()), u((3,)), u((3,))], no_grad=(0,)),
        Case("cond_shared_pred", _cond, [u(()), u((3,)), u((3,))], shared=(0,), no_grad=(0,)),
        Case("scan", _scan, [u((2,)), u((5, 2)), u(())]),
        Case("fori_dynamic", _fori_dynamic, [ints((), 0, 4), u((3,))], no_grad=(0,)),
        Case("while", _while, [u((2,), 0.5, 1.0), u((), 4.0, 30.0)], no_grad=(1,), fd=False),
        Case("checkpoint", _checkpoint, [u((3,)), u((3,))]),
        Case("custom_vjp", _clip_grad, [u((3,)), u((3,))], fd=False),
        Case("custom_jvp", _softplus, [u((2, 3))]),
        Case("callback_sequential", _callback("sequential"), [u((4,)), u(())], grad=False),
        Case("callback_expand_dims", _callback_whole("expand_dims"), [u((4,)), u(())], grad=False),
        Case("callback_broadcast_all", _callback_whole("broadcast_all"), [u((4,)), u(())], grad=False),
        Case("debug_print", _debug, [u((2,))]),
        Case("random", _seeded_draw, [u((3,))]),
    ]


CASES = _elementwise() + _reductions() + _structure() + _indexing() + _linalg() + _control_and_calls()
BY_NAME = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"
