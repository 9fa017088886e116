"""The primitive set, declared once, and the rule tables, one per kind of rule.

Every operation the tracer can record is one of the primitives below, grouped by family. A
primitive's properties are fields of its declaration (never looked up with defaults elsewhere):

  family                 which group of rules handles it (see FAMILIES)
  multiple_results       its equations have a tuple of outputs
  effectful              kept by dead-code elimination even when its outputs are unused
  differentiable         False: its outputs carry no derivative (no VJP/JVP rule is registered)
  foldable               bind may compute it at trace time when every operand is a tiny constant
  inline_before_compile  `passes.inline_calls` replaces its equations by their `call` sub-IR
  vjp_needs_active       backward_pass passes `active=` (one bool per input: needs a cotangent)
  loop_cost              relative cost per point inside a fused compiled loop (1: an add)
  domain                 unary float primitives: the inputs where it is defined and smooth, as the
                         tests draw them ("any", "pos", "unit", "ge1", "small", "special", ...)

Rules live in `tracegrad/rules/` (one file per family) and register into these tables:
  impl   (NumPy; the reference semantics and what eager mode runs)  impl(*arrays, **params)
  shape  (aval inference; raises ValueError/TypeError on bad input) shape(*avals, **params)
  vjp    (reverse mode, written with traceable ops)                   vjp(ct, *inputs, out=, **params)
         -> one cotangent per input (None for zero); elementwise rules may return cotangents of the
            broadcast output shape: autodiff sums them back to each input's shape in one place.
  jvp    (forward mode, written with traceable ops)                   jvp(tangents, *inputs, out=, **params)
         -> tangent of the output (None for zero); `tangents` holds None for a zero tangent.
  batch  (vmap, written with traceable ops)                           batch(args, dims, **params)
         -> (outputs, out dims); `dims` holds each operand's batch axis (None: not batched). Only
            called when some operand is batched; rules live in `tracegrad/rules/batching/`.
The Numba lowering of each primitive is in `compiler/lowering/`. `tests/test_registry.py` checks that
every primitive has every rule its declaration calls for, naming the file to edit. The exact
semantics of the less obvious primitives (indexing, linear algebra, control flow) are in
`docs/primitives.md`, which the impls and the lowerings both implement.

Conventions shared by impl and lowering:
- Elementwise primitives take inputs of one dtype and broadcast them as NumPy does.
- Reductions take `axes` (a sorted tuple of non-negative ints) and drop those axes.
- `dot_general[contract=((lhs...), (rhs...)), batch=((lhs...), (rhs...))]`: output dims are
  batch dims, then lhs free dims, then rhs free dims (in order).
"""
from __future__ import annotations

FAMILIES = ("unary", "predicate", "binary", "compare", "select", "reduction", "structure",
            "indexing", "cumulative", "sort", "linalg", "control", "call", "effect")

COSTLY = 20   # loop_cost of a transcendental function relative to an add


class Primitive:
    __slots__ = ("name", "family", "multiple_results", "effectful", "differentiable", "foldable",
                 "inline_before_compile", "vjp_needs_active", "loop_cost", "domain", "__weakref__")

    def __init__(self, name: str, family: str, *, multiple_results: bool = False,
                 effectful: bool = False, differentiable: bool = True, foldable: bool = True,
                 inline_before_compile: bool = False, vjp_needs_active: bool = False,
                 loop_cost: int = 1, domain: str | None = None):
        assert family in FAMILIES, family
        self.name = name
        self.family = family
        self.multiple_results = multiple_results
        self.effectful = effectful
        self.differentiable = differentiable
        self.foldable = foldable
        self.inline_before_compile = inline_before_compile
        self.vjp_needs_active = vjp_needs_active
        self.loop_cost = loop_cost
        self.domain = domain

    def __repr__(self):
        return self.name


impl_rules: dict = {}
shape_rules: dict = {}
vjp_rules: dict = {}
jvp_rules: dict = {}
batch_rules: dict = {}
all_primitives: dict = {}


def primitive(name: str, family: str, **props) -> Primitive:
    assert name not in all_primitives, name
    p = all_primitives[name] = Primitive(name, family, **props)
    return p


def _unary(name, domain, cost=1, differentiable=True):
    return primitive(name, "unary", domain=domain, loop_cost=cost, differentiable=differentiable)


