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
import os
import re
import sys
import warnings
import weakref

import numpy as np

from tracegrad.errors import AnomalyError

from . import cache

_MEMO: dict = {}        # module name -> loaded kernel module (one per process and kernel source)
CALLBACKS: dict = {}    # registry key -> tuple of tg.pure_callback objects (read in object mode)
_keys = iter(range(1, 1 << 62))


def register_callbacks(callbacks) -> int:
    """A key under which compiled code finds these callbacks (kernels take the key, not the
    objects, so a kernel's source -- and its disk cache entry -- does not depend on them)."""
    if not callbacks:
        return 0
    key = next(_keys)
    CALLBACKS[key] = tuple(callbacks)
    return key
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


def _signature(gen):
    from numba.core import types
    from numba.np.numpy_support import from_dtype
    return tuple(types.Array(from_dtype(dt), nd, "C") if nd >= 0 else from_dtype(dt)
                 for dt, nd in gen.signature)


def compile_module(name: str, path: str, source: str, signature, parallel: bool):
    """The kernel module `name` (file `path`), its kernel compiled for `signature`: loaded from
    Numba's disk cache when a worker (or an earlier process) compiled it, compiled here otherwise."""
    hit = _MEMO.get(name)
    if hit is not None:
        return hit
    import numba
    with cache.lock(path), warnings.catch_warnings():
        # Numba's performance hints are about generated code the user did not write
        warnings.simplefilter("ignore", category=numba.core.errors.NumbaWarning)
        try:
            mod = _load_module(name, path, source)
            disp = numba.njit(mod.kernel, cache=True, error_model="numpy", parallel=parallel)
            cache.guard_numba_cache(disp, name)
            disp.compile(signature)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    disp.disable_compile()
    mod.dispatcher = disp
    mod.from_disk_cache = bool(disp.stats.cache_hits)
    _MEMO[name] = mod
    return mod


def compile_kernel(gen):
    """(module, from_disk_cache, path) for generated kernel `gen`; `module.kernel` is compiled."""
    name = cache.key(gen.source)
    path = cache.ensure_source(name, gen.source)
    fresh = name not in _MEMO
    try:
        mod = compile_module(name, path, gen.source, _signature(gen), gen.parallel)
    except Exception as exc:   # noqa: BLE001  (every Numba failure is re-raised below)
        raise translate_error(exc, gen, path) from None
    return mod, fresh and mod.from_disk_cache, path


def load_part(ir, kernel, check_finite):
    """The runner of one kernel: Numba loads it from its disk cache (or compiles it here)."""
    gen = kernel.gen
    mod, from_disk, path = compile_kernel(gen)
    consts = tuple(flat_const(c, v.aval) for v, c in ir.consts)
    key = register_callbacks(gen.callbacks)
    run = mod.make_runner(mod.dispatcher, consts, coercer([v.aval for v in ir.inputs]),
                          anomaly_raiser(gen.anomaly_eqns), key)
    if key:
        weakref.finalize(run, CALLBACKS.pop, key, None)
    run.from_disk_cache = from_disk
    run.path = path
    run.dispatcher = mod.dispatcher
    return run


def translate_error(exc, gen, path):
    """A TypeError (typing) or NotImplementedError (anything else) naming the equation."""
    from numba.core import errors as nerr
    text = _ANSI.sub("", str(exc))
    lines = gen.source.splitlines()
    eqn_i, where = None, None
    if isinstance(exc, SyntaxError) and exc.lineno:
        text = f'File "{path}", line {exc.lineno}\n{exc.msg}'
    base = os.path.basename(path)
    # Numba names the line as `File "<maybe relative path>", line N` and `at <path> (N)`
    for m in re.finditer(r'File "([^"]+)", line (\d+)|at (\S+) \((\d+)\)', text):
        fname, n = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if os.path.basename(fname) == base:
            where = int(n)
            eqn_i = gen.line_eqn.get(where, eqn_i)
    reason = _first_reason(text)
    cls = TypeError if isinstance(exc, nerr.TypingError) else NotImplementedError
    msg = [f"Numba could not compile the generated kernel {path}"]
    if eqn_i is not None:
        e = eqn_i
        k = next((k for k, x in enumerate(gen.eqns) if x is e), None)
        which = f"equation {k} " if k is not None else "equation "
        aval = " ".join(str(v.aval) for v in e.outs)
        phase = f"backward pass, derivative of the op at {e.fwd_src}" if e.fwd_src else "forward pass"
        msg = [f"Numba could not compile {which}'{e.prim.name}' ({aval}) from {e.src} ({phase})"]
    if where is not None and 0 < where <= len(lines):
        msg.append(f"  generated code, {path}:{where}:")
        msg.append(f"      {lines[where - 1].strip()}")
    msg.append(f"  Numba said: {reason}")
    msg.append("  (this is a bug in tracegrad's lowering of that primitive: compiler/lowering/; "
               "tg.eager() runs the same IR without compiling)")
    return cls("\n".join(msg))


def _first_reason(text: str) -> str:
    """Numba's headline, the signature it tried, and its innermost TypingError, if any."""
    lines = [ln.strip() for ln in text.splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith(("Failed in ", "File ", "During:", "^"))][:1]
    keep += [ln for ln in lines if ln.startswith(">>>")][:1]
    keep += [ln for ln in lines if ln.startswith("TypingError:")][-1:]
    return " ".join(keep) if keep else text[:300]


def coercer(in_avals):
    """Slow path of a runner: arguments converted to exactly the compiled types, or a clear error."""
    def coerce(args):
        if len(args) != len(in_avals):
            raise TypeError(f"compiled function takes {len(in_avals)} arguments, got {len(args)}")
        out = []
        for i, (a, av) in enumerate(zip(args, in_avals)):
            arr = np.asarray(a)
            if arr.shape != av.shape:
                raise ValueError(f"argument {i} has shape {arr.shape}, the compiled function "
                                 f"expects {av.shape}")
            out.append(np.require(arr, dtype=av.dtype, requirements=("C", "A", "W")))
        return tuple(out)
    return coerce


def anomaly_raiser(eqns_by_key):
    def anomaly(bad):
        e = eqns_by_key[bad]
        raise AnomalyError(e.prim.name, e.phase, e.src, e.fwd_src)
    return anomaly


def flat_const(value, aval):
    """A constant as the kernel takes it: flat, C-contiguous, writable, of the exact dtype."""
    arr = np.require(np.asarray(value), dtype=aval.dtype, requirements=("C", "A", "W"))
    return arr if aval.ndim <= 1 else arr.reshape(-1)
