"""The op spec table: one row per `tracegrad.numpy` function, driving the parametrized op tests.

A row says how to call the function (`tnp_fn`, and `np_fn`, the NumPy reference it must agree with),
which arguments are arrays and from which input domain their values come, which keyword variants to
try, and whether it is differentiable ("no grad" ops must give zero gradients without crashing).
`draw` is a hypothesis-driven case generator: given `st.data()` it returns a `Case` (array shapes with
their domains, static keyword arguments, and how to call the function with them).

Every name that `tracegrad.numpy` exports through `numpy_function` must have a row (see
`test_table_covers_every_exported_function` in tests/test_ops.py).
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracegrad.numpy as tnp

FLOATS = (np.float32, np.float64)
INTS = (np.int32, np.int64)
ALL_DTYPES = FLOATS + INTS + (np.bool_,)


# ---------------------------------------------------------------- input domains

@dataclass(frozen=True)
class Domain:
    """Where an argument's values come from: floats by `sample(rng, shape)` (float64, cast later),
    ints uniformly from `ints` (inclusive), bools from `bools` ("any", "true" or "false").
    `fixed` pins the argument's dtype (e.g. a `where` condition is always bool)."""
    name: str
    sample: Callable
    ints: tuple = (-4, 4)
    bools: str = "any"
    nonzero_ints: bool = False
    fixed: object = None
    condition: bool = False     # a `where` condition: bool in gradient checks (else it'd be perturbed)

    def draw(self, rng, shape, dtype):
        dtype = np.dtype(self.fixed if self.fixed is not None else dtype)
        if dtype.kind == "b":
            if self.bools == "true":
                return np.ones(shape, bool)
            if self.bools == "false":
                return np.zeros(shape, bool)
            return rng.integers(0, 2, shape).astype(bool)
        if dtype.kind in "iu":
            v = rng.integers(self.ints[0], self.ints[1] + 1, shape)
            if self.nonzero_ints:
                v = np.where(v == 0, self.ints[1], v)
            return v.astype(dtype)
        return np.asarray(self.sample(rng, shape)).astype(dtype)

    def __repr__(self):
        return self.name


def _uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def _signed(lo, hi):
    return lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def _lattice(offset):
    # k + offset + small jitter: two lattices with offsets +-0.25 never come closer than 0.3, so
    # max/min/clip between them stay away from their kinks under any broadcasting.
    return lambda rng, shape: (rng.integers(-3, 4, shape) + offset
                               + rng.uniform(-0.1, 0.1, shape))


def _distinct(rng, shape):
    # all values pairwise at least 0.27 apart: reductions max/min have no ties
    n = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(n) * 0.37 - 0.18 * n + rng.uniform(-0.05, 0.05, n)).reshape(shape)


def _ties(rng, shape):
    return rng.integers(-2, 3, shape) * 0.5


def _mod_x(rng, shape):
    # with |y| in [1.95, 2.05], x / y stays 0.06 away from an integer: mod/fmod have no jumps near
    return 2.0 * rng.integers(-2, 3, shape) + rng.uniform(0.5, 1.5, shape)


REAL = Domain("real", _uniform(-3, 3))
POS = Domain("positive", _uniform(0.2, 3), ints=(1, 5), bools="true")
UNIT = Domain("(-1,1)", _uniform(-0.9, 0.9), ints=(0, 0), bools="false")
TAN = Domain("(-1.2,1.2)", _uniform(-1.2, 1.2), ints=(-1, 1))
GT1 = Domain("(1,inf)", _uniform(1.2, 4), ints=(1, 5), bools="true")
NONZERO = Domain("nonzero", _signed(0.3, 3), nonzero_ints=True, bools="true")
SMALL = Domain("small", _uniform(-2, 2), ints=(-2, 2))
KINK_A = Domain("lattice+1/4", _lattice(0.25))
KINK_B = Domain("lattice-1/4", _lattice(-0.25))
DISTINCT = Domain("distinct", _distinct)
TIES = Domain("ties", _ties, ints=(-2, 2))
PROD = Domain("near 1", _signed(0.5, 1.5), nonzero_ints=True, ints=(-2, 2))
MOD_X = Domain("mod x", _mod_x, ints=(-7, 7))
MOD_Y = Domain("mod y", _signed(1.95, 2.05), ints=(-3, 3), nonzero_ints=True, bools="true")
POW_EXP = Domain("exponent", _uniform(-2, 2), ints=(0, 3))
WEIGHTS = Domain("weights", _uniform(0.5, 2), ints=(1, 3), bools="true")
COND = Domain("condition", lambda rng, shape: rng.integers(0, 2, shape).astype(bool), fixed=np.bool_,
              condition=True)
ANY_COND = Domain("condition of any dtype", _ties, ints=(-2, 2), condition=True)


# ---------------------------------------------------------------- cases and specs

@dataclass
class Case:
    """One concrete call: arrays with shapes and domains, static kwargs, and how to call."""
    shapes: list
    domains: list
    kwargs: dict = field(default_factory=dict)
    call: Callable | None = None     # call(fn, *arrays, **kwargs); default fn(*arrays, **kwargs)

    def arrays(self, rng, dtype):
        return [d.draw(rng, s, dtype) for s, d in zip(self.shapes, self.domains)]

    def for_grad(self):
        """The same case for a derivative check: a float32 `dtype=` request made float64 (finite
        differences in float32 are too coarse) and conditions kept bool (not perturbed)."""
        kw = {k: (np.float64 if k == "dtype" and v is not None and np.dtype(v) == np.float32 else v)
              for k, v in self.kwargs.items()}
        return Case(self.shapes, [COND if d.condition else d for d in self.domains], kw, self.call)

    def invoke(self, fn, arrays):
        if self.call is not None:
            return self.call(fn, *arrays, **self.kwargs)
        return fn(*arrays, **self.kwargs)


