"""Elementwise primitives: each rule returns the scalar expression a fused loop evaluates per point."""
from __future__ import annotations

import hashlib
import os

import numpy as np

from tracegrad import primitives as P

from .. import callables
from ..rules import LOWERINGS, Elementwise, is_int, lit, np_type, wrap

# Our vectorisable kernels (compiler/vecmath.py: within 1 ulp, branch-free, so LLVM vectorises the
# fused loops that call them), per ufunc: (float64, float32). Other ufuncs and dtypes call libm.
VECMATH = {"exp": ("vexp", "vexpf"), "expm1": ("vexpm1", "vexpm1f"), "log": ("vlog", "vlogf"),
           "log1p": ("vlog1p", "vlog1pf"), "tanh": ("vtanh", "vtanhf"), "sin": ("vsin", "vsinf"),
           "cos": ("vcos", "vcosf")}


def _digest(*names) -> str:
    h = hashlib.sha256()
    for name in names:
        with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


VECMATH_DIGEST = _digest("vecmath.py", "vecmath_llvm.py")
callables.register("compiler.vecmath", *(n for pair in VECMATH.values() for n in pair),
                   note=f"vecmath {VECMATH_DIGEST}")


def _ufunc(name):
    def rule(args, ins, out, **_):
        if name in VECMATH and out.dtype in (np.dtype(np.float64), np.dtype(np.float32)):
            return f"{VECMATH[name][out.dtype == np.float32]}({args[0]})"
        return wrap(out.dtype, f"np.{name}({', '.join(args)})")
    return Elementwise(rule)


for _p, _name in {
    P.exp_p: "exp", P.expm1_p: "expm1", P.log_p: "log", P.log1p_p: "log1p", P.sqrt_p: "sqrt",
    P.cbrt_p: "cbrt", P.sin_p: "sin", P.cos_p: "cos", P.tan_p: "tan", P.asin_p: "arcsin",
    P.acos_p: "arccos", P.atan_p: "arctan", P.sinh_p: "sinh", P.cosh_p: "cosh", P.tanh_p: "tanh",
    P.asinh_p: "arcsinh", P.acosh_p: "arccosh", P.atanh_p: "arctanh", P.atan2_p: "arctan2",
}.items():
    LOWERINGS[_p] = _ufunc(_name)


def _rounding(name):
    def rule(args, ins, out, **_):
        if is_int(out.dtype) or out.dtype.kind == "b":
            return args[0]       # integers are already whole
        return f"np.{name}({args[0]})"
    return Elementwise(rule)


for _p, _name in {P.floor_p: "floor", P.ceil_p: "ceil", P.round_p: "rint", P.trunc_p: "trunc"}.items():
    LOWERINGS[_p] = _rounding(_name)


def _erf(args, ins, out, **_):
    # the impl evaluates math.erf in double precision and rounds to the dtype
    if out.dtype == np.float64:
        return f"math.erf({args[0]})"
    return f"{np_type(out.dtype)}(math.erf(np.float64({args[0]})))"


LOWERINGS[P.erf_p] = Elementwise(_erf)


def _numpy_refuses(fn, *operands):
    """NumPy's own TypeError for an operation it rejects on these dtypes (e.g. bool subtract)."""
    try:
        fn(*operands)
    except TypeError as e:
        raise TypeError(str(e)) from None


def _neg(args, ins, out, **_):
    if out.dtype.kind == "b":
        _numpy_refuses(np.negative, np.array(True))
    return wrap(out.dtype, f"-{args[0]}")


def _abs(args, ins, out, **_):
    if out.dtype.kind in "bu":
        return args[0]
    return wrap(out.dtype, f"np.abs({args[0]})")


def _sign(args, ins, out, **_):
    if out.dtype.kind == "b":
        return args[0]
    return wrap(out.dtype, f"np.sign({args[0]})")


LOWERINGS[P.neg_p] = Elementwise(_neg)
LOWERINGS[P.abs_p] = Elementwise(_abs)
LOWERINGS[P.sign_p] = Elementwise(_sign)


def _integer_pow(args, ins, out, *, y):
    x, dt = args[0], out.dtype
    if y == 0:
        return lit(1, dt)
    if 1 <= y <= 4:
        return wrap(dt, " * ".join([x] * y))
    if dt.kind == "f" and -4 <= y <= -1:
        return f"{lit(1, dt)} / ({' * '.join([x] * -y)})"
    if dt.kind == "f":
        return f"np.power({x}, {lit(y, dt)})"
    return wrap(dt, f"np.power({x}, {lit(y, np.int64)})")


