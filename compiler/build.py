"""From generated source to a native callable: module loading, Numba compilation, the wrapper.

The kernel is compiled eagerly for its one signature (C-contiguous arrays of the IR's dtypes and
ranks), so typing errors surface in `compile_ir` and we know whether Numba served it from its disk
cache. Numba's errors are translated into TypeError / NotImplementedError naming the equation,
the user's line and the generated line. The returned callable passes arguments straight to the
dispatcher; only when the dispatcher rejects them (a non-contiguous or read-only array, a NumPy
scalar, a different dtype) does it convert them and retry, so the common call costs one Numba
dispatch plus a closure call.
"""
from __future__ import annotations

import importlib.util
import re
import sys

import numpy as np

from tracegrad.errors import AnomalyError

from . import cache

_MEMO: dict = {}        # module name -> compiled dispatcher (one per process and kernel source)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _load_module(name: str, path: str, source: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    # Numba pickles the kernel's module by name: it must be importable before njit(cache=True)
    sys.modules[name] = mod
    try:
        exec(compile(source, path, "exec"), mod.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _signature(avals):
    from numba.core import types
    from numba.np.numpy_support import from_dtype
    return tuple(types.Array(from_dtype(a.dtype), a.ndim, "C") for a in avals)


def compile_kernel(gen, in_avals):
    """(dispatcher, from_disk_cache, path, module name) for generated kernel `gen`."""
    import numba
    name = cache.key(gen.source)
    hit = _MEMO.get(name)
    if hit is not None:
        return hit[0], False, hit[1], name
    path = cache.ensure_source(name, gen.source)
    with cache.lock(path):
        mod = _load_module(name, path, gen.source)
        disp = numba.njit(mod.kernel, cache=True, error_model="numpy", parallel=gen.parallel)
        cache.guard_numba_cache(disp, name)
        try:
            disp.compile(_signature(in_avals))
        except Exception as exc:   # noqa: BLE001  (every Numba failure is re-raised below)
            sys.modules.pop(name, None)
            raise translate_error(exc, gen, path) from None
    from_disk = bool(disp.stats.cache_hits)
    disp.disable_compile()
    _MEMO[name] = (disp, path)
    return disp, from_disk, path, name


def translate_error(exc, gen, path):
    """A TypeError (typing) or NotImplementedError (anything else) naming the equation."""
    from numba.core import errors as nerr
    text = _ANSI.sub("", str(exc))
    lines = gen.source.splitlines()
    eqn_i, where = None, None
    for m in re.finditer(r'File "([^"]+)", line (\d+)', text):
        if m.group(1) == path:
            n = int(m.group(2))
            where = n
            if n in gen.line_eqn:
                eqn_i = gen.line_eqn[n]
    plan_eqns = gen.eqns
    reason = _first_reason(text)
    cls = TypeError if isinstance(exc, nerr.TypingError) else NotImplementedError
    msg = [f"Numba could not compile the generated kernel {path}"]
    if eqn_i is not None:
        e = plan_eqns[eqn_i]
        aval = " ".join(str(v.aval) for v in e.outs)
        phase = f"backward pass, derivative of the op at {e.fwd_src}" if e.fwd_src else "forward pass"
        msg = [f"Numba could not compile equation {eqn_i} '{e.prim.name}' ({aval}) from {e.src} ({phase})"]
    if where is not None and 0 < where <= len(lines):
        msg.append(f"  generated code, {path}:{where}:")
        msg.append(f"      {lines[where - 1].strip()}")
    msg.append(f"  Numba said: {reason}")
    msg.append("  (this is a bug in tracegrad's lowering of that primitive: compiler/lowering.py; "
               "tg.eager() runs the same IR without compiling)")
    return cls("\n".join(msg))


def _first_reason(text: str) -> str:
    keep = []
    for ln in text.splitlines():
        s = ln.strip()
        if not s or s.startswith(("File ", "During:", "Failed in ", "^")) or s.startswith("<source"):
            continue
        keep.append(s)
        if len(keep) == 3:
            break
    return " | ".join(keep) if keep else text[:300]


def _coercer(in_avals):
    def coerce(args):
        if len(args) != len(in_avals):
            raise TypeError(f"compiled function takes {len(in_avals)} arguments, got {len(args)}")
        out = []
        for i, (a, av) in enumerate(zip(args, in_avals)):
            arr = np.asarray(a)
            if arr.shape != av.shape:
                raise ValueError(f"argument {i} has shape {arr.shape}, the compiled function "
                                 f"expects {av.shape}")
            arr = np.require(arr, dtype=av.dtype, requirements=("C", "A", "W"))
            out.append(arr)
        return out
    return coerce


def make_callable(disp, consts, in_avals, gen, eqns):
    """The function staging calls: `run(*inputs) -> tuple of outputs`."""
    coerce = _coercer(in_avals)
    if gen.check_finite:
        n = len(eqns)

        def run(*args):
            try:
                res = disp(*args, *consts)
            except TypeError:
                res = disp(*coerce(args), *consts)
            bad = res[0]
            if bad < n:
                e = eqns[bad]
                raise AnomalyError(e.prim.name, e.phase, e.src, e.fwd_src)
            return res[1:]
    elif consts:
        def run(*args):
            try:
                return disp(*args, *consts)
            except TypeError:
                return disp(*coerce(args), *consts)
    else:
        def run(*args):
            try:
                return disp(*args)
            except TypeError:
                return disp(*coerce(args))
    return run