@dataclass
class OpSpec:
    name: str                   # attribute of tracegrad.numpy
    kind: str                   # unary binary reduction product shape scan creation static
    np_fn: Callable             # the NumPy reference
    draw: Callable              # draw(data, min_side=0) -> Case; gradient tests ask min_side=1
                                # (no size-0 axes, and non-degenerate groups for var/std)
    grad: bool = True           # differentiable (else: "no grad", gradient is zero)
    dtypes: tuple = ALL_DTYPES  # dtypes to sweep (NumPy decides which it accepts)
    float_out: bool = True      # output is float for float input (no-grad tests use it)
    check: Callable | None = None   # check(got, want, arrays, case) where NumPy's result is one of
                                    # several valid ones (partition); default: equal to NumPy's
    grad_call: Callable | None = None   # grad_call(fn, *arrays, **kwargs): what derivative checks
                                        # differentiate (default: fn itself)

    def grad_fn(self, case):
        """`f(*arrays)` for derivative checks (through `grad_call` if there is one)."""
        if self.grad_call is None:
            return lambda *a: case.invoke(self.tnp_fn, a)
        return lambda *a: case.invoke(lambda *xs, **kw: self.grad_call(self.tnp_fn, *xs, **kw), a)

    @property
    def tnp_fn(self):
        return getattr(tnp, self.name)

    def __repr__(self):
        return self.name


# ---------------------------------------------------------------- shape strategies

def shapes(min_dims=0, max_dims=3, min_side=0, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_pair(data, min_side=0, num=2):
    r = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=num, min_dims=0, max_dims=3,
                                                   min_side=min_side, max_side=3))
    return list(r.input_shapes)


def _unary(domain):
    def draw(data, min_side=0):
        return Case([data.draw(shapes(min_side=min_side))], [domain])
    return draw


def _binary(dx, dy):
    def draw(data, min_side=0):
        return Case(broadcast_pair(data, min_side), [dx, dy])
    return draw


def unary(name, domain=REAL, grad=True, np_name=None, float_out=True, dtypes=ALL_DTYPES):
    return OpSpec(name, "unary", getattr(np, np_name or name), _unary(domain), grad, dtypes,
                  float_out)


def binary(name, dx=REAL, dy=REAL, grad=True, float_out=True, dtypes=ALL_DTYPES):
    return OpSpec(name, "binary", getattr(np, name), _binary(dx, dy), grad, dtypes, float_out)


def with_kwargs(draw_case, kw_strategy):
    def draw(data, min_side=0):
        case = draw_case(data, min_side)
        case.kwargs.update(data.draw(kw_strategy))
        return case
    return draw


# ---------------------------------------------------------------- reductions

def draw_axis(data, ndim, allow_tuple=True, allow_none=True):
    choices = []
    if allow_none:
        choices.append(st.none())
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            choices.append(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).flatmap(
                lambda axes: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axes])))
    return data.draw(st.one_of(*choices)) if choices else None


def reduced_size(shape, axis):
    if axis is None:
        axes = range(len(shape))
    else:
        axes = [a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)]
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _reduction(domain, allow_tuple=True, extra=None, min_group=1):
    def draw(data, min_side=0):
        shape = data.draw(shapes(min_side=builtins.max(min_side, 0)))
        axis = draw_axis(data, len(shape), allow_tuple)
        if min_side and reduced_size(shape, axis) < min_group:
            # gradient cases: enlarge the reduced axes so each group has `min_group` elements
            shape = tuple(builtins.max(d, min_group) for d in shape) or (min_group,)
            if axis == ():
                axis = None
        kw = {"axis": axis, "keepdims": data.draw(st.booleans())}
        if extra is not None:
            kw.update(data.draw(extra(min_side)))
        return Case([shape], [domain], kw)
    return draw


def reduction(name, domain=REAL, grad=True, allow_tuple=True, extra=None, min_group=1,
              float_out=True, dtypes=ALL_DTYPES):
    return OpSpec(name, "reduction", getattr(np, name),
                  _reduction(domain, allow_tuple, extra, min_group), grad, dtypes, float_out)


def _dtype_kw(min_side):
    return st.sampled_from([{}, {"dtype": np.float64}, {"dtype": np.float32}])


def _sum_kw(min_side):
    return st.one_of(_dtype_kw(min_side), st.sampled_from([{"initial": 0.5}, {"initial": 2}]))


def _initial_kw(far):
    # `far` never wins (the gradient reaches the array); 0.1234 wins sometimes
    return lambda min_side: st.sampled_from([{}, {"initial": far}, {"initial": 0.1234}])


def _draw_var(domain, spread):
    # var/std: ddof 0, 1 or 2 (also more than the group size: NumPy divides by max(n - ddof, 0));
    # a gradient case has more than ddof elements per group (and std a nonzero spread)
    def draw(data, min_side=0):
        ddof = data.draw(st.sampled_from([0, 1, 2]))
        case = _reduction(domain, min_group=ddof + spread if min_side else 1)(data, min_side)
        case.kwargs["ddof"] = ddof
        return case
    return draw


def _draw_average(data, min_side=0):
    shape = data.draw(shapes(min_side=builtins.max(min_side, 1)))
    mode = data.draw(st.sampled_from(["none", "full", "axis"]))
    keepdims = data.draw(st.booleans())
    returned = data.draw(st.booleans())
    if mode == "none":
        axis = draw_axis(data, len(shape))
        return Case([shape], [REAL], {"axis": axis, "keepdims": keepdims, "returned": returned})
    if mode == "axis" and shape:
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        wshape = (shape[axis],)
    else:
        axis = draw_axis(data, len(shape))
        wshape = shape
    return Case([shape, wshape], [REAL, WEIGHTS],
                {"axis": axis, "keepdims": keepdims, "returned": returned},
                call=lambda fn, a, w, **kw: fn(a, weights=w, **kw))


# ---------------------------------------------------------------- products

def _draw_matmul(data, min_side=0):
    lo = builtins.max(min_side, 0)
    m, n, p = (data.draw(st.integers(lo, 3)) for _ in range(3))
    a_vec, b_vec = data.draw(st.booleans()), data.draw(st.booleans())
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                        min_side=lo, max_side=3)).input_shapes
    sa = (n,) if a_vec else tuple(batch[0]) + (m, n)
    sb = (n,) if b_vec else tuple(batch[1]) + (n, p)
    return Case([sa, sb], [REAL, REAL])


