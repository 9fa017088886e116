"""Every error path of API.md ("Errors") raises the named type with a message a user can act on."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

HERE = "test_errors.py:"




def branchy(x):
    if x > 0:   # the line the error must name
        return x
    return -x


def test_python_if_on_traced_value_is_tracer_error_naming_line():
    line = branchy.__code__.co_firstlineno + 1
    for call in (lambda: tg.jit(branchy)(np.ones(())), lambda: tg.jit(tg.grad(branchy))(1.0)):
        with pytest.raises(tg.TracerError) as ei:
            call()
        msg = str(ei.value)
        assert f"{HERE}{line}" in msg
        for hint in ("tnp.where", "static_argnums", "eager"):
            assert hint in msg
    assert issubclass(tg.TracerError, TypeError)


@pytest.mark.parametrize("conv", [float, int, bool])
def test_scalar_conversions_raise_tracer_error(conv):
    with pytest.raises(tg.TracerError, match=conv.__name__):
        tg.jit(lambda x: conv(x))(np.ones(()))


_asarray_bound_before_tracing = np.asarray


def test_np_asarray_of_tracer_raises_with_hint():
    # np.asarray(tracer) traces (tracegrad.numpy.plain); a reference taken before any trace is
    # NumPy's own function, which reaches Tracer.__array__
    np.testing.assert_allclose(tg.jit(lambda x: np.asarray(x) * 2)(np.ones(3)), 2 * np.ones(3))
    with pytest.raises(tg.TracerError, match="tnp.asarray"):
        tg.jit(lambda x: _asarray_bound_before_tracing(x) * 2)(np.ones(3))


def test_len_and_shape_are_static():
    out = tg.jit(lambda x: x * len(x) + x.shape[1] + x.ndim + x.size)(np.ones((3, 2)))
    np.testing.assert_allclose(out, np.ones((3, 2)) * (3 + 2 + 2 + 6))


def test_non_array_argument_is_type_error_naming_it():
    def f(x, name):
        return x
    with pytest.raises(TypeError, match="argument 'name'.*str"):
        tg.jit(f)(np.ones(2), "abc")
    with pytest.raises(TypeError, match="argument 'x'"):
        tg.grad(lambda x: x)({"a": object()})


def test_grad_of_non_scalar_suggests_vjp():
    with pytest.raises(TypeError, match="scalar.*vjp.*jacrev"):
        tg.grad(lambda x: x * 2)(np.ones(3))


def test_grad_wrt_int_is_type_error():
    with pytest.raises(TypeError, match="argument 'x' has dtype int64"):
        tg.grad(lambda x: np.sum(x * 1.0))(np.arange(3))


def test_int_inputs_are_allowed_when_not_differentiated():
    g = tg.grad(lambda w, idx: np.sum(w * idx))(np.ones(3), np.arange(3))
    np.testing.assert_allclose(g, [0, 1, 2])


def test_shape_mismatch_names_primitive_shapes_and_line():
    def f(x, y):
        return x + y
    line = f.__code__.co_firstlineno + 1
    with pytest.raises(ValueError) as ei:
        tg.jit(f)(np.ones(3), np.ones(4))
    msg = str(ei.value)
    assert "add" in msg and "(3,)" in msg and "(4,)" in msg and f"{HERE}{line}" in msg


def test_matmul_mismatch():
    def f(x, y):
        return x @ y
    with pytest.raises(ValueError, match=r"matmul.*\(3, 2\).*\(4, 5\)"):
        tg.jit(f)(np.ones((3, 2)), np.ones((4, 5)))


def test_bad_axis_and_reshape_name_function_and_line():
    with pytest.raises(ValueError, match=r"sum: axis 3 .*\n  at .*test_errors.py"):
        tg.jit(lambda x: np.sum(x, axis=3))(np.ones(3))
    with pytest.raises(ValueError, match=r"cannot reshape.*\n  at .*test_errors.py"):
        tg.jit(lambda x: x.reshape(4))(np.ones(3))


@pytest.mark.parametrize("fn,name", [(lambda x: np.fft.fft(x), "numpy.fft.fft"),
                                     (lambda x: np.unique(x), "numpy.unique"),
                                     (lambda x: np.frexp(x), "numpy.frexp")])
def test_unsupported_numpy_function_is_not_implemented(fn, name):
    with pytest.raises(NotImplementedError, match=name.replace(".", r"\.")):
        tg.jit(fn)(np.ones(3))
    with pytest.raises(NotImplementedError, match=name.replace(".", r"\.")):
        tg.grad(lambda x: np.sum(fn(x)))(np.ones(3))


def test_ufunc_out_argument_rejected():
    def f(x):
        np.exp(x, out=x)
        return x
    with pytest.raises(TypeError, match="out="):
        tg.jit(f)(np.ones(2))


def test_leaked_tracer_is_reported():
    leak = []

    def f(x):
        leak.append(x)
        return x * 2
    tg.jit(f)(np.ones(2))
    with pytest.raises(tg.TracerError, match="outside the transform"):
        tg.jit(lambda y: y + leak[0])(np.ones(2))


def test_missing_rule_is_an_error_not_a_fallback(monkeypatch):
    from tracegrad import primitives as P
    monkeypatch.delitem(P.vjp_rules, P.sin_p)
    with pytest.raises(NotImplementedError, match="'sin'.*no VJP rule"):
        tg.grad(lambda x: np.sin(x))(1.0)
    monkeypatch.delitem(P.jvp_rules, P.cos_p)
    with pytest.raises(NotImplementedError, match="'cos'.*no JVP rule"):
        tg.jvp(lambda x: np.cos(x), (1.0,), (1.0,))


def test_vjp_cotangent_shape_checked():
    out, f_vjp = tg.vjp(lambda x: x * 2, np.ones(3))
    with pytest.raises(ValueError, match="cotangent shape"):
        f_vjp(np.ones(4))


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums 2"):
        tg.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)
