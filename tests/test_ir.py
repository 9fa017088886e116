"""The IR: golden printed text, verify(), dead-code elimination, parameters."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.ir import IR, Aval, Eqn, IRError, Lit, Var, dce, verify
from tracegrad import primitives as P


def layer(x, w, b):
    y = np.tanh(x @ w + b)
    return np.sum(y)


def _line(f, k):
    return f"test_ir.py:{f.__code__.co_firstlineno + k}"


def test_golden_forward_ir():
    x = np.ones((32, 16), np.float32)
    w = np.ones((16, 64), np.float32)
    b = np.ones(64, np.float32)
    text = str(tg.make_ir(layer)(x, w, b))
    l1, l2 = _line(layer, 1), _line(layer, 2)
    expected = f"""\
{{ lambda a:f32[32,16] b:f32[16,64] c:f32[64] .
    d:f32[32,64] = dot_general[batch=((), ()), contract=((1,), (0,))] a b   # {l1}
    e:f32[32,64] = add d c                                                  # {l1}
    f:f32[32,64] = tanh e                                                   # {l1}
    g:f32[] = reduce_sum[axes=(0, 1)] f                                     # {l2}
  return g }}"""
    assert text == expected


def square_sum(x):
    return np.sum(x * x)


def test_golden_gradient_ir_marks_backward_lines():
    text = str(tg.make_ir(tg.grad(square_sum))(np.ones(3)))
    l1 = _line(square_sum, 1)
    expected = f"""\
{{ lambda a:f64[3] .
    b:f64[3] = broadcast_to[shape=(3,)] 1.0:f64   # bwd {l1}
    c:f64[3] = mul b a                            # bwd {l1}
    d:f64[3] = mul b a                            # bwd {l1}
    e:f64[3] = add c d                            # bwd {l1}
  return e }}"""
    assert text == expected


def test_printing_is_deterministic_and_names_by_appearance():
    f = lambda x: np.exp(np.sin(x)) * 2.0
    a = str(tg.make_ir(f)(np.ones(4, np.float32)))
    b = str(tg.make_ir(f)(np.ones(4, np.float32)))
    assert a == b
    assert "2.0:f32" in a  # a weak Python scalar takes the array's dtype (NEP 50)
    assert a.splitlines()[0] == "{ lambda a:f32[4] ."


def test_constants_are_ir_inputs_not_literals():
    table = np.arange(6.0).reshape(2, 3)
    ir = tg.make_ir(lambda x: x * table)(np.ones((2, 3)))
    assert len(ir.consts) == 1 and ir.consts[0][1] is table
    assert " ; " in str(ir).splitlines()[0]
    verify(ir)


def test_verify_accepts_traced_irs_and_every_eqn_has_a_source():
    def f(x, w):
        h = np.maximum(x @ w, 0.0)
        return np.mean(h ** 2) + np.var(x[1:, ::2])
    args = (np.ones((4, 3)), np.ones((3, 5)))
    cases = [(f, args), (tg.grad(f), args), (tg.grad(f, argnums=(0, 1)), args),
             (tg.hessian(lambda x: f(x, args[1])), args[:1])]
    for fn, a in cases:
        ir = tg.make_ir(fn)(*a)
        verify(ir)
        assert all(e.src and e.src.endswith(tuple("0123456789")) for e in ir.eqns)


def test_verify_catches_wrong_aval_and_undefined_var():
    a = Var(Aval((3,), np.float32))
    out = Var(Aval((4,), np.float32))
    bad = IR((a,), (), (Eqn(P.exp_p, (a,), (out,), {}, "x.py:1"),), (out,))
    with pytest.raises(IRError, match="shape rule says"):
        verify(bad)
    ghost = Var(Aval((3,), np.float32))
    out2 = Var(Aval((3,), np.float32))
    bad2 = IR((a,), (), (Eqn(P.exp_p, (ghost,), (out2,), {}, "x.py:1"),), (out2,))
    with pytest.raises(IRError, match="undefined"):
        verify(bad2)


def test_dce_drops_unused_equations():
    def f(x):
        unused = np.exp(x)  # noqa: F841
        return np.sin(x)
    ir = tg.make_ir(f)(np.ones(2))
    assert [e.prim.name for e in ir.eqns] == ["sin"]
    full = IR(ir.inputs, ir.consts, ir.eqns + ir.eqns[:0], ir.outputs)
    assert dce(full).eqns == ir.eqns


def test_params_are_hashable_and_literals_typed():
    ir = tg.make_ir(lambda x: np.sum(x, axis=(0, 1), keepdims=True) * 3)(np.ones((2, 3, 4), np.float32))
    for e in ir.eqns:
        hash(tuple(sorted(e.params.items())))
    lits = [a for e in ir.eqns for a in e.inputs if isinstance(a, Lit)]
    assert lits and all(l.aval.dtype == np.float32 for l in lits)


def test_ir_text_is_the_cache_key():
    f = lambda x: np.cos(x) + 1
    i1 = tg.make_ir(f)(np.ones(3))
    i2 = tg.make_ir(f)(np.ones(3))
    i3 = tg.make_ir(f)(np.ones(4))
    assert i1 == i2 and hash(i1) == hash(i2) and i1 != i3