def _draw_dot(data, min_side=0):
    lo = builtins.max(min_side, 0)
    kind = data.draw(st.sampled_from(["scalar", "vec", "nd"]))
    if kind == "scalar":
        s = data.draw(shapes(min_side=lo, max_dims=2))
        pair = [(), s] if data.draw(st.booleans()) else [s, ()]
        return Case(pair, [REAL, REAL])
    n = data.draw(st.integers(lo, 3))
    lead = data.draw(shapes(max_dims=2, min_side=lo, max_side=3))
    if kind == "vec":
        return Case([lead + (n,), (n,)], [REAL, REAL])
    b_lead = data.draw(shapes(max_dims=1, min_side=lo, max_side=3))
    p = data.draw(st.integers(lo, 3))
    return Case([lead + (n,), b_lead + (n, p)], [REAL, REAL])


def _draw_inner(data, min_side=0):
    lo = builtins.max(min_side, 0)
    if data.draw(st.integers(0, 4)) == 0:
        return Case([(), data.draw(shapes(min_side=lo, max_dims=2))], [REAL, REAL])
    n = data.draw(st.integers(lo, 3))
    return Case([data.draw(shapes(max_dims=2, min_side=lo, max_side=3)) + (n,),
                 data.draw(shapes(max_dims=2, min_side=lo, max_side=3)) + (n,)], [REAL, REAL])


def _draw_outer(data, min_side=0):
    return Case([data.draw(shapes(min_side=min_side, max_dims=2)),
                 data.draw(shapes(min_side=min_side, max_dims=2))], [REAL, REAL])


def _draw_vdot(data, min_side=0):
    s = data.draw(shapes(min_side=min_side))
    n = int(np.prod(s, dtype=np.int64))
    other = data.draw(st.sampled_from([s, (n,), s[::-1]]))
    return Case([s, other], [REAL, REAL])


# ---------------------------------------------------------------- shape manipulation

def _one(shape_st, kw_fn=None, domain=REAL, call=None):
    """A one-array case: shape from `shape_st`, kwargs from `kw_fn(data, shape)`."""
    def draw(data, min_side=0):
        shape = data.draw(shape_st(min_side))
        kw = kw_fn(data, shape) if kw_fn else {}
        return Case([shape], [domain], kw, call)
    return draw


def _any_shape(min_side):
    return shapes(min_side=min_side)


def _reshape_kw(data, shape):
    n = int(np.prod(shape, dtype=np.int64))
    divisors = [d for d in range(1, n + 1) if n % d == 0] or [0]
    a = data.draw(st.sampled_from(divisors))
    target = data.draw(st.sampled_from(
        [(n,), (a, n // a if a else 0), (a, -1) if a else (0, 1), (-1,), (1, n, 1), ()
         if n == 1 else (n,)]))
    return {"shape": target}


def _transpose_kw(data, shape):
    if data.draw(st.booleans()) or not shape:
        return {}
    perm = data.draw(st.permutations(range(len(shape))))
    return {"axes": tuple(p - len(shape) if data.draw(st.booleans()) else p for p in perm)}


def _two_axes(names):
    def kw(data, shape):
        nd = len(shape)
        return {n: data.draw(st.integers(-nd, nd - 1)) for n in names}
    return kw


def _moveaxis_kw(data, shape):
    nd = len(shape)
    k = data.draw(st.integers(1, nd))
    src = data.draw(st.lists(st.integers(0, nd - 1), min_size=k, max_size=k, unique=True))
    dst = data.draw(st.lists(st.integers(0, nd - 1), min_size=k, max_size=k, unique=True))
    if k == 1 and data.draw(st.booleans()):
        return {"source": src[0] - nd, "destination": dst[0]}
    return {"source": tuple(src), "destination": tuple(dst)}


def _expand_kw(data, shape):
    nd = len(shape)
    k = data.draw(st.integers(1, 2))
    axes = data.draw(st.lists(st.integers(-(nd + k), nd + k - 1), min_size=k, max_size=k,
                              unique_by=lambda a: a % (nd + k)))
    return {"axis": axes[0] if k == 1 else tuple(axes)}


def _squeeze_shape(min_side):
    return st.lists(st.sampled_from([1, 1, 2, 3] if min_side else [0, 1, 1, 2, 3]),
                    max_size=4).map(tuple)


def _squeeze_kw(data, shape):
    ones = [i for i, d in enumerate(shape) if d == 1]
    mode = data.draw(st.sampled_from(["none", "some"]))
    if mode == "none" or not ones:
        return {}
    axes = data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True))
    return {"axis": axes[0] - len(shape) if len(axes) == 1 else tuple(axes)}


def _draw_broadcast_to(data, min_side=0):
    r = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=3,
                                                   min_side=min_side, max_side=3))
    return Case([r.input_shapes[0]], [REAL], {"shape": r.result_shape})


def _draw_atleast(data, min_side=0):
    k = data.draw(st.integers(1, 3))
    ss = [data.draw(shapes(min_side=min_side, max_dims=4)) for _ in range(k)]
    return Case(ss, [REAL] * k, call=lambda fn, *xs: fn(*xs))


def _same_but(data, min_side, nd_min=1, vary_axis=True):
    """Shapes equal except along one axis (for concatenate and friends)."""
    base = list(data.draw(shapes(min_dims=nd_min, min_side=min_side, max_side=3)))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    k = data.draw(st.integers(1, 3))
    out = []
    for _ in range(k):
        s = list(base)
        if vary_axis:
            s[axis] = data.draw(st.integers(min_side, 3))
        out.append(tuple(s))
    return out, axis


def _draw_concatenate(data, min_side=0):
    if data.draw(st.integers(0, 4)) == 0:
        ss = [data.draw(shapes(min_side=min_side)) for _ in range(data.draw(st.integers(1, 3)))]
        return Case(ss, [REAL] * len(ss), {"axis": None}, call=lambda fn, *xs, **kw: fn(xs, **kw))
    ss, axis = _same_but(data, min_side)
    return Case(ss, [REAL] * len(ss), {"axis": axis}, call=lambda fn, *xs, **kw: fn(list(xs), **kw))


def _draw_stack(data, min_side=0):
    s = data.draw(shapes(min_side=min_side))
    k = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(-len(s) - 1, len(s)))
    return Case([s] * k, [REAL] * k, {"axis": axis}, call=lambda fn, *xs, **kw: fn(xs, **kw))


