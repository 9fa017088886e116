"""Helpers for writing rules: registration and shape checks shared by the rule files."""
from __future__ import annotations

import numpy as np

from ..ir import Aval, short_dtype
from ..primitives import impl_rules, jvp_rules, shape_rules, vjp_rules


def defimpl(prim, fn):
    impl_rules[prim] = fn


def defshape(prim, fn):
    shape_rules[prim] = fn


def defvjp(prim, fn):
    vjp_rules[prim] = fn


def defjvp(prim, fn):
    jvp_rules[prim] = fn


def fmt_shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(*avals) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*[a.shape for a in avals]))
    except ValueError:
        shapes = " and ".join(fmt_shape(a.shape) for a in avals)
        raise ValueError(f"operands could not be broadcast together with shapes {shapes}") from None


def same_dtype(*avals):
    dts = {a.dtype for a in avals}
    if len(dts) != 1:
        names = ", ".join(short_dtype(a.dtype) for a in avals)
        raise TypeError(f"operands must share one dtype, got {names}")
    return avals[0].dtype


def elementwise_shape(*avals, out_dtype=None) -> Aval:
    dtype = same_dtype(*avals)
    return Aval(broadcast_shapes(*avals), out_dtype or dtype)


def require_float(name, aval):
    if aval.dtype.kind != "f":
        raise TypeError(f"{name} needs a floating-point operand, got {short_dtype(aval.dtype)}")
