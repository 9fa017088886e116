"""The Numba lowering of every primitive: one table, `LOWERINGS`, keyed by primitive.

Four kinds of rule, which tell the fusion pass what it may do with an equation:
  Elementwise(fn)   fn(args, ins, out, **params) -> a scalar expression (text) over the operands'
                    scalar texts; the loop around it is the emitter's business, so any chain of
                    these fuses into one loop.
  View(fn)          fn(access, ins, out, **params) -> the output's `layout.Access` (or None when it
                    is not a strided view); views emit no code unless an array is needed.
  Reduction(...)    identity and combine texts; the loop emitter places accumulators.
  Block(fn)         fn(ctx, eqn) emits statements itself (dot_general, pad, concatenate, argmax,
                    debug_print), through the `emit.Emitter` API.
The rules are the NumPy impls in `tracegrad/rules/` restated for scalars: same dtype out (integer
results are wrapped back to their width, since Numba widens int32 arithmetic to int64).
The table is keyed by primitive name, so rules can exist for primitives defined in modules the
compiler must not import (control flow, callbacks); `lowering_ext.py` adds the extended set.
"""
from __future__ import annotations

import numpy as np

from tracegrad import primitives as P
from tracegrad.ir import Lit
from tracegrad.errors import MissingRuleError

from . import layout, vecmath


class Elementwise:
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


class View:
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


class Reduction:
    """`acc = combine(acc, v)` from `identity`; `acc_dtype` is what the accumulator holds."""
    __slots__ = ("identity", "combine", "acc_dtype", "parallel_ok")

    def __init__(self, identity, combine, acc_dtype=None, parallel_ok=False):
        self.identity, self.combine = identity, combine
        self.acc_dtype = acc_dtype or (lambda dt: dt)
        self.parallel_ok = parallel_ok   # Numba's prange recognises `acc += v` / `acc *= v` only


class Block:
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


class _Table(dict):
    """name -> rule; a Primitive works as a key too (its name is used)."""

    @staticmethod
    def _key(k):
        return getattr(k, "name", k)

    def __getitem__(self, k):
        return super().__getitem__(self._key(k))

    def __setitem__(self, k, v):
        super().__setitem__(self._key(k), v)

    def __delitem__(self, k):
        super().__delitem__(self._key(k))

    def __contains__(self, k):
        return super().__contains__(self._key(k))

    def get(self, k, default=None):
        return super().get(self._key(k), default)

    def pop(self, k, *default):
        return super().pop(self._key(k), *default)


LOWERINGS: dict = _Table()


def lowering(prim):
    rule = LOWERINGS.get(prim)
    if rule is None:
        hint = ""
        if getattr(prim, "inline_before_compile", False):
            hint = " (it is meant to be inlined first: tracegrad.passes.inline_calls)"
        raise MissingRuleError(f"primitive '{prim.name}' has no Numba lowering{hint}; add one to "
                               f"compiler/lowering.py (LOWERINGS)")
    return rule


# ---------------------------------------------------------------- literals and dtypes

def np_type(dtype) -> str:
    """`np.float32` etc.: the spelling generated code uses for a dtype."""
    name = np.dtype(dtype).name
    return "np.bool_" if name == "bool" else f"np.{name}"


def lit(value, dtype) -> str:
    """A literal that Numba types as exactly `dtype` (`np.float32(0.01)`, `2.5` for float64)."""
    dtype = np.dtype(dtype)
    v = np.asarray(value, dtype=dtype)[()]
    if dtype.kind == "b":
        return "True" if v else "False"
    if dtype.kind == "f":
        f = float(v)
        if np.isnan(f):
            text = "np.nan"
        elif np.isinf(f):
            text = "np.inf" if f > 0 else "-np.inf"
        else:
            if dtype == np.float64:
                return repr(f) if f >= 0 else f"({f!r})"
            text = str(v)   # NumPy prints the shortest text that round-trips in this dtype
        return f"{np_type(dtype)}({text})"
    if dtype == np.int64:
        return str(int(v)) if int(v) >= 0 else f"({int(v)})"
    return f"{np_type(dtype)}({int(v)})"