def _draw_hstack(data, min_side=0):
    if data.draw(st.booleans()):
        ss = [(data.draw(st.integers(min_side, 3)),) for _ in range(data.draw(st.integers(1, 3)))]
        if data.draw(st.booleans()):
            ss[0] = ()
        if ss[0] == ():
            ss = [()] * len(ss)
    else:
        ss, _ = _same_but(data, min_side, nd_min=2)
        # hstack joins along axis 1
        base = list(ss[0])
        ss = [tuple(base[:1] + [s[1]] + base[2:]) for s in ss]
    return Case(ss, [REAL] * len(ss), call=lambda fn, *xs: fn(xs))


def _draw_vstack(data, min_side=0):
    if data.draw(st.booleans()):
        n = data.draw(st.integers(min_side, 3))
        ss = [(n,)] * data.draw(st.integers(1, 3))
    else:
        ss, _ = _same_but(data, min_side, nd_min=2)
        base = list(ss[0])
        ss = [tuple([s[0]] + base[1:]) for s in ss]
    return Case(ss, [REAL] * len(ss), call=lambda fn, *xs: fn(xs))


def _draw_column_stack(data, min_side=0):
    n = data.draw(st.integers(min_side, 3))
    k = data.draw(st.integers(1, 3))
    ss = [data.draw(st.sampled_from([(n,), (n, 1), (n, 2)])) for _ in range(k)]
    return Case(ss, [REAL] * k, call=lambda fn, *xs: fn(xs))


def _flip_kw(data, shape):
    return {"axis": draw_axis(data, len(shape))}


def _min_dims(k):
    return lambda min_side: shapes(min_dims=k, min_side=min_side)


def _draw_where(data, min_side=0):
    # the condition is a bool array, or (as NumPy allows) any array: nonzero means True
    cond = data.draw(st.sampled_from([COND, COND, ANY_COND]))
    return Case(broadcast_pair(data, min_side, num=3), [cond, REAL, REAL])


def _draw_clip(data, min_side=0):
    sa, slo, shi = broadcast_pair(data, min_side, num=3)
    mode = data.draw(st.sampled_from(["both", "lo", "hi", "scalars", "kw"]))
    if mode == "lo":
        return Case([sa, slo], [KINK_A, KINK_B], call=lambda fn, a, lo: fn(a, lo, None))
    if mode == "hi":
        return Case([sa, shi], [KINK_A, KINK_B], call=lambda fn, a, hi: fn(a, None, hi))
    if mode == "scalars":
        return Case([sa], [KINK_A], call=lambda fn, a: fn(a, -1.5, 1))
    if mode == "kw":
        return Case([sa, slo, shi], [KINK_A, KINK_B, KINK_B],
                    call=lambda fn, a, lo, hi: fn(a, min=lo, max=hi))
    return Case([sa, slo, shi], [KINK_A, KINK_B, KINK_B])


def _round_kw(data, shape):
    return {"decimals": data.draw(st.sampled_from([0, 1, 2, -1]))}


# ---------------------------------------------------------------- creation

def _draw_like(data, min_side=0):
    return Case([data.draw(shapes(min_side=min_side))], [REAL],
                data.draw(st.sampled_from([{}, {"dtype": np.float32}, {"dtype": np.int32},
                                           {"shape": (2, 3)}])))


def _draw_full_like(data, min_side=0):
    case = _draw_like(data, min_side)
    case.kwargs["fill_value"] = data.draw(st.sampled_from([0.5, 2, -1.25, True]))
    return case


def _draw_full(data, min_side=0):
    shape = data.draw(shapes(min_side=min_side))
    kw = data.draw(st.sampled_from([{}, {"dtype": np.float64}, {"dtype": np.float32}]))
    return Case([()], [REAL], kw, call=lambda fn, v, **k: fn(shape, v, **k))


def _draw_asarray(data, min_side=0):
    s = data.draw(shapes(min_side=min_side, max_dims=2))
    mode = data.draw(st.sampled_from(["one", "list", "nested", "dtype"]))
    if mode == "one":
        return Case([s], [REAL])
    if mode == "dtype":
        return Case([s], [REAL], {"dtype": data.draw(st.sampled_from([np.float32, np.float64]))})
    k = data.draw(st.integers(1, 3))
    if mode == "list":
        return Case([s] * k, [REAL] * k, call=lambda fn, *xs, **kw: fn(list(xs), **kw))
    return Case([s] * (2 * k), [REAL] * (2 * k),
                call=lambda fn, *xs, **kw: fn([list(xs[:k]), list(xs[k:])], **kw))


def _draw_array(data, min_side=0):
    case = _draw_asarray(data, min_side)
    if case.call is None and data.draw(st.booleans()):
        case.kwargs["ndmin"] = data.draw(st.integers(0, 4))
    return case


def _draw_static(data, min_side=0):
    return Case([data.draw(shapes(min_side=min_side))], [REAL])


# ---------------------------------------------------------------- beyond tier 1 (scans, sorting, splits...)

def _draw_scan(domain):
    def draw(data, min_side=0):
        shape = data.draw(shapes(min_side=min_side))
        axis = draw_axis(data, len(shape), allow_tuple=False)
        kw = {"axis": axis}
        kw.update(data.draw(st.sampled_from([{}, {}, {"dtype": np.float64}, {"dtype": np.float32}])))
        return Case([shape], [domain], kw)
    return draw


def _draw_sort(domain, kth=False):
    def draw(data, min_side=0):
        shape = data.draw(shapes(min_dims=1, min_side=builtins.max(min_side, 1)))
        axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
        kw = {"axis": axis}
        if not kth:
            kw.update(data.draw(st.sampled_from([{}, {"kind": "stable"}, {"stable": True}])))
        if kth:
            n = int(np.prod(shape)) if axis is None else shape[axis]
            ks = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=2,
                                    unique_by=lambda k: k % n))
            kw["kth"] = ks[0] if len(ks) == 1 else ks
        return Case([shape], [domain], kw)
    return draw