# ---------------------------------------------------------------- elementwise, one input
# Same shape and dtype out.
neg_p = _unary("neg", "special")
abs_p = _unary("abs", "special")
sign_p = _unary("sign", "special", differentiable=False)
exp_p = _unary("exp", "any", COSTLY)
expm1_p = _unary("expm1", "any", COSTLY)
log_p = _unary("log", "pos", COSTLY)
log1p_p = _unary("log1p", "pos", COSTLY)
sqrt_p = _unary("sqrt", "pos")
cbrt_p = _unary("cbrt", "any", COSTLY)
sin_p = _unary("sin", "any", COSTLY)
cos_p = _unary("cos", "any", COSTLY)
tan_p = _unary("tan", "small", COSTLY)
asin_p = _unary("asin", "unit", COSTLY)
acos_p = _unary("acos", "unit", COSTLY)
atan_p = _unary("atan", "any", COSTLY)
sinh_p = _unary("sinh", "small", COSTLY)
cosh_p = _unary("cosh", "small", COSTLY)
tanh_p = _unary("tanh", "any", COSTLY)
asinh_p = _unary("asinh", "any", COSTLY)
acosh_p = _unary("acosh", "ge1", COSTLY)
atanh_p = _unary("atanh", "unit", COSTLY)
erf_p = _unary("erf", "any", COSTLY)
floor_p = _unary("floor", "any", differentiable=False)
ceil_p = _unary("ceil", "any", differentiable=False)
round_p = _unary("round", "halves", differentiable=False)      # half to even, as np.rint
trunc_p = _unary("trunc", "any", differentiable=False)
stop_gradient_p = _unary("stop_gradient", "any")                 # identity whose derivative is zero
integer_pow_p = primitive("integer_pow", "unary")                # [y: int]  x ** y
convert_p = primitive("convert", "unary")                        # [dtype: np.dtype]

# Bool out (no derivative).
isnan_p = primitive("isnan", "predicate", differentiable=False, domain="special")
isinf_p = primitive("isinf", "predicate", differentiable=False, domain="special")
isfinite_p = primitive("isfinite", "predicate", differentiable=False, domain="special")
signbit_p = primitive("signbit", "predicate", differentiable=False, domain="special")
not_p = primitive("not", "predicate", differentiable=False)      # logical not on bool, bitwise on ints

# ---------------------------------------------------------------- elementwise, two inputs
# Broadcasting, same dtype out.
add_p = primitive("add", "binary")
sub_p = primitive("sub", "binary")
mul_p = primitive("mul", "binary")
div_p = primitive("div", "binary")                               # true division (floats only)
pow_p = primitive("pow", "binary", loop_cost=COSTLY)
max_p = primitive("max", "binary")                               # np.maximum (NaN-propagating)
min_p = primitive("min", "binary")
atan2_p = primitive("atan2", "binary", loop_cost=COSTLY)
rem_p = primitive("rem", "binary", loop_cost=COSTLY)             # C fmod: sign of the dividend
floordiv_p = primitive("floordiv", "binary", differentiable=False)   # np.floor_divide
and_p = primitive("and", "binary", differentiable=False)         # bitwise / logical on bool
or_p = primitive("or", "binary", differentiable=False)
xor_p = primitive("xor", "binary", differentiable=False)

# Comparisons: bool out.
eq_p = primitive("eq", "compare", differentiable=False)
ne_p = primitive("ne", "compare", differentiable=False)
lt_p = primitive("lt", "compare", differentiable=False)
le_p = primitive("le", "compare", differentiable=False)
gt_p = primitive("gt", "compare", differentiable=False)
ge_p = primitive("ge", "compare", differentiable=False)

# select(pred: bool, on_true, on_false), broadcasting.
select_p = primitive("select", "select")

# ---------------------------------------------------------------- reductions over `axes`
reduce_sum_p = primitive("reduce_sum", "reduction")
reduce_max_p = primitive("reduce_max", "reduction")
reduce_min_p = primitive("reduce_min", "reduction")
reduce_prod_p = primitive("reduce_prod", "reduction")
reduce_and_p = primitive("reduce_and", "reduction", differentiable=False)
reduce_or_p = primitive("reduce_or", "reduction", differentiable=False)
argmax_p = primitive("argmax", "reduction", differentiable=False)   # [axis: int] -> int64, first occurrence
argmin_p = primitive("argmin", "reduction", differentiable=False)

# ---------------------------------------------------------------- structure
dot_general_p = primitive("dot_general", "structure")            # [contract, batch]
reshape_p = primitive("reshape", "structure")                    # [shape]
broadcast_to_p = primitive("broadcast_to", "structure")          # [shape]  NumPy rules (right-aligned)
transpose_p = primitive("transpose", "structure")                # [perm]
slice_p = primitive("slice", "structure")                        # [start, limit, strides], strides > 0
pad_p = primitive("pad", "structure")                            # (x, fill) [config: ((lo, hi, interior), ...)]
concatenate_p = primitive("concatenate", "structure")            # [axis] any number of inputs
rev_p = primitive("rev", "structure")                            # [axes] reverse order along axes

