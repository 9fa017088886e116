"""The primitive set and the rule tables, one table per kind of rule.

Every operation the tracer can record is one of the primitives below. Each has, in
`tracegrad/rules/`:
  impl   (NumPy; the reference semantics and what eager mode runs)  impl(*arrays, **params)
  shape  (aval inference; raises ValueError on bad input)            shape(*avals, **params)
  vjp    (reverse mode, written with traceable ops)                   vjp(ct, *inputs, out=, **params)
         -> one cotangent per input (None for zero); elementwise rules may return cotangents of the
            broadcast output shape: autodiff sums them back to each input's shape in one place.
  jvp    (forward mode, written with traceable ops)                   jvp(tangents, *inputs, out=, **params)
         -> tangent of the output (None for zero); `tangents` holds None for a zero tangent.
and in `compiler/lowering.py` its Numba lowering. A primitive with no derivative is listed in
`nondiff` (its outputs carry no gradient); `tests/test_registry.py` checks that every primitive has
every rule.

Conventions shared by impl and lowering:
- Elementwise primitives take inputs of one dtype and broadcast them as NumPy does.
- Reductions take `axes` (a sorted tuple of non-negative ints) and drop those axes.
- `dot_general[contract=((lhs...), (rhs...)), batch=((lhs...), (rhs...))]`: output dims are
  batch dims, then lhs free dims, then rhs free dims (in order).
"""
from __future__ import annotations


class Primitive:
    __slots__ = ("name", "multiple_results", "effectful", "__weakref__")

    def __init__(self, name: str, multiple_results: bool = False, effectful: bool = False):
        self.name = name
        self.multiple_results = multiple_results
        self.effectful = effectful   # kept by dead-code elimination even if its outputs are unused

    def __repr__(self):
        return self.name


impl_rules: dict = {}
shape_rules: dict = {}
vjp_rules: dict = {}
jvp_rules: dict = {}
nondiff: set = set()
all_primitives: dict = {}


def primitive(name: str, multiple_results: bool = False, effectful: bool = False) -> Primitive:
    p = Primitive(name, multiple_results, effectful)
    assert name not in all_primitives, name
    all_primitives[name] = p
    return p


# Elementwise, one input, same shape and dtype out.
neg_p = primitive("neg")
abs_p = primitive("abs")
sign_p = primitive("sign")
exp_p = primitive("exp")
expm1_p = primitive("expm1")
log_p = primitive("log")
log1p_p = primitive("log1p")
sqrt_p = primitive("sqrt")
cbrt_p = primitive("cbrt")
sin_p = primitive("sin")
cos_p = primitive("cos")
tan_p = primitive("tan")
asin_p = primitive("asin")
acos_p = primitive("acos")
atan_p = primitive("atan")
sinh_p = primitive("sinh")
cosh_p = primitive("cosh")
tanh_p = primitive("tanh")
asinh_p = primitive("asinh")
acosh_p = primitive("acosh")
atanh_p = primitive("atanh")
erf_p = primitive("erf")
integer_pow_p = primitive("integer_pow")      # [y: int]  x ** y
floor_p = primitive("floor")
ceil_p = primitive("ceil")
round_p = primitive("round")                  # half to even, as np.rint
trunc_p = primitive("trunc")
# Elementwise, one input, bool out.
isnan_p = primitive("isnan")
isinf_p = primitive("isinf")
isfinite_p = primitive("isfinite")
signbit_p = primitive("signbit")
not_p = primitive("not")                      # logical not on bool, bitwise not on ints
# Conversion and gradient barrier.
convert_p = primitive("convert")              # [dtype: np.dtype]
stop_gradient_p = primitive("stop_gradient")  # identity whose derivative is zero

# Elementwise, two inputs, broadcasting, same dtype out.
add_p = primitive("add")
sub_p = primitive("sub")
mul_p = primitive("mul")
div_p = primitive("div")                      # true division (floats only)
pow_p = primitive("pow")
max_p = primitive("max")                      # np.maximum (NaN-propagating)
min_p = primitive("min")
atan2_p = primitive("atan2")
rem_p = primitive("rem")                      # C fmod: sign of the dividend
floordiv_p = primitive("floordiv")            # np.floor_divide
and_p = primitive("and")                      # bitwise / logical on bool
or_p = primitive("or")
xor_p = primitive("xor")
# Comparisons: two inputs, bool out.
eq_p = primitive("eq")
ne_p = primitive("ne")
lt_p = primitive("lt")
le_p = primitive("le")
gt_p = primitive("gt")
ge_p = primitive("ge")
# Three inputs: select(pred: bool, on_true, on_false), broadcasting.
select_p = primitive("select")

# Reductions over `axes`.
reduce_sum_p = primitive("reduce_sum")
reduce_max_p = primitive("reduce_max")
reduce_min_p = primitive("reduce_min")
reduce_prod_p = primitive("reduce_prod")
reduce_and_p = primitive("reduce_and")
reduce_or_p = primitive("reduce_or")
argmax_p = primitive("argmax")                # [axis: int] -> int64, first occurrence
argmin_p = primitive("argmin")

# Structure.
dot_general_p = primitive("dot_general")      # [contract, batch]
reshape_p = primitive("reshape")              # [shape]
broadcast_to_p = primitive("broadcast_to")    # [shape]  NumPy rules (right-aligned)
transpose_p = primitive("transpose")          # [perm]
slice_p = primitive("slice")                  # [start, limit, strides] per axis, strides > 0
pad_p = primitive("pad")                      # (x, fill scalar) [config: ((lo, hi, interior), ...)], lo/hi >= 0
concatenate_p = primitive("concatenate")      # [axis] any number of inputs
rev_p = primitive("rev")                      # [axes] reverse order along axes

# Effects.
debug_print_p = primitive("debug_print", multiple_results=True, effectful=True)  # [fmt] no outputs


NONDIFF_NAMES = ("floor", "ceil", "round", "trunc", "isnan", "isinf", "isfinite", "signbit", "not",
                 "floordiv", "and", "or", "xor", "eq", "ne", "lt", "le", "gt", "ge",
                 "reduce_and", "reduce_or", "argmax", "argmin", "sign", "debug_print")
nondiff.update(all_primitives[n] for n in NONDIFF_NAMES)


# ---------------------------------------------------------------- extended NumPy surface
# gather, scatter, linear_recurrence, sort, lu, triangular_solve, cholesky, eigh, svd: defined in
# primitives_ext.py, whose docstring is their lowering spec. Imported here so that loading this
# module always registers them (all_primitives is the complete set).
from . import primitives_ext  # noqa: E402,F401