def _draw_split(fixed_axis=None, min_dims=1, equal=False):
    def draw(data, min_side=0):
        shape = list(data.draw(shapes(min_dims=min_dims, min_side=min_side)))
        axis = fixed_axis if fixed_axis is not None else data.draw(
            st.integers(-len(shape), len(shape) - 1))
        # (hsplit of a 1-D array splits along axis 0)
        n = shape[0 if fixed_axis == 1 and len(shape) == 1 else axis]
        if data.draw(st.booleans()):
            if equal:
                k = data.draw(st.sampled_from([d for d in range(1, 5) if n % d == 0] or [1]))
            else:
                k = data.draw(st.integers(1, 4))
            ios = k
        else:
            # split points, negative, out of range or decreasing too (empty pieces)
            ios = data.draw(st.lists(st.integers(-n - 1, n + 1), max_size=3))
            if data.draw(st.booleans()):
                ios = tuple(ios)
        kw = {"indices_or_sections": ios}
        if fixed_axis is None:
            kw["axis"] = axis
        return Case([tuple(shape)], [REAL], kw)
    return draw


def _draw_tile(data, min_side=0):
    shape = data.draw(shapes(min_side=min_side, max_dims=2))
    reps = data.draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 2), max_size=3).map(tuple)))
    return Case([shape], [REAL], {"reps": reps})


def _draw_repeat(data, min_side=0):
    shape = data.draw(shapes(min_side=min_side, max_dims=3))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))) if shape else None
    n = int(np.prod(shape)) if axis is None else shape[axis]
    repeats = data.draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=n,
                                                              max_size=n)))
    return Case([shape], [REAL], {"repeats": repeats, "axis": axis})


def _draw_roll(data, min_side=0):
    shape = data.draw(shapes(min_side=min_side))
    if shape and data.draw(st.booleans()):
        k = data.draw(st.integers(1, 2))
        axis = tuple(data.draw(st.integers(-len(shape), len(shape) - 1)) for _ in range(k))
        shift = tuple(data.draw(st.integers(-5, 5)) for _ in range(k))
        if k == 1 and data.draw(st.booleans()):
            axis, shift = axis[0], shift[0]
        elif data.draw(st.booleans()):
            shift = shift[0]     # one shift for several axes
        return Case([shape], [REAL], {"shift": shift, "axis": axis})
    return Case([shape], [REAL], {"shift": data.draw(st.integers(-7, 7))})


def _draw_rot90(data, min_side=0):
    shape = data.draw(shapes(min_dims=2, min_side=min_side))
    nd = len(shape)
    a, b = data.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True))
    return Case([shape], [REAL], {"k": data.draw(st.integers(-3, 5)), "axes": (a - nd, b)})


def _draw_rollaxis(data, min_side=0):
    shape = data.draw(shapes(min_dims=1, min_side=min_side))
    nd = len(shape)
    return Case([shape], [REAL], {"axis": data.draw(st.integers(-nd, nd - 1)),
                                  "start": data.draw(st.integers(-nd, nd))})


def _draw_append(data, min_side=0):
    if data.draw(st.booleans()):
        return Case([data.draw(shapes(min_side=min_side)), data.draw(shapes(min_side=min_side))],
                    [REAL, REAL], {"axis": None})
    ss, axis = _same_but(data, min_side)
    return Case(ss[:1] + [ss[-1]], [REAL, REAL], {"axis": axis})


def _draw_pad(data, min_side=0):
    shape = data.draw(shapes(min_side=min_side, max_dims=3))
    nd = len(shape)
    width = data.draw(st.one_of(
        st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=nd, max_size=nd).map(tuple)))
    mode = data.draw(st.sampled_from(["none", "scalar", "pair", "traced"]))
    if mode == "traced":
        return Case([shape, ()], [REAL, REAL], {"pad_width": width},
                    call=lambda fn, a, v, **kw: fn(a, constant_values=v, **kw))
    kw = {"pad_width": width}
    if mode == "scalar":
        kw["constant_values"] = 1.5
    elif mode == "pair":
        kw["constant_values"] = (-1, 2)
    return Case([shape], [REAL], kw)


def _draw_diff(data, min_side=0):
    shape = data.draw(shapes(min_dims=1, min_side=min_side))
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    kw = {"n": data.draw(st.integers(0, 3)), "axis": axis}
    mode = data.draw(st.sampled_from(["none", "prepend", "append"]))
    if mode == "none":
        return Case([shape], [REAL], kw)
    edge = list(shape)
    edge[axis] = data.draw(st.integers(1, 2))
    eshape = data.draw(st.sampled_from([(), tuple(edge)]))
    return Case([shape, eshape], [REAL, REAL], kw,
                call=lambda fn, a, e, **k: fn(a, **{mode: e}, **k))


def _draw_ediff1d(data, min_side=0):
    shape = data.draw(shapes(min_side=min_side))
    mode = data.draw(st.sampled_from(["none", "end", "begin", "both"]))
    if mode == "none":
        return Case([shape], [REAL])
    extra = [data.draw(shapes(max_dims=1, min_side=min_side))] * (2 if mode == "both" else 1)
    if mode == "end":
        call = lambda fn, a, e: fn(a, to_end=e)
    elif mode == "begin":
        call = lambda fn, a, b: fn(a, to_begin=b)
    else:
        call = lambda fn, a, e, b: fn(a, to_end=e, to_begin=b)
    return Case([shape] + extra, [REAL] * (1 + len(extra)), call=call)


def _draw_cross(data, min_side=0):
    la, lb = broadcast_pair(data, builtins.max(min_side, 1))
    na, nb = data.draw(st.sampled_from([(3, 3), (3, 3), (2, 3), (3, 2), (2, 2)]))
    sa, sb = tuple(la) + (na,), tuple(lb) + (nb,)
    if data.draw(st.booleans()) and len(sa) >= 2 and len(sb) >= 2 and na == nb:
        # vectors along axis 0 (axisa/axisb), result along axisc
        sa, sb = (na,) + sa[:-1], (nb,) + sb[:-1]
        return Case([sa, sb], [REAL, REAL], {"axisa": 0, "axisb": 0, "axisc": 0 if na == 3 else -1})
    return Case([sa, sb], [REAL, REAL])


def _draw_select(data, min_side=0):
    k = data.draw(st.integers(1, 3))
    ss = broadcast_pair(data, min_side, num=2 * k)
    default = data.draw(st.sampled_from([0, 1.5, "array"]))
    doms = [COND] * k + [REAL] * k
    if default == "array":
        ss.append(data.draw(st.sampled_from([(), ss[-1]])))
        doms.append(REAL)
        call = lambda fn, *xs: fn(list(xs[:k]), list(xs[k:2 * k]), default=xs[-1])
    else:
        call = lambda fn, *xs: fn(list(xs[:k]), list(xs[k:]), default=default)
    return Case(ss, doms, call=call)


