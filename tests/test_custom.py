"""Custom derivatives (custom_vjp, custom_jvp, Function) and opaque Python (pure_callback):
user rules used exactly, under grad / jit / eager, nested and at higher order, closures, the
inline-before-compile pass, and the error messages."""
import numpy as np
import pytest
import scipy.special as sps

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.ir import verify
from tracegrad.passes import inline_calls
from tracegrad.primitives import all_primitives, impl_rules, jvp_rules, shape_rules, vjp_rules




X = np.array([0.3, -0.8, 1.4])
W = np.array([2.0, -1.5, 0.5])


def modes():
    """Run a check traced (interpreter tier) and in eager mode."""
    return [tg.eager(False), tg.eager(True)]


# ---------------------------------------------------------------- custom_vjp

@tg.custom_vjp
def sin42(x):
    return np.sin(x)


def _sin42_fwd(x):
    return sin42(x), (np.cos(x),)


def _sin42_bwd(res, ct):
    (c,) = res
    return (42.0 * ct * c,)


sin42.defvjp(_sin42_fwd, _sin42_bwd)


@pytest.mark.parametrize("eager", [False, True])
def test_custom_vjp_rule_is_used_exactly(eager):
    with tg.eager(eager):
        np.testing.assert_array_equal(tg.jit(sin42)(X), np.sin(X))
        g = tg.grad(lambda x: sin42(x).sum())(X)
        np.testing.assert_allclose(g, 42.0 * np.cos(X), rtol=1e-15)
        out, pullback = tg.vjp(sin42, X)
        np.testing.assert_allclose(pullback(W)[0], 42.0 * W * np.cos(X), rtol=1e-15)
        np.testing.assert_allclose(tg.jacrev(sin42)(X), np.diag(42.0 * np.cos(X)), rtol=1e-15)
    # with no transform at all the function is simply called
    np.testing.assert_array_equal(sin42(X), np.sin(X))


def test_custom_vjp_printed_ir_and_inlining():
    ir = tg.make_ir(tg.grad(lambda x: sin42(x).sum()))(X)
    text = str(ir)
    assert "custom_vjp_call[" in text and "rule=sin42" in text and "n_out=1" in text
    flat = inline_calls(ir)
    verify(flat)
    assert "custom_" not in str(flat)
    assert "sin " not in str(flat)       # the primal output is dead in a pure gradient: dropped
    assert "mul 42.0:f64" in str(flat)
    assert inline_calls(flat) is flat    # nothing left to inline
    # a plain jit of the function: residuals (cos) are dead code after inlining
    flat = inline_calls(tg.make_ir(lambda x: sin42(x) * 2)(X))
    assert "cos" not in str(flat) and "sin" in str(flat)


def test_custom_vjp_several_arguments_pytrees_and_none():
    @tg.custom_vjp
    def f(p, scale):
        return {"out": p["a"] * scale + p["b"][0], "aux": p["b"][1]}

    def fwd(p, scale):
        return f(p, scale), (p["a"], scale)

    def bwd(res, ct):
        a, scale = res
        return ({"a": 3.0 * ct["out"] * scale, "b": (ct["out"], None)}, None)

    f.defvjp(fwd, bwd)
    p = {"a": X, "b": (W, np.array(2.0))}

    def loss(p, scale):
        out = f(p, scale)
        return (out["out"] ** 2).sum() + out["aux"]

    for m in modes():
        with m:
            g = tg.grad(loss)(p, 1.5)
            two_out = 2 * (X * 1.5 + W)
            np.testing.assert_allclose(g["a"], 3.0 * two_out * 1.5)
            np.testing.assert_allclose(g["b"][0], two_out)
            np.testing.assert_array_equal(g["b"][1], 0.0)      # None: zero cotangent
            g_scale = tg.grad(loss, argnums=1)(p, 1.5)
            assert g_scale == 0.0


def test_custom_vjp_nondiff_argnums_and_keywords():
    from functools import partial

    @partial(tg.custom_vjp, nondiff_argnums=(0,))
    def clip_gradient(bound, x):
        return x

    def fwd(bound, x):
        return x, None

    def bwd(bound, _, g):
        return (np.clip(g, -bound, bound),)

    clip_gradient.defvjp(fwd, bwd)
    for m in modes():
        with m:
            g = tg.grad(lambda x: (clip_gradient(0.5, x) * W).sum())(X)
            np.testing.assert_array_equal(g, np.clip(W, -0.5, 0.5))
            g = tg.grad(lambda x: (clip_gradient(x=x, bound=1.0) * W).sum())(X)
            np.testing.assert_array_equal(g, np.clip(W, -1.0, 1.0))
    with pytest.raises(TypeError, match="nondiff_argnums"):
        tg.grad(lambda x: clip_gradient(x[0], x).sum())(X)