def _is_int(dt) -> bool:
    return np.dtype(dt).kind in "iu"


def _wrap(dt, expr: str) -> str:
    """Integers narrower than 64 bits come back to their width (wrapping, as NumPy does)."""
    dt = np.dtype(dt)
    if dt.kind in "iu" and dt not in (np.dtype(np.int64), np.dtype(np.uint64)):
        return f"{np_type(dt)}({expr})"
    return expr


# ---------------------------------------------------------------- elementwise

def _ufunc(name):
    def rule(args, ins, out, **_):
        kernel = vecmath.kernel_for(name, out.dtype)      # vectorisable exp/log/sin/...: vecmath.py
        if kernel:
            return f"{kernel}({args[0]})"
        return _wrap(out.dtype, f"np.{name}({', '.join(args)})")
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
        if _is_int(out.dtype) or out.dtype.kind == "b":
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
    return _wrap(out.dtype, f"-{args[0]}")


def _abs(args, ins, out, **_):
    if out.dtype.kind in "bu":
        return args[0]
    return _wrap(out.dtype, f"np.abs({args[0]})")


def _sign(args, ins, out, **_):
    if out.dtype.kind == "b":
        return args[0]
    return _wrap(out.dtype, f"np.sign({args[0]})")


LOWERINGS[P.neg_p] = Elementwise(_neg)
LOWERINGS[P.abs_p] = Elementwise(_abs)
LOWERINGS[P.sign_p] = Elementwise(_sign)


def _integer_pow(args, ins, out, *, y):
    x, dt = args[0], out.dtype
    if y == 0:
        return lit(1, dt)
    if 1 <= y <= 4:
        return _wrap(dt, " * ".join([x] * y))
    if dt.kind == "f" and -4 <= y <= -1:
        return f"{lit(1, dt)} / ({' * '.join([x] * -y)})"
    if dt.kind == "f":
        return f"np.power({x}, {lit(y, dt)})"
    return _wrap(dt, f"np.power({x}, {lit(y, np.int64)})")


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
    return _wrap(out.dtype, f"~{args[0]}")


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
        return _wrap(out.dtype, f"({a} {op} {b})")
    return Elementwise(rule)


LOWERINGS[P.add_p] = _binary("+", "|")
def _sub(args, ins, out, **_):
    if out.dtype.kind == "b":
        _numpy_refuses(np.subtract, np.array(True), np.array(True))
    return _wrap(out.dtype, f"({args[0]} - {args[1]})")


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
        return _wrap(out.dtype, f"np.{name}({args[0]}, {args[1]})")
    return Elementwise(rule)


def _pow(args, ins, out, **_):
    if out.dtype.kind in "iu":
        return _wrap(out.dtype, f"ipow({args[0]}, {args[1]})")   # raises as NumPy does for b < 0
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
    return _wrap(out.dtype, f"({r} - {b} if {r} != 0 and ({r} < 0) != ({a} < 0) else {r})")


LOWERINGS[P.rem_p] = Elementwise(_rem)
def _floordiv(args, ins, out, **_):
    if out.dtype.kind == "f":
        return f"{np_type(out.dtype)}(floordiv_f({args[0]}, {args[1]}))"
    return _wrap(out.dtype, f"np.floor_divide({args[0]}, {args[1]})")


LOWERINGS[P.floordiv_p] = Elementwise(_floordiv)


def _compare(op):
    return Elementwise(lambda args, ins, out, **_: f"({args[0]} {op} {args[1]})")


for _p, _op in {P.eq_p: "==", P.ne_p: "!=", P.lt_p: "<", P.le_p: "<=", P.gt_p: ">",
                P.ge_p: ">="}.items():
    LOWERINGS[_p] = _compare(_op)

LOWERINGS[P.select_p] = Elementwise(lambda args, ins, out, **_: f"({args[1]} if {args[0]} else {args[2]})")


# ---------------------------------------------------------------- views