def _draw_linspace(data, min_side=0):
    a, b = broadcast_pair(data, min_side)
    # (gradient cases: at least 2 samples, or the step is an undefined nan)
    num = data.draw(st.integers(2 if min_side else 0, 5))
    kw = {"num": num, "endpoint": data.draw(st.booleans())}
    nd = 1 + len(np.broadcast_shapes(a, b))
    if data.draw(st.booleans()):
        kw["axis"] = data.draw(st.integers(-nd, nd - 1))
    if data.draw(st.integers(0, 3)) == 0:
        kw["retstep"] = True
    if data.draw(st.integers(0, 3)) == 0:
        kw["dtype"] = data.draw(st.sampled_from([np.float32, np.int64]))
    return Case([a, b], [REAL, REAL], kw)


def _draw_take(data, min_side=0):
    shape = data.draw(shapes(min_side=builtins.max(min_side, 1)))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))) if shape else None
    n = int(np.prod(shape)) if axis is None else shape[axis]
    idx = np.asarray(data.draw(st.lists(st.integers(-n, n - 1), max_size=4)), dtype=np.int64)
    if data.draw(st.booleans()):
        idx = idx.reshape(-1, 1) if idx.size else idx
    return Case([shape], [REAL], {"indices": idx, "axis": axis})


def _draw_take_along_axis(data, min_side=0):
    shape = data.draw(shapes(min_dims=1, min_side=builtins.max(min_side, 1)))
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    ishape = list(shape)
    ishape[axis] = data.draw(st.integers(0, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    idx = rng.integers(-shape[axis], shape[axis], ishape)
    return Case([shape], [REAL], {"indices": idx, "axis": axis})


def _draw_einsum(data, min_side=0):
    n = builtins.max(min_side, 1)
    i, j, k = (data.draw(st.integers(n, 3)) for _ in range(3))
    spec, ss = data.draw(st.sampled_from([
        ("ij,jk->ik", [(i, j), (j, k)]), ("ij,jk", [(i, j), (j, k)]), ("ii->i", [(i, i)]),
        ("ii", [(i, i)]), ("ij->", [(i, j)]), ("ij->ji", [(i, j)]), ("i,i->", [(i,), (i,)]),
        ("i,j->ij", [(i,), (j,)]), ("...ij,...jk->...ik", [(2, i, j), (2, j, k)]),
        ("bij,bjk->bik", [(2, i, j), (2, j, k)]), ("ij,ij->i", [(i, j), (i, j)]),
        ("i,ij,j", [(i,), (i, j), (j,)]), ("ijk->kij", [(i, j, k)])]))
    return Case(ss, [REAL] * len(ss), call=lambda fn, *xs: fn(spec, *xs))


def _draw_kron(data, min_side=0):
    return Case([data.draw(shapes(min_side=min_side, max_dims=2, max_side=3)),
                 data.draw(shapes(min_side=min_side, max_dims=2, max_side=3))], [REAL, REAL])


def _draw_tensordot(data, min_side=0):
    n = builtins.max(min_side, 0)
    i, j, k, l = (data.draw(st.integers(n, 3)) for _ in range(4))
    ss, axes = data.draw(st.sampled_from([
        ([(i, j, k), (j, k, l)], 2), ([(i, j), (j, k)], 1), ([(i,), (j,)], 0),
        ([(i, j, k), (k, l, j)], ((1, 2), (2, 0))), ([(i, j), (i, j)], ([0, 1], [0, 1])),
        ([(i, j), (k, i)], (0, 1))]))
    return Case(ss, [REAL, REAL], {"axes": axes})


def _draw_diagonal_like(with_axes):
    def draw(data, min_side=0):
        shape = data.draw(shapes(min_dims=2, min_side=min_side))
        kw = {"offset": data.draw(st.integers(-3, 3))}
        if with_axes:
            nd = len(shape)
            a, b = data.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True))
            kw.update(axis1=a, axis2=b - nd)
        return Case([shape], [REAL], kw)
    return draw


def _draw_diag(data, min_side=0):
    shape = data.draw(shapes(min_dims=1, max_dims=2, min_side=min_side))
    return Case([shape], [REAL], {"k": data.draw(st.integers(-3, 3))})


def _draw_diagflat(data, min_side=0):
    return Case([data.draw(shapes(max_dims=2, min_side=min_side))], [REAL],
                {"k": data.draw(st.integers(-2, 2))})


def _draw_tri(data, min_side=0):
    return Case([data.draw(shapes(min_dims=2, min_side=min_side))], [REAL],
                {"k": data.draw(st.integers(-3, 3))})


def _valid_partition(values, x, kth, axis):
    """`values` is a valid partition of `x` at `kth` along `axis` (NumPy leaves the sides'
    order unspecified, so the traced result is compared by property, not elementwise)."""
    if axis is None:
        x, axis = x.reshape(-1), 0
    srt = np.sort(x, axis=axis)
    np.testing.assert_array_equal(np.sort(values, axis=axis), srt)
    n = x.shape[axis]
    for k in np.atleast_1d(kth):
        k = int(k) % n
        pivot = np.take(values, [k], axis=axis)
        np.testing.assert_array_equal(pivot, np.take(srt, [k], axis=axis))
        assert (np.take(values, range(k), axis=axis) <= pivot).all()
        assert (np.take(values, range(k + 1, n), axis=axis) >= pivot).all()


def _check_argsort(got, want, arrays, case):
    """NumPy's default sort is not stable: ties may come in any order unless a stable sort is
    asked for (then the indices are exactly NumPy's)."""
    if case.kwargs.get("kind") == "stable" or case.kwargs.get("stable"):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
        return
    x, axis = arrays[0], case.kwargs.get("axis", -1)
    if axis is None:
        x, axis = x.reshape(-1), 0
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.take_along_axis(x, got, axis=axis), np.sort(x, axis=axis))
    np.testing.assert_array_equal(np.sort(got, axis=axis), np.sort(want, axis=axis))


def _sorted_partition(fn, a, kth, axis=-1):
    """partition, made canonical for derivative checks (finite differences run NumPy's own
    partition, whose order within each side differs): sorted along the axis."""
    return tnp.sort(fn(a, kth, axis=axis), axis=axis)