def test_custom_vjp_multiple_outputs_and_missing_cotangents():
    @tg.custom_vjp
    def two(x):
        return np.sin(x), np.cos(x)

    def fwd(x):
        return two(x), x

    def bwd(x, cts):
        ct_s, ct_c = cts             # zeros (not None) for the unused output
        return (ct_s * np.cos(x) - ct_c * np.sin(x),)

    two.defvjp(fwd, bwd)
    for m in modes():
        with m:
            np.testing.assert_allclose(tg.grad(lambda x: two(x)[0].sum())(X), np.cos(X))
            np.testing.assert_allclose(tg.grad(lambda x: two(x)[1].sum())(X), -np.sin(X))
            tg.check_grads(lambda x: two(x)[0] * two(x)[1], (X,), order=2, modes=("rev",))


def test_custom_vjp_python_scalar_argument_and_float32():
    @tg.custom_vjp
    def scaled(x, s):
        return x * s

    scaled.defvjp(lambda x, s: (scaled(x, s), s), lambda s, g: (g * s * 10, None))
    x32 = X.astype(np.float32)
    out = tg.jit(lambda x: scaled(x, 2.0))(x32)
    assert out.dtype == np.float32            # the Python float stays weakly typed
    g = tg.grad(lambda x: scaled(x, 2.0).sum())(x32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, np.full(3, 20.0))


def test_custom_vjp_higher_order():
    @tg.custom_vjp
    def cube(x):
        return x ** 3

    cube.defvjp(lambda x: (cube(x), x), lambda x, g: (3 * x ** 2 * g,))
    for m in modes():
        with m:
            np.testing.assert_allclose(tg.grad(lambda x: tg.grad(lambda x: cube(x).sum())(x).sum())(X),
                                       6 * X)
            np.testing.assert_allclose(tg.jacrev(tg.grad(lambda x: cube(x).sum()))(X), np.diag(6 * X))
            tg.check_grads(cube, (X,), order=2, modes=("rev",))


def test_custom_vjp_higher_order_differentiates_the_users_rule():
    # bwd deliberately differs from d/dx sin: second order must differentiate the *rule*:
    # d/dx [42 cos(x)] = -42 sin(x)
    for m in modes():
        with m:
            gg = tg.grad(lambda x: tg.grad(lambda x: sin42(x).sum())(x).sum())(X)
            np.testing.assert_allclose(gg, -42.0 * np.sin(X), rtol=1e-14)


def test_grad_of_function_using_custom_vjp_inside_another_grad():
    @tg.custom_vjp
    def cube(x):
        return x ** 3

    cube.defvjp(lambda x: (cube(x), x), lambda x, g: (3 * x ** 2 * g * 5,))    # 5x the truth

    def inner(x, w):
        return tg.grad(lambda x: (cube(x) * w).sum())(x).sum()     # = sum(15 x^2 w)

    for m in modes():
        with m:
            gx, gw = tg.grad(inner, argnums=(0, 1))(X, W)
            np.testing.assert_allclose(gx, 30 * X * W, rtol=1e-14)
            np.testing.assert_allclose(gw, 15 * X ** 2, rtol=1e-14)
            np.testing.assert_allclose(tg.jit(inner)(X, W), np.sum(15 * X ** 2 * W), rtol=1e-14)


def test_custom_function_defined_inside_and_closing_over_traced_values():
    def loss(x, w):
        @tg.custom_vjp
        def f(x):
            return np.sin(x) * w

        def fwd(x):
            return f(x), x

        def bwd(x, g):
            return (g * np.cos(x) * w,)     # the rule closes over a traced value too
        f.defvjp(fwd, bwd)
        return f(x).sum()

    for m in modes():
        with m:
            gx, gw = tg.grad(loss, argnums=(0, 1))(X, W)
            np.testing.assert_allclose(gx, np.cos(X) * W, rtol=1e-15)
            # w is closed over: the rule does not cover it, ordinary autodiff of f does
            np.testing.assert_allclose(gw, np.sin(X), rtol=1e-15)
            tg.check_grads(loss, (X, W), order=2, modes=("rev",))


