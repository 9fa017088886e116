"""Run-time switches: eager mode and anomaly detection (context-local, defaults from the environment)."""
from __future__ import annotations

import contextlib
import functools
import os
from contextvars import ContextVar


# os.environ.get costs ~0.7 us (it encodes the key each time); these flags are read on every call
# of a compiled function, so read the environment's underlying mapping with pre-encoded keys.
_RAW_ENV = getattr(os.environ, "_data", None)
_ENCODE = getattr(os.environ, "encodekey", None)
_OFF = {"", "0", "false", "no"}


def _env_flag(name: str) -> bool:
    if _RAW_ENV is not None and _ENCODE is not None:
        raw = _RAW_ENV.get(_ENCODE(name) if name not in _KEYS else _KEYS[name])
        if raw is None:
            return False
        value = raw.decode() if isinstance(raw, bytes) else raw
    else:
        value = os.environ.get(name, "")
    return value.strip().lower() not in _OFF


_KEYS = {n: _ENCODE(n) for n in ("TRACEGRAD_EAGER", "TRACEGRAD_DEBUG_NANS")} if _ENCODE else {}


_eager: ContextVar[bool | None] = ContextVar("tracegrad_eager", default=None)
_anomaly: ContextVar[bool | None] = ContextVar("tracegrad_anomaly", default=None)


def eager_enabled() -> bool:
    v = _eager.get()
    return _env_flag("TRACEGRAD_EAGER") if v is None else v


def anomaly_enabled() -> bool:
    v = _anomaly.get()
    return _env_flag("TRACEGRAD_DEBUG_NANS") if v is None else v


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