def _check_partition(got, want, arrays, case):
    _valid_partition(got, arrays[0], case.kwargs["kth"], case.kwargs.get("axis", -1))


def _check_argpartition(got, want, arrays, case):
    x, axis = arrays[0], case.kwargs.get("axis", -1)
    if axis is None:
        x, axis = x.reshape(-1), 0
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.sort(got, axis=axis),
                                  np.broadcast_to(np.arange(x.shape[axis]).reshape(
                                      [-1 if i == axis % x.ndim else 1 for i in range(x.ndim)]),
                                      x.shape))
    _valid_partition(np.take_along_axis(x, got, axis=axis), x, case.kwargs["kth"], axis)


# ---------------------------------------------------------------- the table

SPECS = [
    # one input, differentiable
    unary("negative"), unary("positive"), unary("abs", NONZERO), unary("absolute", NONZERO),
    unary("fabs", NONZERO), unary("exp"), unary("exp2"), unary("expm1"), unary("log", POS),
    unary("log2", POS), unary("log10", POS), unary("log1p", Domain("(-1,inf)", _uniform(-0.8, 3),
                                                                   ints=(0, 4))),
    unary("sqrt", POS), unary("cbrt", NONZERO), unary("square"), unary("reciprocal", NONZERO),
    unary("sin"), unary("cos"), unary("tan", TAN), unary("arcsin", UNIT), unary("arccos", UNIT),
    unary("arctan"), unary("sinh"), unary("cosh"), unary("tanh"), unary("arcsinh"),
    unary("arccosh", GT1), unary("arctanh", UNIT), unary("deg2rad"), unary("rad2deg"),
    unary("degrees"), unary("radians"), unary("sinc"),
    unary("real"), unary("imag"), unary("conj"), unary("conjugate"),
    OpSpec("nan_to_num", "unary", np.nan_to_num, with_kwargs(_unary(REAL), st.sampled_from(
        [{}, {"nan": 1.5}, {"posinf": 7.0, "neginf": -7.0}, {"nan": -1.0, "posinf": 2.0}]))),
    OpSpec("clip", "unary", np.clip, _draw_clip),
    # one input, no grad
    unary("sign", NONZERO, grad=False), unary("floor", grad=False), unary("ceil", grad=False),
    unary("rint", grad=False), unary("trunc", grad=False),
    OpSpec("round", "unary", np.round, _one(_any_shape, _round_kw), grad=False),
    OpSpec("around", "unary", np.round, _one(_any_shape, _round_kw), grad=False),
    unary("isnan", grad=False, float_out=False), unary("isinf", grad=False, float_out=False),
    unary("isfinite", grad=False, float_out=False), unary("signbit", grad=False, float_out=False),
    unary("logical_not", grad=False, float_out=False),
    unary("invert", grad=False, float_out=False),
    # two inputs, differentiable
    binary("add"), binary("subtract"), binary("multiply"), binary("divide", REAL, NONZERO),
    binary("true_divide", REAL, NONZERO), binary("power", POS, POW_EXP),
    binary("float_power", POS, POW_EXP), binary("maximum", KINK_A, KINK_B),
    binary("minimum", KINK_A, KINK_B), binary("fmax", KINK_A, KINK_B),
    binary("fmin", KINK_A, KINK_B), binary("arctan2", NONZERO, NONZERO),
    binary("hypot", NONZERO, NONZERO), binary("logaddexp"), binary("logaddexp2"),
    binary("mod", MOD_X, MOD_Y), binary("remainder", MOD_X, MOD_Y), binary("fmod", MOD_X, MOD_Y),
    binary("divmod", MOD_X, MOD_Y),
    OpSpec("where", "binary", np.where, _draw_where),
    # two inputs, no grad
    binary("floor_divide", REAL, NONZERO, grad=False),
    *[binary(n, TIES, TIES, grad=False, float_out=False) for n in (
        "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
        "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
        "isclose", "allclose")],
    # reductions
    reduction("sum", extra=_sum_kw), reduction("mean", extra=_dtype_kw),
    reduction("prod", PROD, extra=_sum_kw),
    reduction("max", DISTINCT, extra=_initial_kw(-100.0)),
    reduction("min", DISTINCT, extra=_initial_kw(100.0)),
    reduction("amax", DISTINCT, extra=_initial_kw(-100.0)),
    reduction("amin", DISTINCT, extra=_initial_kw(100.0)), reduction("ptp", DISTINCT),
    OpSpec("var", "reduction", np.var, _draw_var(REAL, spread=1)),
    OpSpec("std", "reduction", np.std, _draw_var(REAL, spread=2)),
    reduction("argmax", TIES, grad=False, allow_tuple=False, float_out=False),
    reduction("argmin", TIES, grad=False, allow_tuple=False, float_out=False),
    reduction("all", TIES, grad=False, float_out=False),
    reduction("any", TIES, grad=False, float_out=False),
    OpSpec("average", "reduction", np.average, _draw_average),
    # products
    OpSpec("matmul", "product", np.matmul, _draw_matmul),
    OpSpec("dot", "product", np.dot, _draw_dot),
    OpSpec("inner", "product", np.inner, _draw_inner),
    OpSpec("outer", "product", np.outer, _draw_outer),
    OpSpec("vdot", "product", np.vdot, _draw_vdot),
    # shape manipulation
    OpSpec("reshape", "shape", np.reshape, _one(_any_shape, _reshape_kw)),
    OpSpec("ravel", "shape", np.ravel, _one(_any_shape)),
    OpSpec("transpose", "shape", np.transpose, _one(_any_shape, _transpose_kw)),
    OpSpec("swapaxes", "shape", np.swapaxes, _one(_min_dims(1), _two_axes(("axis1", "axis2")))),
    OpSpec("moveaxis", "shape", np.moveaxis, _one(_min_dims(1), _moveaxis_kw)),
    OpSpec("expand_dims", "shape", np.expand_dims, _one(_any_shape, _expand_kw)),
    OpSpec("squeeze", "shape", np.squeeze, _one(_squeeze_shape, _squeeze_kw)),
    OpSpec("broadcast_to", "shape", np.broadcast_to, _draw_broadcast_to),
    OpSpec("atleast_1d", "shape", np.atleast_1d, _draw_atleast),
    OpSpec("atleast_2d", "shape", np.atleast_2d, _draw_atleast),
    OpSpec("atleast_3d", "shape", np.atleast_3d, _draw_atleast),
    OpSpec("concatenate", "shape", np.concatenate, _draw_concatenate),
    OpSpec("stack", "shape", np.stack, _draw_stack),
    OpSpec("hstack", "shape", np.hstack, _draw_hstack),
    OpSpec("vstack", "shape", np.vstack, _draw_vstack),
    OpSpec("column_stack", "shape", np.column_stack, _draw_column_stack),
    OpSpec("flip", "shape", np.flip, _one(_any_shape, _flip_kw)),
    OpSpec("fliplr", "shape", np.fliplr, _one(_min_dims(2))),
    OpSpec("flipud", "shape", np.flipud, _one(_min_dims(1))),
    # creation from traced values
    OpSpec("zeros_like", "creation", np.zeros_like, _draw_like, float_out=False),
    OpSpec("ones_like", "creation", np.ones_like, _draw_like, float_out=False),
    OpSpec("empty_like", "creation", np.empty_like, _draw_like, float_out=False),
    OpSpec("full_like", "creation", np.full_like, _draw_full_like, float_out=False),
    OpSpec("full", "creation", np.full, _draw_full),
    OpSpec("asarray", "creation", np.asarray, _draw_asarray),
    OpSpec("array", "creation", np.array, _draw_array),
    OpSpec("copy", "creation", np.copy, _one(_any_shape)),
    # beyond tier 1: scans, sorting, splitting, rearranging, differences, contractions, indexing
    OpSpec("cumsum", "scan", np.cumsum, _draw_scan(REAL)),
    OpSpec("cumprod", "scan", np.cumprod, _draw_scan(PROD)),
    OpSpec("sort", "scan", np.sort, _draw_sort(DISTINCT)),
    OpSpec("argsort", "scan", np.argsort, _draw_sort(TIES), grad=False, float_out=False,
           check=_check_argsort),
    OpSpec("partition", "scan", np.partition, _draw_sort(DISTINCT, kth=True),
           check=_check_partition, grad_call=_sorted_partition),
    OpSpec("argpartition", "scan", np.argpartition, _draw_sort(DISTINCT, kth=True), grad=False,
           float_out=False, check=_check_argpartition),
    OpSpec("split", "shape", np.split, _draw_split(equal=True)),
    OpSpec("array_split", "shape", np.array_split, _draw_split()),
    OpSpec("hsplit", "shape", np.hsplit, _draw_split(fixed_axis=1, equal=True)),
    OpSpec("vsplit", "shape", np.vsplit, _draw_split(fixed_axis=0, min_dims=2, equal=True)),
    OpSpec("dsplit", "shape", np.dsplit, _draw_split(fixed_axis=2, min_dims=3, equal=True)),
    OpSpec("tile", "shape", np.tile, _draw_tile),
    OpSpec("repeat", "shape", np.repeat, _draw_repeat),
    OpSpec("roll", "shape", np.roll, _draw_roll),
    OpSpec("rot90", "shape", np.rot90, _draw_rot90),
    OpSpec("rollaxis", "shape", np.rollaxis, _draw_rollaxis),
    OpSpec("append", "shape", np.append, _draw_append),
    OpSpec("pad", "shape", np.pad, _draw_pad),
    OpSpec("diff", "shape", np.diff, _draw_diff),
    OpSpec("ediff1d", "shape", np.ediff1d, _draw_ediff1d),
    OpSpec("cross", "product", np.cross, _draw_cross),
    OpSpec("select", "shape", np.select, _draw_select),
    OpSpec("linspace", "creation", np.linspace, _draw_linspace),
    OpSpec("take", "shape", np.take, _draw_take),
    OpSpec("take_along_axis", "shape", np.take_along_axis, _draw_take_along_axis),
    OpSpec("einsum", "product", np.einsum, _draw_einsum),
    OpSpec("kron", "product", np.kron, _draw_kron),
    OpSpec("tensordot", "product", np.tensordot, _draw_tensordot),
    OpSpec("diagonal", "shape", np.diagonal, _draw_diagonal_like(True)),
    OpSpec("trace", "reduction", np.trace, _draw_diagonal_like(True)),
    OpSpec("diag", "shape", np.diag, _draw_diag),
    OpSpec("diagflat", "shape", np.diagflat, _draw_diagflat),
    OpSpec("tril", "shape", np.tril, _draw_tri),
    OpSpec("triu", "shape", np.triu, _draw_tri),
    # static queries (plain ints/tuples even on traced values)
    OpSpec("shape", "static", np.shape, _draw_static, grad=False),
    OpSpec("ndim", "static", np.ndim, _draw_static, grad=False),
    OpSpec("size", "static", np.size, _draw_static, grad=False),
]