LOWERINGS[P.stop_gradient_p] = View(lambda acc, ins, out: acc)
LOWERINGS[P.reshape_p] = View(lambda acc, ins, out, *, shape: layout.reshape(acc, shape))
LOWERINGS[P.broadcast_to_p] = View(lambda acc, ins, out, *, shape: layout.broadcast(acc, shape))
LOWERINGS[P.transpose_p] = View(lambda acc, ins, out, *, perm: layout.transpose(acc, perm))
LOWERINGS[P.slice_p] = View(lambda acc, ins, out, *, start, limit, strides:
                            layout.slice_(acc, start, limit, strides, out.shape))
LOWERINGS[P.rev_p] = View(lambda acc, ins, out, *, axes: layout.rev(acc, axes))


# ---------------------------------------------------------------- reductions

def _sum_acc(dt):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return np.dtype(np.float64) if dt.itemsize < 8 else dt   # NumPy sums pairwise; we widen
    if dt.kind == "i":
        return np.dtype(np.int64)
    if dt.kind == "u":
        return np.dtype(np.uint64)
    return dt


def _sum_combine(acc, v, dt):
    return f"{acc} | {v}" if dt.kind == "b" else f"{acc} + {v}"


def _prod_combine(acc, v, dt):
    return f"{acc} & {v}" if dt.kind == "b" else f"{acc} * {v}"


def _extreme(dt, sign):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return lit(sign * np.inf, dt)
    if dt.kind == "b":
        return "True" if sign > 0 else "False"
    info = np.iinfo(dt)
    return lit(info.max if sign > 0 else info.min, dt)


def _max_combine(acc, v, dt):
    return f"{acc} | {v}" if dt.kind == "b" else f"np.maximum({acc}, {v})"


def _min_combine(acc, v, dt):
    return f"{acc} & {v}" if dt.kind == "b" else f"np.minimum({acc}, {v})"


def _truth(v, dt):
    return v if dt.kind == "b" else f"({v} != 0)"


LOWERINGS[P.reduce_sum_p] = Reduction(lambda dt: lit(0, _sum_acc(dt)), _sum_combine, _sum_acc,
                                      parallel_ok=True)
LOWERINGS[P.reduce_prod_p] = Reduction(lambda dt: lit(1, _sum_acc(dt)), _prod_combine, _sum_acc,
                                       parallel_ok=True)
LOWERINGS[P.reduce_max_p] = Reduction(lambda dt: _extreme(dt, -1), _max_combine)
LOWERINGS[P.reduce_min_p] = Reduction(lambda dt: _extreme(dt, +1), _min_combine)
LOWERINGS[P.reduce_and_p] = Reduction(lambda dt: "True", lambda acc, v, dt: f"{acc} & {_truth(v, dt)}",
                                      lambda dt: np.dtype(np.bool_))
LOWERINGS[P.reduce_or_p] = Reduction(lambda dt: "False", lambda acc, v, dt: f"{acc} | {_truth(v, dt)}",
                                     lambda dt: np.dtype(np.bool_))


# ---------------------------------------------------------------- blocks

def _dot_general(ctx, eqn):
    """Batched matrix product: operands as (B, M, K) and (B, K, N) blocks, through the cached
    `kernels.gemm` helper (BLAS; transposed blocks go in with a transpose flag, not a copy)."""
    x, y = eqn.inputs
    (out,) = eqn.outs
    (xc, yc), (xb, yb) = eqn.params["contract"], eqn.params["batch"]
    x_free = tuple(a for a in range(x.aval.ndim) if a not in xc and a not in xb)
    y_free = tuple(a for a in range(y.aval.ndim) if a not in yc and a not in yb)
    xs, ys = x.aval.shape, y.aval.shape
    B = layout.size_of([xs[a] for a in xb])
    M = layout.size_of([xs[a] for a in x_free])
    K = layout.size_of([xs[a] for a in xc])
    N = layout.size_of([ys[a] for a in y_free])
    dt = out.aval.dtype
    o = ctx.new_buffer(out)
    if B * M * N == 0:
        return
    if K == 0:
        ctx.fill(o, B * M * N, lit(0, dt))
        return
    xa = _as_matrices(ctx, ctx.access(x, perm=xb + x_free + xc), (B, M, K))
    ya = _as_matrices(ctx, ctx.access(y, perm=yb + yc + y_free), (B, K, N))
    fn = "gemm" if dt.kind == "f" else "gemm_loops"
    ctx.kernels.add(fn)
    ctx.comment(f"{ctx.name(out)} = {_mat_text(ctx, x, xa[2])} @ {_mat_text(ctx, y, ya[2])}: "
                f"{B} x ({M}x{K} @ {K}x{N})")
    ctx.line(f"{fn}({xa[0]}, {_int(xa[1])}, {_flag(xa[2])}, {ya[0]}, {_int(ya[1])}, {_flag(ya[2])}, "
             f"{o[0]}, {_int(o[1])}, {_int(B)}, {_int(M)}, {_int(K)}, {_int(N)})")