def test_custom_vjp_errors_name_the_function():
    @tg.custom_vjp
    def two_args(x, y):
        return x * y

    two_args.defvjp(lambda x, y: (two_args(x, y), None), lambda r, g: (g,))
    with pytest.raises(TypeError, match=r"'two_args'.*returned 1 cotangent.*takes 2"):
        tg.grad(lambda x: two_args(x, X).sum())(X)

    @tg.custom_vjp
    def shapes(x):
        return x

    shapes.defvjp(lambda x: (x, None), lambda r, g: (g[:2],))
    with pytest.raises(ValueError, match=r"'shapes'.*shape \(2,\).*shape \(3,\)"):
        tg.grad(lambda x: shapes(x).sum())(X)

    @tg.custom_vjp
    def not_a_pair(x):
        return x

    not_a_pair.defvjp(lambda x: x, lambda r, g: (g,))
    with pytest.raises(TypeError, match=r"fwd rule of custom_vjp function 'not_a_pair'.*pair"):
        tg.grad(lambda x: not_a_pair(x).sum())(X)

    @tg.custom_vjp
    def no_rule(x):
        return x

    with pytest.raises(TypeError, match=r"'no_rule' has no VJP rule.*defvjp"):
        tg.grad(lambda x: no_rule(x).sum())(X)


@pytest.mark.parametrize("transform", ["jvp", "jacfwd", "hessian"])
def test_forward_mode_of_custom_vjp_is_a_clear_error(transform):
    f = lambda x: sin42(x).sum()     # noqa: E731
    with pytest.raises(TypeError, match=r"forward-mode.*custom_vjp function 'sin42'.*custom_jvp"):
        if transform == "jvp":
            tg.jvp(sin42, (X,), (W,))
        elif transform == "jacfwd":
            tg.jacfwd(sin42)(X)
        else:
            tg.hessian(f)(X)


# ---------------------------------------------------------------- custom_jvp

@tg.custom_jvp
def sin7(x, y):
    return np.sin(x) * y


@sin7.defjvp
def _sin7_jvp(primals, tangents):
    x, y = primals
    x_dot, y_dot = tangents
    return sin7(x, y), 7.0 * (np.cos(x) * y * x_dot + np.sin(x) * y_dot)


@pytest.mark.parametrize("eager", [False, True])
def test_custom_jvp_rule_is_used_exactly_forward_and_reverse(eager):
    with tg.eager(eager):
        out, t = tg.jvp(sin7, (X, W), (np.ones(3), np.zeros(3)))
        np.testing.assert_allclose(out, np.sin(X) * W, rtol=1e-15)
        np.testing.assert_allclose(t, 7.0 * np.cos(X) * W, rtol=1e-15)
        gx, gy = tg.grad(lambda x, y: sin7(x, y).sum(), argnums=(0, 1))(X, W)   # transposed rule
        np.testing.assert_allclose(gx, 7.0 * np.cos(X) * W, rtol=1e-15)
        np.testing.assert_allclose(gy, 7.0 * np.sin(X), rtol=1e-15)
        np.testing.assert_allclose(tg.jacfwd(sin7)(X, W), np.diag(7.0 * np.cos(X) * W), rtol=1e-15)
        np.testing.assert_allclose(tg.hessian(lambda x: sin7(x, W).sum())(X),
                                   np.diag(-7.0 * np.sin(X) * W), rtol=1e-14)


def test_custom_jvp_decorator_returns_rule_and_plain_call():
    assert sin7.jvp is _sin7_jvp
    np.testing.assert_array_equal(sin7(X, W), np.sin(X) * W)


def test_custom_jvp_check_grads_second_order_both_modes():
    @tg.custom_jvp
    def softplus(x):
        return np.logaddexp(x, 0.0)

    @softplus.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t / (1 + np.exp(-x))

    @tg.custom_jvp
    def mul(x, y):
        return x * y

    @mul.defjvp
    def _(primals, tangents):
        (x, y), (xd, yd) = primals, tangents
        return mul(x, y), xd * y + x * yd

    for m in modes():
        with m:
            tg.check_grads(softplus, (X,), order=2, modes=("fwd", "rev"))
            tg.check_grads(mul, (X, W), order=2, modes=("fwd", "rev"))


