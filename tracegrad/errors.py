"""The public exception types and the user-source locator they quote."""
from __future__ import annotations

import os
import sys

import numpy as np

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_COMPILER_DIR = os.path.join(os.path.dirname(_PKG_DIR), "compiler")
_NUMPY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
_SKIP = (_PKG_DIR + os.sep, _COMPILER_DIR + os.sep, os.path.join(_NUMPY_DIR, "numpy") + os.sep,
         "<frozen", os.path.dirname(os.__file__) + os.sep + "contextlib.py")


def user_source(skip: int = 1) -> str:
    """`path/file.py:LINE` of the innermost frame that is the user's code."""
    f = sys._getframe(skip)
    while f is not None:
        name = f.f_code.co_filename
        if not name.startswith(_SKIP):
            return f"{name}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>:0"


class TracerError(TypeError):
    """A traced value was used where a concrete value is needed."""


class AnomalyError(FloatingPointError):
    """The first NaN or Inf produced, with the op and the user's line that produced it."""

    def __init__(self, primitive: str, phase: str, source: str, forward_source: str | None = None,
                 detail: str = ""):
        self.primitive = primitive
        self.phase = phase
        self.source = source
        self.forward_source = forward_source
        msg = f"{detail or 'NaN/Inf'} produced by '{primitive}' in the {phase} pass at {source}"
        if forward_source is not None:
            msg += f" (derivative of the forward op at {forward_source})"
        super().__init__(msg)

    def __reduce__(self):
        return (AnomalyError, (self.primitive, self.phase, self.source, self.forward_source))


def _finite(x) -> bool:
    x = np.asarray(x)
    return x.dtype.kind != "f" or bool(np.isfinite(x).all())


def check_finite(prim_name: str, src: str, fwd_src, ins, outs) -> None:
    """Raise AnomalyError if an output of the op `prim_name` at `src` holds NaN or Inf."""
    for o in outs:
        if not _finite(o):
            detail = "NaN" if np.isnan(o).any() else "Inf"
            if not all(map(_finite, ins)):
                detail += " (an input already held NaN/Inf)"
            raise AnomalyError(prim_name, "forward" if fwd_src is None else "backward", src, fwd_src,
                               detail)


class EagerFallbackWarning(UserWarning):
    """A function compiled implicitly (by grad and friends, not tg.jit) ran in eager mode instead:
    it met a value-dependent construct while being traced."""


class MissingRuleError(NotImplementedError):
    """A primitive lacks a rule of some kind; the message names where to add it."""
