"""Run-time switches: eager mode and anomaly detection (context-local, defaults from the environment)."""
from __future__ import annotations

import contextlib
import functools
import os
from contextvars import ContextVar


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


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


def eager(enabled: bool = True):
    """Run transforms op by op through NumPy instead of compiling (also `TRACEGRAD_EAGER=1`).

    Usable as `with tg.eager():`, as `@tg.eager()` and as a bare decorator `@tg.eager`.
    """
    if callable(enabled):
        fun = enabled

        @functools.wraps(fun)
        def wrapper(*args, **kwargs):
            with _Switch(_eager, True):
                return fun(*args, **kwargs)
        return wrapper
    return _Switch(_eager, bool(enabled))


def detect_anomaly(enabled: bool = True):
    """Raise `AnomalyError` at the first NaN/Inf, naming the op and the user's line."""
    if callable(enabled):
        fun = enabled

        @functools.wraps(fun)
        def wrapper(*args, **kwargs):
            with _Switch(_anomaly, True):
                return fun(*args, **kwargs)
        return wrapper
    return _Switch(_anomaly, bool(enabled))