def test_custom_jvp_nondiff_argnums_and_closure():
    from functools import partial

    @partial(tg.custom_jvp, nondiff_argnums=(1,))
    def power(x, n):
        return x ** n

    @power.defjvp
    def _(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return power(x, n), n * x ** (n - 1) * t

    def loss(x, w):
        @tg.custom_jvp
        def f(x):
            return np.sin(x) * w

        @f.defjvp
        def _(p, t):
            return f(p[0]), np.cos(p[0]) * w * t[0]
        return (f(x) * power(x, 3)).sum()

    for m in modes():
        with m:
            np.testing.assert_allclose(tg.grad(lambda x: power(x, 3).sum())(X), 3 * X ** 2)
            tg.check_grads(loss, (X, W), order=2, modes=("fwd", "rev"))


def test_custom_jvp_errors_name_the_function():
    @tg.custom_jvp
    def f(x):
        return x

    @f.defjvp
    def _(p, t):
        return p[0], (t[0], t[0])
    with pytest.raises(TypeError, match=r"jvp rule of custom_jvp function 'f'.*structure"):
        tg.jvp(f, (X,), (W,))

    @tg.custom_jvp
    def g(x):
        return x
    with pytest.raises(TypeError, match=r"'g' has no JVP rule"):
        tg.grad(lambda x: g(x).sum())(X)


# ---------------------------------------------------------------- Function (PyTorch style)

class Exp3(tg.Function):
    """exp(x) * scale, whose backward is 3x the true derivative (to see it used exactly)."""

    @staticmethod
    def forward(ctx, x, scale):
        y = np.exp(x) * scale
        ctx.save_for_backward(y)
        ctx.scale = scale          # a static attribute
        ctx.x = x                  # an array attribute: carried like a saved value
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_values
        assert ctx.scale == 2.0 and ctx.x.shape == (3,)
        assert ctx.needs_input_grad == (True, False)
        return gy * y * 3, None


@pytest.mark.parametrize("eager", [False, True])
def test_function_backward_is_used_exactly(eager):
    with tg.eager(eager):
        np.testing.assert_allclose(tg.jit(lambda x: Exp3.apply(x, 2.0))(X), 2 * np.exp(X))
        g = tg.grad(lambda x: Exp3.apply(x, 2.0).sum())(X)
        np.testing.assert_allclose(g, 3 * 2 * np.exp(X), rtol=1e-15)
        # a saved output carries the Function's own derivative (as in PyTorch), so the second
        # derivative is d/dx [3 y] = 3 * (3 y)
        gg = tg.grad(lambda x: tg.grad(lambda x: Exp3.apply(x, 2.0).sum())(x).sum())(X)
        np.testing.assert_allclose(gg, 9 * 2 * np.exp(X), rtol=1e-14)
    np.testing.assert_allclose(Exp3.apply(X, 2.0), 2 * np.exp(X))     # no transform: forward


def test_function_multiple_inputs_and_outputs():
    class MulAdd(tg.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b, a + b

        @staticmethod
        def backward(ctx, g_prod, g_sum):
            a, b = ctx.saved_values
            return g_prod * b + g_sum, g_prod * a + g_sum

    def loss(a, b):
        p, s = MulAdd.apply(a, b)
        return (p * s).sum()

    for m in modes():
        with m:
            tg.check_grads(loss, (X, W), order=2, modes=("rev",))
            ga, gb = tg.grad(loss, argnums=(0, 1))(X, W)
            np.testing.assert_allclose(ga, W * (X + W) + X * W)


def test_function_errors_name_the_class():
    class TooFew(tg.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(TypeError, match=r"TooFew.backward returned 1 gradient.*TooFew.forward takes 2"):
        tg.grad(lambda x: TooFew.apply(x, W).sum())(X)

    class GradForStatic(tg.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * 2, g

    with pytest.raises(TypeError, match=r"GradForStatic.backward returned a gradient for input 1"):
        tg.grad(lambda x: GradForStatic.apply(x, 2).sum())(X)


# ---------------------------------------------------------------- pure_callback

def _erfc_np(x):
    assert isinstance(x, np.ndarray)          # the callback sees concrete NumPy arrays
    return sps.erfc(x)


@tg.custom_vjp
def erfc(x):
    return tg.pure_callback(_erfc_np, tg.ShapeDtypeStruct(x.shape, x.dtype), x)


def _erfc_fwd(x):
    return erfc(x), x


def _erfc_bwd(x, g):
    return (-2.0 / np.sqrt(np.pi) * np.exp(-x * x) * g,)


erfc.defvjp(_erfc_fwd, _erfc_bwd)


def test_pure_callback_plain_eager_and_traced():
    calls = []

    def count(x, y):
        calls.append(1)
        return {"s": np.sum(x * y), "p": x * y}

    spec = {"s": np.zeros(()), "p": X}
    f = lambda x, y: tg.pure_callback(count, spec, x, y=y)   # noqa: E731
    want = {"s": np.sum(X * W), "p": X * W}
    for got in (f(X, W), tg.jit(f)(X, W)):
        np.testing.assert_allclose(got["s"], want["s"])
        np.testing.assert_allclose(got["p"], want["p"])
    with tg.eager():
        got = tg.jit(lambda x: f(x, W)["p"] * 2)(X)
        np.testing.assert_allclose(got, 2 * want["p"])
    n = len(calls)
    tg.jit(f)(X, W)                  # cached compiled function: called at run time only
    assert len(calls) == n + 1


def test_pure_callback_is_one_equation_and_casts_results():
    def as_f64(x):
        return sps.erfc(x.astype(np.float64))          # SciPy returns float64

    x32 = X.astype(np.float32)
    f = tg.jit(lambda x: tg.pure_callback(as_f64, tg.ShapeDtypeStruct((3,), np.float32), x) + 1)
    out = f(x32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, sps.erfc(X) + 1, rtol=1e-6)
    ir = inline_calls(tg.make_ir(lambda x: erfc(x) * 2)(X))
    eqn = [e for e in ir.eqns if e.prim.name == "callback"]
    assert len(eqn) == 1 and eqn[0].params["callback"](X)[0].tolist() == sps.erfc(X).tolist()
    assert eqn[0].params["result_avals"][0].shape == (3,)


def test_pure_callback_result_errors():
    bad_shape = tg.jit(lambda x: tg.pure_callback(lambda x: x[:2], x, x))
    with pytest.raises(ValueError, match=r"<lambda> returned shape \(2,\).*declares \(3,\)"):
        bad_shape(X)
    with pytest.raises(TypeError, match="shape and .dtype"):
        tg.pure_callback(np.sin, (3,), X)


def test_grad_through_bare_pure_callback_is_a_clear_error():
    f = lambda x: tg.pure_callback(_erfc_np, x, x).sum()    # noqa: E731
    with pytest.raises(TypeError, match=r"pure_callback\(_erfc_np\).*no derivative.*custom_vjp"):
        tg.grad(f)(X)
    with tg.eager(), pytest.raises(TypeError, match=r"pure_callback\(_erfc_np\).*custom_vjp"):
        tg.grad(f)(X)
    with pytest.raises(TypeError, match=r"pure_callback\(_erfc_np\).*forward-mode"):
        tg.jvp(lambda x: tg.pure_callback(_erfc_np, x, x), (X,), (W,))
    # a callback on values that do not depend on the differentiated input is fine
    g = tg.grad(lambda w: (w * tg.pure_callback(_erfc_np, X, X)).sum())(W)
    np.testing.assert_allclose(g, sps.erfc(X))
    g = tg.grad(lambda w: (w * tg.stop_gradient(tg.pure_callback(_erfc_np, w, w))).sum())(W)
    np.testing.assert_allclose(g, sps.erfc(W))


@pytest.mark.parametrize("eager", [False, True])
def test_pure_callback_differentiable_through_custom_vjp(eager):
    with tg.eager(eager):
        np.testing.assert_allclose(tg.jit(erfc)(X), sps.erfc(X), rtol=1e-15)
        g = tg.grad(lambda x: erfc(x).sum())(X)
        np.testing.assert_allclose(g, -2 / np.sqrt(np.pi) * np.exp(-X * X), rtol=1e-14)
        tg.check_grads(erfc, (X,), order=2, modes=("rev",))

        # a callback whose *output* is saved: the second derivative goes through the rule
        class Exp(tg.Function):
            @staticmethod
            def forward(ctx, x):
                y = tg.pure_callback(np.exp, x, x)
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx, g):
                (y,) = ctx.saved_values
                return (g * y,)
        gg = tg.grad(lambda x: tg.grad(lambda x: Exp.apply(x).sum())(x).sum())(X)
        np.testing.assert_allclose(gg, np.exp(X), rtol=1e-14)


def test_closed_over_values_of_a_callback_function_need_no_derivative():
    # a custom_vjp closing over traced data that flows into a callback: the data is not being
    # differentiated, so nothing asks the callback for a derivative
    def loss(x, data):
        @tg.custom_vjp
        def f(x):
            return tg.pure_callback(lambda x, d: x * d, x, x, data)

        f.defvjp(lambda x: (f(x), None), lambda _, g: (g * data,))
        return f(x).sum()

    for m in modes():
        with m:
            np.testing.assert_allclose(tg.grad(loss)(X, W), W)


# ---------------------------------------------------------------- registry and the inline pass

def test_primitives_are_registered_with_every_rule():
    for name in ("custom_vjp_call", "custom_jvp_call", "callback"):
        p = all_primitives[name]
        assert p in impl_rules and p in shape_rules and p in vjp_rules and p in jvp_rules
    assert all_primitives["custom_vjp_call"].inline_before_compile is True
    assert all_primitives["custom_jvp_call"].inline_before_compile is True
    assert not all_primitives["callback"].inline_before_compile


def test_inline_calls_handles_nesting_and_keeps_semantics():
    def f(x):
        return erfc(sin7(x, W)) + sin42(x)

    g = tg.grad(lambda x: f(x).sum())
    ir = tg.make_ir(g)(X)
    assert "custom_vjp_call" in str(ir) and "custom_jvp_call" in str(ir)
    flat = inline_calls(ir)
    verify(flat)
    names = {e.prim.name for e in flat.eqns}
    assert not names & {"custom_vjp_call", "custom_jvp_call"}
    from tracegrad.childtrace import eval_ir
    np.testing.assert_allclose(eval_ir(flat, X)[0], g(X), rtol=1e-15)
    with tg.eager():
        np.testing.assert_allclose(g(X), eval_ir(flat, X)[0], rtol=1e-15)
    # backward equations keep their attribution after inlining
    assert any(e.fwd_src is not None for e in flat.eqns)


@pytest.mark.compiled
def test_compiled_backend_uses_the_custom_rules():
    class Exp(tg.Function):
        @staticmethod
        def forward(ctx, x):
            y = np.exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            return (5.0 * g * ctx.saved_values[0],)

    def f(x):
        return (sin42(x) + sin7(x, W) + Exp.apply(x)).sum()

    g = tg.jit(tg.grad(f))
    assert "custom_" not in g.source(X)        # inlined before compilation
    want = 42.0 * np.cos(X) + 7.0 * np.cos(X) * W + 5.0 * np.exp(X)
    np.testing.assert_allclose(g(X), want, rtol=1e-14)
    gg = tg.jit(tg.grad(lambda x: tg.grad(f)(x).sum()))
    np.testing.assert_allclose(gg(X), -42.0 * np.sin(X) - 7.0 * np.sin(X) * W + 25.0 * np.exp(X),
                               rtol=1e-13)


C = np.array([1.0, 2.0, 3.0])


@tg.custom_vjp
def scale_by_c(x):
    return x * C              # closes over a NumPy array: an operand of the call, not a constant


scale_by_c.defvjp(lambda x: (scale_by_c(x), None), lambda _, g: (g * C,))


def _in_fori(x):
    return tg.fori_loop(0, 3, lambda i, c: erfc(scale_by_c(c)) * 0.5 + sin7(c, W), x).sum()


def _in_scan(x):
    def step(c, xi):
        y = scale_by_c(c) * xi
        return erfc(y), y.sum()
    c, ys = tg.scan(step, x, np.array([0.1, 0.2]))
    return c.sum() + ys.sum()


def _in_cond(x):
    return tg.cond(x.sum() > 0, lambda x: erfc(x).sum(), lambda x: scale_by_c(x).sum(), x)


@pytest.mark.parametrize("fun", [_in_fori, _in_scan, _in_cond], ids=["fori_loop", "scan", "cond"])
def test_custom_functions_inside_control_flow_bodies(fun):
    with tg.eager():
        want_value, want_grad = fun(X), tg.grad(fun)(X)
    np.testing.assert_allclose(tg.jit(fun)(X), want_value, rtol=1e-14)
    np.testing.assert_allclose(tg.grad(fun)(X), want_grad, rtol=1e-14)
    if fun is not _in_fori:       # sin7's rule is deliberately 7x off: no finite differences
        tg.check_grads(fun, (X,), order=1, modes=("rev",))
    flat = inline_calls(tg.make_ir(tg.grad(fun))(X))
    verify(flat)
    text = str(flat)
    assert "custom_vjp_call" not in text and "custom_jvp_call" not in text
    assert "callback" in str(inline_calls(tg.make_ir(fun)(X)))