def _mat_text(ctx, atom, transposed) -> str:
    name = lit(atom.value, atom.aval.dtype) if isinstance(atom, Lit) else ctx.name(atom)
    return f"{name}.T" if transposed else name


def _int(v) -> str:
    # np.int64(...) is typed int64, not Literal[int]: one compiled helper serves every call
    return f"np.int64({v})"


def _flag(v) -> str:
    return f"np.bool_({bool(v)})"


def _as_matrices(ctx, acc, shape):
    """(array, offset, transposed) of `acc` as C-ordered matrices of `shape` (B, R, C)."""
    acc3 = layout.reshape(acc, shape)
    return ctx.flat(acc3 if acc3 is not None else acc, transposable=acc3 is not None)


def _pad(ctx, eqn):
    x, fill = eqn.inputs
    (out,) = eqn.outs
    config = eqn.params["config"]
    o = ctx.new_buffer(out)
    ctx.fill(o, out.aval.size, ctx.scalar(fill))
    ostr = layout.c_strides(out.aval.shape)
    offset = sum(lo * s for (lo, _, _), s in zip(config, ostr))
    strides = tuple(s * (it + 1) for (_, _, it), s in zip(config, ostr))
    ctx.copy(ctx.access(x), o, offset, strides)


def _concatenate(ctx, eqn):
    (out,) = eqn.outs
    axis = eqn.params["axis"]
    o = ctx.new_buffer(out)
    ostr = layout.c_strides(out.aval.shape)
    start = 0
    for x in eqn.inputs:
        ctx.copy(ctx.access(x), o, start * ostr[axis], ostr)
        start += x.aval.shape[axis]


def _arg_extreme(better):
    def rule(ctx, eqn):
        (x,) = eqn.inputs
        (out,) = eqn.outs
        axis = eqn.params["axis"]
        o = ctx.new_buffer(out)
        dt = x.aval.dtype
        kept = tuple(a for a in range(x.aval.ndim) if a != axis)
        acc = ctx.access(x, perm=kept + (axis,))
        init = _extreme(dt, -1 if better == ">" else +1)
        ctx.reduce_loop(acc, o, better, init)
    return Block(rule)


def _debug_print(ctx, eqn):
    args = []
    for a in eqn.inputs:
        acc = ctx.access(a)
        if a.aval.shape == ():
            args.append(ctx.scalar_of(acc))
        else:
            base, off, _ = ctx.flat(acc)
            args.append(ctx.view_text(base, off, a.aval.shape))
    dtypes = tuple(a.aval.dtype.name for a in eqn.inputs)
    ctx.line("with objmode():")
    ctx.line(f"    _debug_print({', '.join([repr(eqn.params['fmt']), repr(dtypes)] + args)})")
    ctx.uses_objmode = True
    ctx.helpers.add("_debug_print")


LOWERINGS[P.dot_general_p] = Block(_dot_general)
LOWERINGS[P.pad_p] = Block(_pad)
LOWERINGS[P.concatenate_p] = Block(_concatenate)
LOWERINGS[P.argmax_p] = _arg_extreme(">")
LOWERINGS[P.argmin_p] = _arg_extreme("<")
LOWERINGS[P.debug_print_p] = Block(_debug_print)


from . import control, lowering_ext  # noqa: E402,F401  (register their rules in LOWERINGS)