# ---------------------------------------------------------------- indexing, scans, sorting
gather_p = primitive("gather", "indexing")                       # (x, idx) [axes]
scatter_p = primitive("scatter", "indexing")                     # (operand, idx, updates) [axes, mode]
# (start, stop) [size, length, step, axis, src] -> the first index of a slice with traced bounds,
# whose length must be `length` (IndexError otherwise): docs/primitives.md
slice_start_p = primitive("slice_start", "indexing", differentiable=False)
linear_recurrence_p = primitive("linear_recurrence", "cumulative")   # (a, b) [axis, reverse]
sort_p = primitive("sort", "sort", multiple_results=True)        # (x) [axis] -> (values, perm)

# ---------------------------------------------------------------- linear-algebra kernels
lu_p = primitive("lu", "linalg", multiple_results=True)          # (a) -> (lu, pivots, perm)
triangular_solve_p = primitive("triangular_solve", "linalg")     # (a, b) [lower, transpose_a, unit_diagonal]
cholesky_p = primitive("cholesky", "linalg")                     # (a) -> l
eigh_p = primitive("eigh", "linalg", multiple_results=True)      # (a) -> (w, v)
svd_p = primitive("svd", "linalg", multiple_results=True)        # (a) [full_matrices] -> (u, s, vh)


# ---------------------------------------------------------------- control flow
# Equations hold their bodies as nested IRs in their params. Never evaluated at trace time.
def _control(name):
    return primitive(name, "control", multiple_results=True, foldable=False, vjp_needs_active=True)


cond_p = _control("cond")                   # [branches]        pred ops...
scan_p = _control("scan")                   # [body, length, reverse, n_consts, n_carry, saved]
while_p = _control("while")                 # [cond, body, n_cond_consts, n_body_consts, record, saved]
checkpoint_p = _control("checkpoint")       # [body]

# ---------------------------------------------------------------- calls and effects
# Custom derivatives: the `call` param holds the traced function; its derivative rules ask the
# user's rule (the `rule` param). All differentiation is over once a top-level trace ends, so the
# compiler never sees these: they are inlined first.
custom_vjp_call_p = primitive("custom_vjp_call", "call", multiple_results=True,
                              inline_before_compile=True, vjp_needs_active=True)
custom_jvp_call_p = primitive("custom_jvp_call", "call", multiple_results=True,
                              inline_before_compile=True, vjp_needs_active=True)
callback_p = primitive("callback", "call", multiple_results=True)      # tg.pure_callback
debug_print_p = primitive("debug_print", "effect", multiple_results=True, effectful=True,
                          differentiable=False)                        # [fmt] no outputs
# A draw from a numpy.random generator, made at run time: [draw] () -> (sample,) or () for an effect
# such as seed() (tracegrad/draws.py; docs/primitives.md). tiers.Entry makes the leading draws before
# each call and passes them in; the compiler calls any others (after a callback) in object mode.
random_p = primitive("random", "effect", multiple_results=True, effectful=True, differentiable=False,
                     foldable=False)


# ---------------------------------------------------------------- special functions (scipy.special)
# Rules in tracegrad/rules/special.py (impls call SciPy), lowerings in compiler/lowering/special.py
# (SciPy's own C implementations). Same dtype out; float32 is computed in float64 and rounded.
lgamma_p = _unary("lgamma", "pos", 4 * COSTLY)          # log|Gamma(x)|, scipy.special.gammaln
digamma_p = _unary("digamma", "pos", 4 * COSTLY)        # psi(x) = lgamma'(x)
gamma_p = _unary("gamma", "pos", 4 * COSTLY)
erfc_p = _unary("erfc", "any", COSTLY)                  # 1 - erf(x), accurate for large x
erfinv_p = _unary("erfinv", "unit", 2 * COSTLY)
log_ndtr_p = _unary("log_ndtr", "any", 2 * COSTLY)      # log of the standard normal CDF
i0_p = _unary("i0", "any", 2 * COSTLY)                  # modified Bessel functions of the first kind
i1_p = _unary("i1", "any", 2 * COSTLY)
i0e_p = _unary("i0e", "any", 2 * COSTLY)                # exp(-|x|) * i0(x)
i1e_p = _unary("i1e", "any", 2 * COSTLY)
# polygamma(n, x): n a whole number >= 0 of x's dtype (NaN otherwise); no derivative in n.
polygamma_p = primitive("polygamma", "binary", loop_cost=8 * COSTLY)
# Regularized incomplete gamma P(a, x), Q(a, x) and beta I_x(a, b) (three inputs: a, b, x); their
# derivatives in the shape parameters a, b have no closed form: asking for one is an error.
gammainc_p = primitive("gammainc", "binary", loop_cost=8 * COSTLY, vjp_needs_active=True)
gammaincc_p = primitive("gammaincc", "binary", loop_cost=8 * COSTLY, vjp_needs_active=True)
betainc_p = primitive("betainc", "binary", loop_cost=8 * COSTLY, vjp_needs_active=True)
# ---------------------------------------------------------------- end of special functions
