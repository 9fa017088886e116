"""Run-time switches: eager mode and anomaly detection (context-local, defaults from the environment)."""
from __future__ import annotations

import contextlib
import functools
import os
from contextvars import ContextVar


# os.environ.get costs ~0.7 us (it encodes the key each time); these flags are read on every call
# of a compiled function, so read the environment's underlying mapping with pre-encoded keys, and
# parse each raw value once.
_RAW_ENV = getattr(os.environ, "_data", None)
_ENCODE = getattr(os.environ, "encodekey", None)
_OFF = {"", "0", "false", "no"}
_PARSED: dict = {}     # raw value -> bool


def _parse(raw) -> bool:
    value = raw.decode() if isinstance(raw, bytes) else raw
    on = _PARSED[raw] = value.strip().lower() not in _OFF
    return on


def _raw_reader(name: str):
    """A function returning the raw value of environment variable `name` (None when unset)."""
    if _RAW_ENV is not None and _ENCODE is not None:
        return functools.partial(_RAW_ENV.get, _ENCODE(name))
    return functools.partial(os.environ.get, name)


if _RAW_ENV is not None and _ENCODE is not None:
    _get_raw = _RAW_ENV.get
    _K_EAGER, _K_NANS, _K_COMPILE = (_ENCODE(n) for n in
                                     ("TRACEGRAD_EAGER", "TRACEGRAD_DEBUG_NANS", "TRACEGRAD_COMPILE"))
else:
    _get_raw = os.environ.get
    _K_EAGER, _K_NANS, _K_COMPILE = "TRACEGRAD_EAGER", "TRACEGRAD_DEBUG_NANS", "TRACEGRAD_COMPILE"


_raw_eager = _raw_reader("TRACEGRAD_EAGER")
_raw_nans = _raw_reader("TRACEGRAD_DEBUG_NANS")
compile_env = _raw_reader("TRACEGRAD_COMPILE")
compile_env.__doc__ = "The raw value of TRACEGRAD_COMPILE (None when unset): part of trace-cache keys."


def _env_flag(raw) -> bool:
    if raw is None:
        return False
    on = _PARSED.get(raw)
    return _parse(raw) if on is None else on


_eager: ContextVar[bool | None] = ContextVar("tracegrad_eager", default=None)
_anomaly: ContextVar[bool | None] = ContextVar("tracegrad_anomaly", default=None)
_eager_get, _anomaly_get = _eager.get, _anomaly.get


def eager_enabled() -> bool:
    v = _eager.get()
    return _env_flag(_raw_eager()) if v is None else v


def anomaly_enabled() -> bool:
    v = _anomaly.get()
    return _env_flag(_raw_nans()) if v is None else v


def call_mode():
    """None in eager mode; else (anomaly detection on?, raw TRACEGRAD_COMPILE): what a staged call's
    cache key needs from the switches (one call on the dispatch path instead of three)."""
    v = _eager_get()
    if v is None:
        raw = _get_raw(_K_EAGER)
        if raw is not None and _env_flag(raw):
            return None
    elif v:
        return None
    a = _anomaly_get()
    if a is None:
        raw = _get_raw(_K_NANS)
        a = raw is not None and _env_flag(raw)
    return a, _get_raw(_K_COMPILE)


class _Switch(contextlib.ContextDecorator):
    """`with switch():` or `@switch()`; re-entrant, restores the previous setting on exit."""

    def __init__(self, var: ContextVar, on: bool = True):
        self._var, self._on, self._tokens = var, on, []

    def __enter__(self):
        self._tokens.append(self._var.set(self._on))
        return self

    def __exit__(self, *exc):
        self._var.reset(self._tokens.pop())
        return False


def _switch_api(var: ContextVar, doc: str):
    def switch(enabled: bool = True):
        if callable(enabled):     # used as a bare decorator
            fun = enabled

            @functools.wraps(fun)
            def wrapper(*args, **kwargs):
                with _Switch(var, True):
                    return fun(*args, **kwargs)
            return wrapper
        return _Switch(var, bool(enabled))
    switch.__doc__ = doc
    return switch


eager = _switch_api(_eager, """Run transforms op by op through NumPy instead of compiling (also `TRACEGRAD_EAGER=1`).

    Usable as `with tg.eager():`, as `@tg.eager()` and as a bare decorator `@tg.eager`.
    """)
eager.__name__ = "eager"
detect_anomaly = _switch_api(_anomaly, """Raise `AnomalyError` at the first NaN/Inf, naming the op and the user's line.

    Usable as `with tg.detect_anomaly():` or as a decorator (also `TRACEGRAD_DEBUG_NANS=1`).
    """)
detect_anomaly.__name__ = "detect_anomaly"