LOWERINGS[P.integer_pow_p] = Elementwise(_integer_pow)


def _float_test(name, on_int):
    def rule(args, ins, out, **_):
        if ins[0].dtype.kind != "f":
            return on_int(args[0])
        return f"np.{name}({args[0]})"
    return Elementwise(rule)


LOWERINGS[P.isnan_p] = _float_test("isnan", lambda x: "False")
LOWERINGS[P.isinf_p] = _float_test("isinf", lambda x: "False")
LOWERINGS[P.isfinite_p] = _float_test("isfinite", lambda x: "True")
LOWERINGS[P.signbit_p] = _float_test("signbit", lambda x: "False" if x == "True" else f"({x} < 0)")


def _not(args, ins, out, **_):
    if out.dtype.kind == "b":
        return f"(not {args[0]})"
    return wrap(out.dtype, f"~{args[0]}")


LOWERINGS[P.not_p] = Elementwise(_not)


def _convert(args, ins, out, *, dtype):
    src, dst, x = ins[0].dtype, np.dtype(dtype), args[0]
    if src == dst:
        return x
    if dst.kind == "b":
        return f"({x} != 0)"
    return f"{np_type(dst)}({x})"


LOWERINGS[P.convert_p] = Elementwise(_convert)


def _binary(op, bool_op=None):
    def rule(args, ins, out, **_):
        a, b = args
        if out.dtype.kind == "b" and bool_op is not None:
            return f"({a} {bool_op} {b})"
        return wrap(out.dtype, f"({a} {op} {b})")
    return Elementwise(rule)


LOWERINGS[P.add_p] = _binary("+", "|")
def _sub(args, ins, out, **_):
    if out.dtype.kind == "b":
        _numpy_refuses(np.subtract, np.array(True), np.array(True))
    return wrap(out.dtype, f"({args[0]} - {args[1]})")


LOWERINGS[P.sub_p] = Elementwise(_sub)
LOWERINGS[P.mul_p] = _binary("*", "&")
LOWERINGS[P.div_p] = _binary("/")
LOWERINGS[P.and_p] = _binary("&", "&")
LOWERINGS[P.or_p] = _binary("|", "|")
LOWERINGS[P.xor_p] = _binary("^", "^")


def _binary_ufunc(name, bool_op=None):
    def rule(args, ins, out, **_):
        if out.dtype.kind == "b" and bool_op is not None:
            return f"({args[0]} {bool_op} {args[1]})"
        return wrap(out.dtype, f"np.{name}({args[0]}, {args[1]})")
    return Elementwise(rule)


def _pow(args, ins, out, **_):
    if out.dtype.kind in "iu":
        return wrap(out.dtype, f"ipow({args[0]}, {args[1]})")   # raises as NumPy does for b < 0
    if out.dtype.kind == "b":
        return f"({args[0]} | (not {args[1]}))"                    # x**y on bools: 1 unless 0**1
    return f"np.power({args[0]}, {args[1]})"


LOWERINGS[P.pow_p] = Elementwise(_pow)
LOWERINGS[P.max_p] = _binary_ufunc("maximum", "|")   # NaN-propagating, as np.maximum
LOWERINGS[P.min_p] = _binary_ufunc("minimum", "&")
def _rem(args, ins, out, **_):
    a, b = args
    if out.dtype.kind == "f":
        return f"np.fmod({a}, {b})"
    # C remainder (sign of the dividend); Numba's integer np.fmod follows Python's sign rule.
    # x % 0 is 0 under error_model="numpy", as np.fmod gives.
    r = f"({a} % {b})"
    return wrap(out.dtype, f"({r} - {b} if {r} != 0 and ({r} < 0) != ({a} < 0) else {r})")


LOWERINGS[P.rem_p] = Elementwise(_rem)
def _floordiv(args, ins, out, **_):
    if out.dtype.kind == "f":
        return f"{np_type(out.dtype)}(floordiv_f({args[0]}, {args[1]}))"
    return wrap(out.dtype, f"np.floor_divide({args[0]}, {args[1]})")


LOWERINGS[P.floordiv_p] = Elementwise(_floordiv)


def _compare(op):
    return Elementwise(lambda args, ins, out, **_: f"({args[0]} {op} {args[1]})")


for _p, _op in {P.eq_p: "==", P.ne_p: "!=", P.lt_p: "<", P.le_p: "<=", P.gt_p: ">",
                P.ge_p: ">="}.items():
    LOWERINGS[_p] = _compare(_op)

LOWERINGS[P.select_p] = Elementwise(lambda args, ins, out, **_: f"({args[1]} if {args[0]} else {args[2]})")
