"""The compiler's rule table: `LOWERINGS` (primitive -> lowering rule), the four kinds of rule, and the
text helpers every lowering uses (dtype spellings, typed literals, integer wrapping).

Four kinds of rule, which tell the fusion pass what it may do with an equation:
  Elementwise(fn)   fn(args, ins, out, **params) -> a scalar expression (text) over the operands'
                    scalar texts; the loop around it is the emitter's business, so any chain of
                    these fuses into one loop.
  View(fn)          fn(access, ins, out, **params) -> the output's `layout.Access` (or None when it
                    is not a strided view); views emit no code unless an array is needed.
  Reduction(...)    identity and combine texts; the loop emitter places accumulators.
  Block(fn)         fn(ctx, eqn) emits statements itself through the `emit.Emitter` API.
The rules themselves live in `compiler/lowering/`, one module per family of primitives; they are
the NumPy impls in `tracegrad/rules/` restated for scalars: same dtype out (integer results are
wrapped back to their width, since Numba widens int32 arithmetic to int64).
"""
from __future__ import annotations

import numpy as np

from tracegrad.errors import MissingRuleError


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


LOWERINGS: dict = {}     # Primitive -> Elementwise | View | Reduction | Block

# The helpers in `kernels.py` (compiled once per machine) that generated kernels may call.
KERNEL_HELPERS = ("gemm", "gemm_loops", "sort_rows", "lu_factor", "tri_solve", "cholesky", "ipow",
                  "floordiv_f", "grow_buffer")


def lowering(prim):
    rule = LOWERINGS.get(prim)
    if rule is None:
        hint = ""
        if prim.inline_before_compile:
            hint = " (it is meant to be inlined first: tracegrad.passes.inline_calls)"
        raise MissingRuleError(f"primitive '{prim.name}' has no Numba lowering{hint}; add one in "
                               f"compiler/lowering/ (the family's module)")
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


def is_int(dt) -> bool:
    return np.dtype(dt).kind in "iu"


def wrap(dt, expr: str) -> str:
    """Integers narrower than 64 bits come back to their width (wrapping, as NumPy does)."""
    dt = np.dtype(dt)
    if dt.kind in "iu" and dt not in (np.dtype(np.int64), np.dtype(np.uint64)):
        return f"{np_type(dt)}({expr})"
    return expr


def wrap_int(dt, expr):
    if dt.kind in "iu" and dt.itemsize < 8:
        return f"{np_type(dt)}({expr})"
    return expr


def int_text(v) -> str:
    # np.int64(...) is typed int64, not Literal[int]: one compiled helper serves every call
    return f"np.int64({v})"


def flag_text(v) -> str:
    return f"np.bool_({bool(v)})"
