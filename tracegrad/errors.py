"""The public exception types and the user-source locator they quote."""
from __future__ import annotations

import os
import sys
import weakref

import numpy as np

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_COMPILER_DIR = os.path.join(os.path.dirname(_PKG_DIR), "compiler")
_NUMPY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
_SKIP = (_PKG_DIR + os.sep, _COMPILER_DIR + os.sep, os.path.join(_NUMPY_DIR, "numpy") + os.sep,
         "<frozen", os.path.dirname(os.__file__) + os.sep + "contextlib.py")


# id(code object) -> ({line: "path:line"} for the user's code, None for tracegrad's and NumPy's),
# dropped with the code object: whether a frame is the user's is decided once per code object, and
# each source string is formatted once (tracing asks for one per recorded equation).
_CODES: dict = {}


def _code_info(code):
    key = id(code)
    info = None if code.co_filename.startswith(_SKIP) else {}
    try:
        ref = weakref.ref(code, lambda _, k=key: _CODES.pop(k, None))
    except TypeError:
        ref = code
    _CODES[key] = (info, ref)
    return info


def caller_source(skip: int = 1) -> str:
    """user_source(skip) when frame `skip` is the user's (one look, the usual case at an entry
    point from user code), else the walk."""
    f = sys._getframe(skip)
    hit = _CODES.get(id(f.f_code))
    lines = hit[0] if hit is not None else _code_info(f.f_code)
    if lines is None:
        return user_source(skip + 1)
    line = f.f_lineno
    src = lines.get(line)
    if src is None:
        src = lines[line] = f"{f.f_code.co_filename}:{line}"
    return src


def user_source(skip: int = 1) -> str:
    """`path/file.py:LINE` of the innermost frame that is the user's code."""
    f = sys._getframe(skip)
    codes = _CODES
    while f is not None:
        code = f.f_code
        hit = codes.get(id(code))
        lines = hit[0] if hit is not None else _code_info(code)
        if lines is not None:
            line = f.f_lineno
            src = lines.get(line)
            if src is None:
                src = lines[line] = f"{code.co_filename}:{line}"
            return src
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


def slice_length_message(start, stop, n, *, size, length, step, axis, src) -> str:
    """The IndexError of a slice with traced bounds (primitive `slice_start`) that NumPy would give
    `n` elements instead of its static `length`; the impl and the compiled lowering both say this."""
    return (f"slice {start}:{stop}{'' if step == 1 else f':{step}'} of axis {axis} with size {size} "
            f"selects {n} elements, but this slice with traced bounds has the static length {length}: "
            f"its bounds must lie within the axis, both counted from the start or both from the end"
            f"\n  at {src}")


class EagerFallbackWarning(UserWarning):
    """A function compiled implicitly (by grad and friends, not tg.jit) ran in eager mode instead:
    it met a value-dependent construct while being traced."""


class MissingRuleError(NotImplementedError):
    """A primitive lacks a rule of some kind; the message names where to add it."""
