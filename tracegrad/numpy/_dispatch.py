"""How NumPy calls reach tracegrad: the function registry behind `__array_function__` and
`__array_ufunc__`, and the `numpy_function` decorator every `tracegrad.numpy` function uses.

A registered function called with no traced operand returns exactly what NumPy returns; with one,
it records IR. A NumPy function with no registered implementation raises NotImplementedError
naming it: never a silent conversion to a constant.
"""
from __future__ import annotations

import functools
import importlib
import sys

import numpy as np

from ..errors import TracerError, caller_source, user_source
from ..trace import Tracer, _source, bind_at

FUNCTIONS: dict = {}    # numpy callable -> tracegrad implementation
UFUNCS: dict = {}       # numpy ufunc -> tracegrad implementation
UFUNC_REDUCERS: dict = {}   # numpy ufunc -> the reduction implementing `ufunc.reduce`


def has_tracer(args) -> bool:
    for a in args:
        if isinstance(a, Tracer):
            return True
        if isinstance(a, (list, tuple)) and has_tracer(a):
            return True
    return False


def _strong(out):
    """A NumPy function returns NumPy values even for Python-scalar operands (`np.exp(0.5)` is a
    float64, not a Python float): traced results stop promoting like Python scalars (weakly).
    Python operators on Python scalars re-mark theirs weak (see _methods.py)."""
    if isinstance(out, Tracer):
        return Tracer(out.node, out.builder, out.value, False) if out.weak else out
    if isinstance(out, tuple) and any(isinstance(o, Tracer) and o.weak for o in out):
        return tuple(_strong(o) for o in out)
    return out


def numpy_function(*np_funcs, name=None):
    """Register `impl` as the traced version of `np_funcs` (the first is the plain-NumPy fallback)."""
    def deco(impl):
        reference = np_funcs[0] if np_funcs else None

        @functools.wraps(impl)
        def wrapper(*args, **kwargs):
            if reference is not None and not has_tracer(args) and not has_tracer(kwargs.values()):
                return reference(*args, **kwargs)
            try:
                return _strong(impl(*args, **kwargs))
            except (ValueError, TypeError, IndexError) as e:
                raise_with_line(e, name or impl.__name__)
        if name:
            wrapper.__name__ = name
        wrapper.__doc__ = (impl.__doc__ or "") or (f"Traceable numpy.{reference.__name__}."
                                                   if reference is not None else None)
        for f in np_funcs:
            if isinstance(f, np.ufunc):
                UFUNCS[f] = wrapper
            else:
                FUNCTIONS[f] = wrapper
        wrapper._tracegrad_impl = impl
        return wrapper
    return deco


_LINE_MARK = "\n  at "


def raise_with_line(e: Exception, fname: str):
    """Re-raise `e` (being handled) named by `fname` and the user's line, unless it says them."""
    if isinstance(e, TracerError) or _LINE_MARK in str(e):
        raise e
    raise _with_line(e, fname) from None


def _with_line(e: Exception, fname: str) -> Exception:
    """The same exception type, its message prefixed by the function and suffixed by the user's line."""
    msg = f"{fname}: {e}{_LINE_MARK}{user_source(4)}"
    try:
        return type(e)(msg)
    except Exception:
        return ValueError(msg) if isinstance(e, ValueError) else TypeError(msg)


def _np_name(func) -> str:
    mod = getattr(func, "__module__", "numpy") or "numpy"
    mod = mod.replace("numpy._core.multiarray", "numpy").replace("numpy._core.fromnumeric", "numpy")
    mod = mod.replace("numpy._core.numeric", "numpy").replace("numpy._core", "numpy")
    mod = mod.replace("numpy.linalg._linalg", "numpy.linalg").replace("numpy.lib._function_base_impl", "numpy")
    return f"{mod}.{getattr(func, '__name__', func)}"


def direct(prim, operands):
    """The fast path of a ufunc (or operator) that is one primitive on its cast operands: strong
    float tracers of one dtype, with Python floats (NEP 50: cast to that dtype), need no cast and no
    loop resolution. None when the operands are anything else (the full implementation decides)."""
    dt = None
    for x in operands:
        if type(x) is Tracer:
            if x.weak:
                return None
            d = x.node.aval.dtype
            if dt is None:
                dt = d
            elif d is not dt:
                return None
        elif type(x) is not float:
            return None
    if dt is None or dt.kind != "f":
        return None
    if len(operands) == 2:
        x, y = operands
        operands = (dt.type(x) if type(x) is float else x, dt.type(y) if type(y) is float else y)
    src = _source.get()      # (the user's line: two frames up, the caller of the operator or ufunc)
    if src is None:
        return bind_at(prim, operands, {}, caller_source(3), None)
    return bind_at(prim, operands, {}, src[0], src[1])


def array_function(self, func, types, args, kwargs):
    impl = FUNCTIONS.get(func)
    if impl is None:
        raise NotImplementedError(
            f"{_np_name(func)} is not supported on traced values by tracegrad (no rule), called at "
            f"{user_source(3)}. Use a tracegrad.numpy function that is, or wrap NumPy code in "
            f"tg.pure_callback.")
    if _source.get() is not None:
        return impl(*args, **kwargs)
    # A traced operand is certain here: the implementation directly (with the wrapper's errors),
    # its equations attributed to the caller's line, found once (NumPy's dispatch is C: the caller
    # is one frame up; none of these functions calls back into user code).
    token = _source.set((caller_source(2), None))
    try:
        return _strong(impl._tracegrad_impl(*args, **kwargs))
    except (ValueError, TypeError, IndexError) as e:
        raise_with_line(e, impl.__name__)
    finally:
        _source.reset(token)


def _register_scipy() -> bool:
    """scipy.special's ufuncs are registered by tracegrad.scipy.special, imported when one first
    meets a tracer (so `import tracegrad` does not import SciPy); True if that registered any."""
    if "scipy.special" not in sys.modules or "tracegrad.scipy.special" in sys.modules:
        return False
    importlib.import_module("tracegrad.scipy.special")
    return True


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method == "__call__":
        impl = UFUNCS.get(ufunc)
        if impl is None and _register_scipy():
            impl = UFUNCS.get(ufunc)
        if impl is None:
            raise NotImplementedError(f"numpy.{ufunc.__name__} is not supported on traced values by "
                                      f"tracegrad (no rule), called at {user_source(3)}")
        if kwargs.get("out") is not None:
            # (also `ndarray += tracer`: NumPy would store the traced result in the array)
            raise TypeError(f"numpy.{ufunc.__name__}(..., out=...) with a traced value cannot write "
                            f"in place at {user_source(3)}; use the returned value instead "
                            f"(x = x + y rebinds)")
        kwargs.pop("out", None)
        if kwargs:
            raise NotImplementedError(f"numpy.{ufunc.__name__} keyword(s) {sorted(kwargs)} are not "
                                      f"supported on traced values (at {user_source(3)})")
        prim = getattr(impl, "_tracegrad_prim", None)
        if prim is not None:
            out = direct(prim, inputs)
            if out is not None:
                return out
        # (a traced operand is certain here: the implementation directly, with the wrapper's errors)
        try:
            return _strong(impl._tracegrad_impl(*inputs))
        except (ValueError, TypeError, IndexError) as e:
            raise_with_line(e, ufunc.__name__)
    if method == "reduce":
        reducer = UFUNC_REDUCERS.get(ufunc)
        if reducer is not None:
            return reducer(*inputs, **kwargs)
    raise NotImplementedError(f"numpy.{ufunc.__name__}.{method} is not supported on traced values "
                              f"by tracegrad (at {user_source(3)})")