BY_NAME = {s.name: s for s in SPECS}
assert len(BY_NAME) == len(SPECS), "duplicate rows in the op spec table"

# The *_like functions ignore their argument's values: they are constants with no gradient path.
for _n in ("zeros_like", "ones_like", "empty_like", "full_like"):
    BY_NAME[_n].grad = False

# Tier-1 names from COVERAGE.md (the core issue); every one must have a row.
TIER1 = """
negative positive abs sign exp exp2 expm1 log log2 log10 log1p sqrt cbrt square reciprocal sin cos
tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh deg2rad rad2deg sinc floor ceil rint
round trunc isnan isinf isfinite signbit nan_to_num clip real imag conj logical_not add subtract
multiply divide true_divide power float_power maximum minimum fmax fmin arctan2 hypot logaddexp
logaddexp2 mod remainder fmod floor_divide equal not_equal less less_equal greater greater_equal
logical_and logical_or logical_xor where sum mean prod max min amax amin var std ptp argmax argmin
all any average matmul dot outer inner vdot reshape ravel transpose swapaxes moveaxis expand_dims
squeeze broadcast_to atleast_1d atleast_2d atleast_3d concatenate stack hstack vstack column_stack
flip fliplr flipud zeros_like ones_like full_like
""".split()


def specs(*kinds, grad=None):
    return [s for s in SPECS if (not kinds or s.kind in kinds) and (grad is None or s.grad == grad)]
