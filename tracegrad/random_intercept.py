"""Intercepting `numpy.random` while a trace is open: every `Generator` / `RandomState` method and
`numpy.random` function becomes a recorded draw (`draws.draw`, or `draws_params.traced_draw` when
its parameters are traced). The replacements are installed for the duration of an outermost trace
(`patching`), and pass through to NumPy whenever no builder records.
"""
from __future__ import annotations

import types

import numpy as np

from . import patching
from .draws import (_BIT_GENERATORS, _DEFAULT_RNG, _SESSION, GENERATOR, GLOBAL, ORIGINAL,
                    RANDOM_STATE, _in_body, _label, _on_root, draw, has_tracer, kind_of)
from .draws_params import traced_draw
from .errors import TracerError, user_source
from .trace import current_builder


def intercepted(gen, name, args, kwargs):
    """`gen.name(*args, **kwargs)` called while a builder records."""
    kind = kind_of(gen)
    session = _SESSION.get()
    if session is None:
        return ORIGINAL[kind][name](gen, *args, **kwargs)
    src = user_source(2)
    where = f"{_label(gen, session.born.get(id(gen)))}.{name}() at {src}"
    if _in_body():
        raise TracerError(
            f"{where}: a random draw inside a tg.fori_loop / scan / while_loop / cond / checkpoint "
            f"body is not supported (a body is traced once, and reverse mode may run it again). "
            f"Draw the samples for all iterations before the loop (e.g. "
            f"`eps = rng.standard_normal((n_steps, d))`) and pass them in, as `xs` of tg.scan.")
    if has_tracer(args) or has_tracer(kwargs):
        return traced_draw(session, gen, kind, name, args, kwargs, src, where)
    return draw(session, gen, kind, name, args, kwargs, src, where)



# ---------------------------------------------------------------- the replacements

def _method(kind, name):
    original = ORIGINAL[kind][name]

    def method(self, *args, **kwargs):
        if current_builder() is None:
            return original(self, *args, **kwargs)
        return intercepted(self, name, args, kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    return method


def _module_function(bound, name):
    def function(*args, **kwargs):
        if current_builder() is None:
            return bound(*args, **kwargs)
        return intercepted(GLOBAL, name, args, kwargs)
    function.__name__ = function.__qualname__ = getattr(bound, "__name__", name)
    function.__doc__ = bound.__doc__
    return function


def _compiling_session():
    if current_builder() is None:
        return None
    s = _SESSION.get()
    return s if s is not None and not s.eager else None


def _default_rng(seed=None):
    g = _DEFAULT_RNG(seed)
    s = _compiling_session()
    if s is not None and g is not seed:
        s.note_born(g, _DEFAULT_RNG, (seed,), {}, "default_rng")
    return g


class _ConstructorProxy(type):
    """Stands for a numpy.random class in `numpy.random` during a trace: calling it records how the
    object was made, so that a generator the traced function creates is created afresh on every
    run; `isinstance`, `issubclass` and attributes answer as the real class does."""

    def __call__(cls, *args, **kwargs):
        obj = cls._real(*args, **kwargs)
        s = _compiling_session()
        if s is not None:
            s.note_born(obj, cls._real, args, kwargs, cls._real.__name__)
        return obj

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._real)

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls._real)

    def __getattr__(cls, name):
        return getattr(cls._real, name)

    def __repr__(cls):
        return repr(cls._real)


def _proxy(real):
    return _ConstructorProxy(real.__name__, (), {"_real": real, "__doc__": real.__doc__,
                                                 "__module__": real.__module__})


def _module_replacements() -> dict:
    out = {}
    for name in dir(np.random):
        value = getattr(np.random, name)
        if isinstance(value, types.MethodType) and value.__self__ is GLOBAL:
            out[name] = _module_function(value, value.__func__.__name__)
    for name, method in (("seed", "seed"), ("ranf", "random_sample"), ("sample", "random_sample")):
        if hasattr(np.random, name):
            out[name] = _module_function(getattr(np.random, name), method)
    out["default_rng"] = _default_rng
    for cls in (GENERATOR, RANDOM_STATE) + _BIT_GENERATORS:
        out[cls.__name__] = _proxy(cls)
    return out


def _install():
    for kind in (GENERATOR, RANDOM_STATE):
        patching.register(patching.TypeDictPatch(kind, {n: _method(kind, n) for n in ORIGINAL[kind]}))
    replacements = _module_replacements()
    patching.register(patching.ModulePatch(np.random, replacements))
    patching.add_root_hook(_on_root)


_install()


