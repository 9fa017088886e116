"""Operators and array methods of `Tracer`, so traced values behave like NumPy arrays."""
from __future__ import annotations

from ..errors import TracerError, user_source
from ..trace import PY_SCALARS, Tracer
from . import contractions, creation, cumulative, elementwise as ew, indexing, products
from . import rearranging, reductions as red, shapes, sorting
from .. import primitives as P
from ._dispatch import _strong, array_function, array_ufunc, direct, raise_with_line




def _python_arithmetic(out, *operands):
    """Python operators on Python scalars give Python scalars: a result whose operands are all
    Python scalars or weak tracers (traced Python-scalar arguments) stays weak, so that
    `f32_array * (s * 2)` is float32 as in NumPy, while `np.exp(s)` is a strong float64."""
    if all((isinstance(o, Tracer) and o.weak) or type(o) in PY_SCALARS for o in operands):
        if isinstance(out, Tracer):
            return Tracer(out.node, out.builder, out.value, True)
        if isinstance(out, tuple):
            return tuple(_python_arithmetic(o, *operands) for o in out)
    return out


def _binary(fn, prim=None):
    # The operator calls the implementation directly (its operand is a tracer: the NumPy fallback
    # and the re-marking of weak results of the wrapper are not needed), keeping the wrapper's
    # error messages; only a weak left operand can give a weak (Python-arithmetic) result. With
    # `prim`, float operands of one dtype bind it at once (_dispatch.direct).
    impl, name = fn._tracegrad_impl, fn.__name__

    def fwd(self, other):
        if prim is not None:
            out = direct(prim, (self, other))
            if out is not None:
                return out
        try:
            out = impl(self, other)
        except (ValueError, TypeError, IndexError) as e:
            raise_with_line(e, name)
        return _python_arithmetic(out, self, other) if self.weak else _strong(out)

    def rev(self, other):
        if prim is not None:
            out = direct(prim, (other, self))
            if out is not None:
                return out
        try:
            out = impl(other, self)
        except (ValueError, TypeError, IndexError) as e:
            raise_with_line(e, name)
        return _python_arithmetic(out, self, other) if self.weak else _strong(out)
    return fwd, rev


def _unary(fn):
    return lambda self: _python_arithmetic(fn(self), self)


def _setitem(self, key, value):
    # a TracerError (not Python's TypeError), so an implicitly compiled function falls back to
    # eager mode, where the array being modified may well be a NumPy array (e.g. a random sample)
    raise TracerError(
        f"x[...] = value on a traced value {self.aval} at {user_source(2)}: traced arrays cannot be "
        f"modified in place. Write x = tnp.at(x)[...].set(value) (or .add, .multiply), or run in "
        f"eager mode (tg.eager()).")


def _install():
    T = Tracer
    T.__setitem__ = _setitem
    pairs = {"add": ew.add, "sub": ew.subtract, "mul": ew.multiply, "truediv": ew.true_divide,
             "floordiv": ew.floor_divide, "mod": ew.remainder, "pow": ew.power,
             "matmul": products.matmul, "and": ew.bitwise_and, "or": ew.bitwise_or,
             "xor": ew.bitwise_xor}
    fast = {"add": P.add_p, "sub": P.sub_p, "mul": P.mul_p, "truediv": P.div_p}
    for name, fn in pairs.items():
        fwd, rev = _binary(fn, fast.get(name))
        setattr(T, f"__{name}__", fwd)
        setattr(T, f"__r{name}__", rev)
    for name, fn in {"lt": ew.less, "le": ew.less_equal, "gt": ew.greater, "ge": ew.greater_equal,
                     "eq": ew.equal, "ne": ew.not_equal}.items():
        setattr(T, f"__{name}__", _binary(fn)[0])
    T.__divmod__, T.__rdivmod__ = _binary(ew.divmod)
    T.__neg__ = _unary(ew.negative)
    T.__pos__ = _unary(ew.positive)
    T.__abs__ = _unary(ew.absolute)
    T.__invert__ = _unary(ew.invert)
    T.__getitem__ = indexing.getitem
    T.__array_ufunc__ = array_ufunc
    T.__array_function__ = array_function
    T.__iter__ = lambda self: (self[i] for i in range(len(self)))

    T.T = property(lambda self: shapes.transpose(self))
    T.mT = property(lambda self: shapes.swapaxes(self, -1, -2))
    T.reshape = lambda self, *shape, order="C": shapes.reshape(
        self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape, order)
    T.ravel = lambda self, order="C": shapes.ravel(self, order)
    T.flatten = lambda self, order="C": shapes.ravel(self, order)
    T.squeeze = lambda self, axis=None: shapes.squeeze(self, axis)
    T.transpose = lambda self, *axes: shapes.transpose(
        self, None if not axes else (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes))
    T.swapaxes = lambda self, a, b: shapes.swapaxes(self, a, b)
    T.astype = lambda self, dtype, copy=True, **kw: creation.asarray(self, dtype=dtype)
    T.copy = lambda self: self
    T.dot = lambda self, other: products.dot(self, other)
    T.clip = lambda self, min=None, max=None: ew.clip(self, min, max)
    T.round = lambda self, decimals=0: ew.round(self, decimals)
    T.conj = T.conjugate = lambda self: self
    T.real = property(lambda self: self)
    T.imag = property(lambda self: ew.imag(self))
    for name, fn in {"sum": red.sum, "prod": red.prod, "max": red.max, "min": red.min,
                     "mean": red.mean, "var": red.var, "std": red.std, "all": red.all,
                     "any": red.any, "argmax": red.argmax, "argmin": red.argmin}.items():
        setattr(T, name, lambda self, *a, fn=fn, **k: fn(self, *a, **k))
    T.cumsum = lambda self, axis=None, dtype=None, out=None: cumulative.cumsum(self, axis, dtype, out)
    T.cumprod = lambda self, axis=None, dtype=None, out=None: cumulative.cumprod(self, axis, dtype, out)
    T.argsort = lambda self, axis=-1, kind=None, order=None: sorting.argsort(self, axis, kind, order)
    T.repeat = lambda self, repeats, axis=None: rearranging.repeat(self, repeats, axis)
    T.take = lambda self, indices, axis=None, out=None, mode="raise": indexing.take(self, indices, axis, out, mode)
    T.diagonal = lambda self, offset=0, axis1=0, axis2=1: contractions.diagonal(self, offset, axis1, axis2)
    T.trace = lambda self, offset=0, axis1=0, axis2=1, dtype=None, out=None: \
        contractions.trace(self, offset, axis1, axis2, dtype, out)


_install()
