"""tg.vmap as a transform: in_axes/out_axes, errors, and composition with grad/jvp/jit/vmap, control
flow, custom derivatives, callbacks, eager mode and anomaly detection; Jacobians built on vmap.
(Per-primitive batching rules: tests/test_vmap_rules.py.)"""
from __future__ import annotations

import re

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

rng = np.random.default_rng(0)


def loop(f, *args, in_axes=0):
    """The reference: f on each member, stacked along a new leading axis."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    n = next(np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None)
    outs = [f(*[a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, axes)])
            for i in range(n)]
    return tg.tree_map(lambda *xs: np.stack(xs), *outs)


def close(got, want, tol=1e-11):
    g, gt = tg.tree_flatten(got)
    w, wt = tg.tree_flatten(want)
    assert gt == wt, f"structure {gt} != {wt}"
    for a, b in zip(g, w):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def mlp(params, x):
    h = np.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def example_loss(params, x, y):
    return np.sum((mlp(params, x) - y) ** 2)


PARAMS = {"w1": rng.standard_normal((4, 6)), "b1": rng.standard_normal(6),
          "w2": rng.standard_normal((6, 2)), "b2": rng.standard_normal(2)}
XS, YS = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))


# ---------------------------------------------------------------- in_axes / out_axes

def test_in_axes_ints_negative_and_none():
    f = lambda a, b: np.sin(a) * b
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(3)
    close(tg.vmap(f, in_axes=(1, None))(a, b), loop(f, a, b, in_axes=(1, None)))
    close(tg.vmap(f, in_axes=(-1, None))(a, b), loop(f, a, b, in_axes=(1, None)))
    close(tg.vmap(f, in_axes=(0, 0))(a, b), loop(f, a, b))


def test_in_axes_pytree_prefix_and_out_axes_pytree():
    def f(p, x):
        return {"out": mlp(p, x), "w": p["w1"] * 2.0}
    per_member_w1 = rng.standard_normal((5, 4, 6))
    params = dict(PARAMS, w1=per_member_w1)
    in_axes = ({"w1": 0, "b1": None, "w2": None, "b2": None}, 0)
    got = tg.vmap(f, in_axes=in_axes, out_axes={"out": 1, "w": -1})(params, XS)
    want = [f(dict(PARAMS, w1=per_member_w1[i]), XS[i]) for i in range(5)]
    close(got["out"], np.stack([w["out"] for w in want], axis=1))
    close(got["w"], np.stack([w["w"] for w in want], axis=-1))


def test_list_arguments_keyword_arguments_and_axis_size():
    f = lambda xs, scale=1.0: xs[0] * xs[1] * scale
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    close(tg.vmap(f)([a, b], scale=2.0), a * b * 2.0)
    close(tg.vmap(f, in_axes=([0, None],))([a, b[0]]), a * b[0])
    out = tg.vmap(lambda x: x * 2.0, in_axes=None, axis_size=4)(np.ones(3))
    close(out, np.full((4, 3), 2.0))
    out = tg.vmap(lambda x: (x, np.ones(2)), out_axes=(0, None))(np.arange(3.0))
    close(out, (np.arange(3.0), np.ones(2)))


def test_weak_scalars_unbatched_outputs_and_constants_broadcast():
    x32 = np.ones((3, 2), np.float32)
    out = tg.vmap(lambda x, s: x * s, in_axes=(0, None))(x32, 0.5)
    assert out.dtype == np.float32
    out = tg.vmap(lambda x: (np.arange(2.0), x.sum()))(x32)
    close(out, (np.tile(np.arange(2.0), (3, 1)), np.full(3, 2.0, np.float32)))


def test_top_level_vmap_is_staged_and_cached():
    f = tg.vmap(lambda x: np.sin(x) * 2.0)
    xs = rng.standard_normal((3, 2))
    close(f(xs), np.sin(xs) * 2.0)
    close(f(xs + 1), np.sin(xs + 1) * 2.0)
    info = f.cache_info()
    assert (info.hits, info.misses) == (1, 1) and f.__name__ == "<lambda>"
    assert "sin" in f.ir(xs)


def test_vmap_of_vmap_with_different_axes():
    f = lambda a, b: np.dot(a, b)
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 3))
    got = tg.vmap(tg.vmap(f, in_axes=(0, 1)), in_axes=(1, None))(a, b)
    want = np.stack([np.stack([f(a[i, j], b[:, i]) for i in range(3)]) for j in range(4)])
    close(got, want)


# ---------------------------------------------------------------- errors

def test_inconsistent_sizes_name_the_arguments_and_line():
    def f(x, y):
        return x + y
    with pytest.raises(ValueError) as e:
        tg.vmap(f)(np.ones((3, 2)), np.ones((4, 2)))      # the line named below
    msg = str(e.value)
    assert "'x' has size 3 along axis 0" in msg and "'y' has size 4 along axis 0" in msg
    assert re.search(r"test_vmap\.py:\d+", msg), msg


def test_axis_out_of_range_and_bad_specs():
    with pytest.raises(ValueError, match=r"argument 'x' over axis 2, but it is of shape \(3, 2\)"):
        tg.vmap(lambda x: x, in_axes=2)(np.ones((3, 2)))
    with pytest.raises(ValueError, match="argument 'x' over axis 0, but it is a scalar"):
        tg.vmap(lambda x, y: x * y)(1.0, np.ones(3))
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function was called with 2"):
        tg.vmap(lambda x, y: x, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"in_axes\[0\]\['a'\] is .*not a pytree prefix"):
        tg.vmap(lambda d: d["a"], in_axes=({"a": (0,)},))({"a": np.ones(3)})
    with pytest.raises(TypeError, match="in_axes must be an int, None, or a pytree"):
        tg.vmap(lambda x: x, in_axes="0")
    with pytest.raises(ValueError, match="at least one argument mapped"):
        tg.vmap(lambda x: x, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="out_axes is None for output.*depends on the mapped"):
        tg.vmap(lambda x: x * 2, out_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="axis_size=5, but argument 'x' has size 3"):
        tg.vmap(lambda x: x, axis_size=5)(np.ones(3))
    with pytest.raises(ValueError, match="vmap_method must be one of"):
        tg.pure_callback(np.sin, np.ones(2), np.ones(2), vmap_method="legacy")


def test_value_dependent_python_inside_vmap_explains():
    def f(x):
        return x if x.sum() > 0 else -x
    with pytest.raises(tg.TracerError, match="inside tg.vmap the function is traced once"):
        with tg.eager():
            tg.vmap(f)(np.ones((2, 3)))


def test_anomaly_names_the_user_line_eager_and_interpreted():
    def f(x):
        return np.log(x)          # the anomaly's line
    line = f.__code__.co_firstlineno + 1
    for eager in (True, False):
        with tg.detect_anomaly(), np.errstate(all="ignore"), pytest.raises(tg.AnomalyError) as e:
            if eager:
                with tg.eager():
                    tg.vmap(f)(np.array([1.0, -1.0]))
            else:
                tg.vmap(f)(np.array([1.0, -1.0]))
        assert e.value.primitive == "log" and e.value.source.endswith(f"test_vmap.py:{line}")
    g = tg.vmap(tg.grad(lambda x: np.sum(np.sqrt(x))))
    with tg.detect_anomaly(), tg.eager(), np.errstate(all="ignore"), pytest.raises(tg.AnomalyError) as e:
        g(np.array([[1.0], [0.0]]))
    assert e.value.phase == "backward" and "test_vmap.py" in e.value.forward_source


# ---------------------------------------------------------------- composition with autodiff and jit

def test_per_example_gradients_vmap_of_grad_eager_jit_interpreted():
    g = tg.grad(example_loss)
    want = loop(lambda x, y: g(PARAMS, x, y), XS, YS)
    pe = tg.vmap(g, in_axes=(None, 0, 0))
    close(pe(PARAMS, XS, YS), want)
    close(tg.jit(pe)(PARAMS, XS, YS), want)
    with tg.eager():
        close(pe(PARAMS, XS, YS), want)
    ir = tg.make_ir(pe)(PARAMS, XS, YS)
    # the per-example forward is ONE matrix product over the batch (the batch is a free dim)
    assert re.search(r"f64\[5,1,6\] = dot_general\[batch=\(\(\), \(\)\)", str(ir)), ir


def test_grad_of_summed_vmap_and_jvp_of_vmap_against_finite_differences():
    f = lambda p, xs, ys: np.sum(tg.vmap(example_loss, in_axes=(None, 0, 0))(p, xs, ys) ** 1.5)
    tg.check_grads(f, (PARAMS, XS, YS), order=2, modes=("rev",))
    tg.check_grads(lambda xs: tg.vmap(lambda x: mlp(PARAMS, x))(xs), (XS,), order=2)
    g = tg.grad(lambda p: np.sum(tg.vmap(example_loss, in_axes=(None, 0, 0))(p, XS, YS)))(PARAMS)
    gl = tg.grad(lambda p: sum(example_loss(p, XS[i], YS[i]) for i in range(5)))(PARAMS)
    close(g, gl)


def test_vmap_of_jvp_vjp_and_jacobians():
    f = lambda x: np.sin(x) * x[::-1]
    xs, ts = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    close(tg.vmap(lambda x, t: tg.jvp(f, (x,), (t,)))(xs, ts), loop(lambda x, t: tg.jvp(f, (x,), (t,)), xs, ts))
    close(tg.vmap(lambda x, c: tg.vjp(f, x)[1](c))(xs, ts), loop(lambda x, c: tg.vjp(f, x)[1](c), xs, ts))
    close(tg.vmap(tg.jacrev(f))(xs), loop(tg.jacrev(f), xs))
    close(tg.vmap(tg.hessian(lambda x: np.sum(f(x) ** 2)))(xs), loop(tg.hessian(lambda x: np.sum(f(x) ** 2)), xs))
    close(tg.jacfwd(tg.vmap(f))(xs), tg.jacrev(tg.vmap(f))(xs))


def test_jit_inside_vmap_and_vmap_inside_grad_inside_vmap():
    inner = tg.jit(lambda x: np.tanh(x) * 2.0)
    xs = rng.standard_normal((3, 2))
    close(tg.vmap(inner)(xs), np.tanh(xs) * 2.0)

    def outer(w, xs):   # per-w gradient of a function that itself maps over xs
        return tg.grad(lambda w: np.sum(tg.vmap(lambda x: np.sin(w * x))(xs)))(w)
    ws = rng.standard_normal(4)
    close(tg.vmap(outer, in_axes=(0, None))(ws, xs), loop(lambda w: outer(w, xs), ws))


# ---------------------------------------------------------------- control flow

def pendulum(k, x0, steps):
    def step(i, c):
        x, v = c
        return x + 0.1 * v, v - 0.1 * k * np.sin(x)
    x, v = tg.fori_loop(0, steps, step, (x0, np.zeros_like(x0)))
    return np.sum(x ** 2)


def test_scan_inside_vmap_and_vmap_inside_scan_body():
    ks, x0 = rng.uniform(0.5, 2.0, 4), rng.standard_normal(3)
    f = lambda k: pendulum(k, x0, 20)
    close(tg.vmap(f)(ks), loop(f, ks))
    close(tg.vmap(tg.grad(f))(ks), loop(tg.grad(f), ks))

    def g(ws):
        def step(c, w):
            return c + np.sum(tg.vmap(lambda r: np.sin(r * w))(ws)), c
        return tg.scan(step, 0.0, ws)
    ws = rng.standard_normal(3)
    want = g(ws)                                  # per member of the inner vmap: a plain loop
    with tg.eager():
        close(g(ws), want)
    close(tg.grad(lambda ws: g(ws)[0])(ws), tg.grad(lambda ws: g(ws)[0])(ws))
    tg.check_grads(lambda ws: g(ws)[0], (ws,), order=1)


def _halvings(x, limit):
    def body(c):
        v, n = c
        return v * 0.5 + 0.01 * np.sin(v), n + 1
    return tg.while_loop(lambda c: c[0] > limit, body, (x, np.int64(0)))


def test_while_with_a_batched_predicate_runs_until_every_member_is_done():
    xs = np.array([1.0, 8.0, 100.0, 0.05])
    v, n = tg.vmap(_halvings, in_axes=(0, None))(xs, 0.1)
    wv, wn = loop(lambda x: _halvings(x, 0.1), xs)
    close(v, wv)
    np.testing.assert_array_equal(n, wn)
    assert len(set(wn.tolist())) == 4            # every member ran a different number of trips
    f = lambda x: _halvings(x, 0.1)[0] ** 2
    close(tg.vmap(tg.grad(f))(xs), loop(tg.grad(f), xs))                 # grad inside vmap
    close(tg.grad(lambda xs: np.sum(tg.vmap(f)(xs)))(xs), loop(tg.grad(f), xs))   # grad outside
    with tg.eager():
        close(tg.vmap(tg.grad(f))(xs), loop(tg.grad(f), xs))
    tg.check_grads(lambda xs: tg.vmap(f)(xs), (xs,), order=1)


def test_fori_loop_with_batched_bounds_and_cond_with_batched_predicate():
    def f(n, x):
        y = tg.fori_loop(0, n, lambda i, v: v * 0.9 + np.sin(v) * i, x)
        return tg.cond(np.sum(y) > 0, lambda a: a * 2.0, lambda a: -np.exp(a), y)
    ns, xs = np.array([0, 3, 1, 5]), rng.standard_normal((4, 2))
    close(tg.vmap(f)(ns, xs), loop(f, ns, xs))
    g = tg.grad(lambda x, n: np.sum(f(n, x)))
    close(tg.vmap(g)(xs, ns), loop(g, xs, ns))
    close(tg.grad(lambda xs: np.sum(tg.vmap(f)(ns, xs)))(xs), loop(g, xs, ns))


# ---------------------------------------------------------------- custom derivatives, callbacks, printing

@tg.custom_vjp
def clipped_square(x):
    return x * x


clipped_square.defvjp(lambda x: (x * x, x), lambda x, ct: (np.clip(2 * x * ct, -1.0, 1.0),))


@tg.custom_jvp
def doubled_sin(x):
    return np.sin(x)


@doubled_sin.defjvp
def _doubled_sin_jvp(primals, tangents):
    return doubled_sin(primals[0]), 2.0 * tangents[0]     # deliberately not cos: it must be kept


def test_batched_custom_derivatives_keep_the_users_rules():
    xs = np.array([0.1, 3.0, -2.0])
    want = np.clip(2 * xs, -1, 1)
    close(tg.vmap(tg.grad(clipped_square))(xs), want)
    close(tg.grad(lambda xs: np.sum(tg.vmap(clipped_square)(xs)))(xs), want)
    with tg.eager():
        close(tg.grad(lambda xs: np.sum(tg.vmap(clipped_square)(xs)))(xs), want)
    ts = rng.standard_normal(3)
    close(tg.jvp(tg.vmap(doubled_sin), (xs,), (ts,))[1], 2.0 * ts)
    close(tg.grad(lambda xs: np.sum(tg.vmap(doubled_sin)(xs)))(xs), np.full(3, 2.0))
    close(tg.vmap(tg.grad(doubled_sin))(xs), np.full(3, 2.0))
    close(tg.vmap(tg.vmap(tg.grad(clipped_square)))(xs[None]), want[None])


def test_pure_callback_vmap_methods_and_debug_print(capfd):
    calls = []

    def host(v):
        calls.append(v.shape)
        return v * 2

    def f(method):
        return lambda x: tg.pure_callback(host, tg.ShapeDtypeStruct(x.shape, x.dtype), x,
                                          vmap_method=method)
    xs = np.arange(6.0).reshape(3, 2)
    close(tg.vmap(f("sequential"))(xs), xs * 2)
    assert calls == [(2,)] * 3
    calls.clear()
    close(tg.jit(tg.vmap(f("expand_dims")))(xs), xs * 2)
    assert calls == [(3, 2)]
    tg.vmap(lambda x: tg.debug.print("x={}", x))(np.arange(3.0))
    assert capfd.readouterr().out == "x=0.0\nx=1.0\nx=2.0\n"


# ---------------------------------------------------------------- Jacobians on vmap

def test_jacobians_are_one_batched_pass():
    W, b = rng.standard_normal((6, 6)), rng.standard_normal(6)
    f = lambda x: np.tanh(W @ x + b)
    x = rng.standard_normal(6)
    for jac in (tg.jacrev, tg.jacfwd):
        ir = str(tg.make_ir(jac(f))(x))
        assert ir.count("dot_general") == 2, ir        # forward matvec + ONE matrix product
        t = np.tanh(W @ x + b)
        close(jac(f)(x), (1 - t * t)[:, None] * W)
    xs = rng.standard_normal((2, 3))
    g = lambda x: np.sin(x) * np.sum(x ** 2)
    close(tg.jacrev(g)(xs), tg.jacfwd(g)(xs))
    assert tg.jacrev(lambda x: x[:0])(np.ones(3)).shape == (0, 3)
    h = tg.hessian(lambda x: np.sum(np.sin(x) * x[::-1]))(np.array([0.3, 0.5, 0.9]))
    np.testing.assert_allclose(h, h.T, atol=1e-12)


@pytest.mark.compiled
def test_compiled_vmap_and_jacrev_use_batched_matrix_products():
    pe = tg.jit(tg.vmap(tg.grad(example_loss), in_axes=(None, 0, 0)))
    close(pe(PARAMS, XS, YS), loop(lambda x, y: tg.grad(example_loss)(PARAMS, x, y), XS, YS), 1e-10)
    src = pe.source(PARAMS, XS, YS)
    assert "1 x (5x4 @ 4x6)" in src, src          # the per-example forward: one gemm over the batch
    W, b = rng.standard_normal((100, 100)) / 10, rng.standard_normal(100)
    jr = tg.jit(tg.jacrev(lambda x: np.tanh(W @ x + b)))
    x = rng.standard_normal(100)
    t = np.tanh(W @ x + b)
    close(jr(x), (1 - t * t)[:, None] * W, 1e-10)
    src = jr.source(x)
    assert src.count("gemm(") == 2 and "1 x (100x100 @ 100x100)" in src, src
    # control flow where the members disagree, and its gradients (masked loops, per-member trips)
    f = lambda x: _halvings(x, 0.1)[0] ** 2

    def g(x, n):
        y = tg.fori_loop(0, n, lambda i, v: v * 0.9 + np.sin(v) * i, x)
        return np.sum(tg.cond(np.sum(y) > 0, lambda a: a * 2.0, lambda a: -np.exp(a), y))

    def everything(xs, ys, ns):
        return (tg.vmap(tg.grad(f))(xs), tg.grad(lambda xs: np.sum(tg.vmap(f)(xs)))(xs),
                tg.vmap(tg.grad(g))(ys, ns), tg.vmap(g)(ys, ns))
    xs, ys, ns = np.array([1.0, 8.0, 100.0, 0.05]), rng.standard_normal((4, 2)), np.array([0, 3, 1, 5])
    jf = tg.jit(everything)
    got = jf(xs, ys, ns)
    close(got, (loop(tg.grad(f), xs), loop(tg.grad(f), xs), loop(tg.grad(g), ys, ns), loop(g, ys, ns)), 1e-10)
    for fn in (pe, jr, jf):
        assert [e.tier for e in fn.cache_info().entries] == ["native"], fn.cache_info()


def test_batched_custom_vjp_closing_over_traced_values_to_second_order():
    def loss(x, w):
        @tg.custom_vjp
        def f(x):
            return np.sin(x) * w

        def fwd(x):
            return f(x), x                  # f inside its own fwd: recorded without residuals

        def bwd(x, g):
            return (g * np.cos(x) * w,)     # the rule closes over a traced value too
        f.defvjp(fwd, bwd)
        return np.sum(f(x) ** 2)

    xs, ws = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    g = tg.grad(loss, argnums=(0, 1))
    close(tg.vmap(g)(xs, ws), loop(g, xs, ws))
    close(tg.vmap(g, in_axes=(0, None))(xs, ws[0]), loop(lambda x: g(x, ws[0]), xs))
    tg.check_grads(lambda xs, ws: tg.vmap(loss)(xs, ws), (xs, ws), order=2, modes=("rev",))
    with tg.eager():
        close(tg.vmap(g)(xs, ws), loop(g, xs, ws))


@tg.custom_vjp
def sin_saving_itself(x):
    return np.sin(x)


def _sin_fwd(x):
    y = sin_saving_itself(x)           # recorded inside its own fwd: without residuals
    return y, y * 1.0                  # a residual computed from it (not the output itself)


sin_saving_itself.defvjp(_sin_fwd, lambda y, g: (g * np.sqrt(1 - y * y),))   # cos, for |x| < pi/2


def test_second_order_through_a_batched_custom_vjp_recomputes_residuals():
    xs = rng.uniform(-1.2, 1.2, 5)
    first = lambda x: tg.grad(lambda x: np.sum(tg.vmap(sin_saving_itself)(x) ** 2))(x)
    close(tg.grad(lambda x: np.sum(first(x)))(xs), 2 * np.cos(2 * xs), 1e-9)    # d2/dx2 sin^2


def test_while_with_a_shared_predicate_and_concatenate_of_same_axes():
    def f(x):
        return tg.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5), (0, x))[1]
    xs = rng.standard_normal((3, 2))
    ir = str(tg.make_ir(tg.vmap(f))(xs))
    assert "select" not in ir and "reduce_or" not in ir, ir      # no masking needed
    close(tg.vmap(f)(xs), xs * 1.5 ** 5)
    close(tg.vmap(tg.grad(lambda x: np.sum(f(x))))(xs), np.full((3, 2), 1.5 ** 5))
    cat = tg.vmap(lambda a, b: np.concatenate([a, b]), in_axes=(1, 1))
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    close(cat(a, b), np.concatenate([a, b]).T)


def test_members_that_skip_a_branch_or_a_step_raise_nothing_of_their_own():
    def pick(x, i):
        return tg.cond(i < 4, lambda: x[i], lambda: -1.0)     # x[5] would raise IndexError
    x = np.arange(4.0)
    close(tg.vmap(pick, in_axes=(None, 0))(x, np.array([1, 5, 3])), np.array([1.0, -1.0, 3.0]))
    close(tg.vmap(pick, in_axes=(None, 0))(x, np.array([7, 5])), np.array([-1.0, -1.0]))

    def shrink(x):
        return tg.while_loop(lambda v: v > 0, lambda v: np.sqrt(v) - 0.5, x)   # sqrt(v <= 0): NaN
    xs = np.array([0.1, 5.0, 40.0])
    for mode in (tg.eager, tg.detect_anomaly):
        with tg.detect_anomaly(), mode():
            close(tg.vmap(shrink)(xs), loop(shrink, xs))
            close(tg.vmap(tg.grad(shrink))(xs), loop(tg.grad(shrink), xs))


def test_a_draw_inside_vmap_is_made_once_for_the_batch_in_every_mode():
    def f(x):
        return x + np.random.standard_normal(3)
    x = np.arange(6.0).reshape(2, 3)
    results = []
    for mode in ("never", "eager"):
        np.random.seed(5)
        with tg.eager(mode == "eager"):
            results.append(tg.jit(tg.vmap(f), compile="never")(x))
    np.random.seed(5)
    z = np.random.standard_normal(3)
    for r in results:
        np.testing.assert_allclose(r, x + z, rtol=1e-15)
