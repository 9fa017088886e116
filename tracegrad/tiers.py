"""How one traced signature runs: at once on the interpreter tier, then natively once compiled.

An `Entry` holds a signature's IR and the callable that currently runs it. The interpreter tier
(`interpret.runner`: the IR's equations run with their NumPy impls; straight-line generated code
after a few calls) answers the first call at once. Native code is built from the simplified IR
(`compiled_ir`) according to the compile mode:
  "background"  (default) a thread prepares the kernels and hands them to the compiler's worker
                processes; when they are built it loads them and swaps the entry's callable, so
                the switch happens at a call boundary. The caller never waits.
  "sync"        the first call waits for native code (what tests of compiled semantics use).
  "never"       the interpreter tier only.
The default comes from `TRACEGRAD_COMPILE`; `tg.jit(..., compile=...)` overrides it. Tiers give
the same values and errors; only speed differs. Random draws are made before each call, on the
live generators, and passed to either tier as extra inputs (draws.hoist / draws.with_draws). Why an
entry is not native (not compilable, the compile failed, the worker was stopped for its memory) is
kept in `why` for `cache_info()`.
"""
from __future__ import annotations

import os
import threading
import time

from .draws import hoist, with_draws
from .interpret import runner as interpreter
from .passes import simplify
from .pytree import tree_unflatten

MODES = ("background", "sync", "never")
_START_LOCK = threading.Lock()


def compile_mode(override=None) -> str:
    mode = override or os.environ.get("TRACEGRAD_COMPILE", "background").strip().lower() or "background"
    if mode not in MODES:
        raise ValueError(f"compile mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


class NativeUnavailable(NotImplementedError):
    """`lower(...).compile()` on a signature that cannot run natively; the message says why."""


class Entry:
    """One signature of a staged function: its IR, output structure and current tier."""

    def __init__(self, ir, out_tree, check_finite, mode):
        self.ir = ir
        self.out_tree = out_tree
        self.check_finite = check_finite
        self.finish = (lambda outs: outs[0]) if out_tree.nodetype is None else \
            (lambda outs, t=out_tree: tree_unflatten(t, outs))
        self._compiled_ir = None
        # Random draws are made before each call, on the live generators, and passed in (draws.py).
        # The interpreter tier runs the IR as traced (simplify keeps exact values; the interpreter
        # simplifies what it turns into code), so a first call does not wait for the pass.
        self._hoisted, self.draws = hoist(ir)
        self.run = with_draws(interpreter(self._hoisted, check_finite), self.draws, self._hoisted)
        self.tier = "interpreted"
        self.why = "compile='never'" if mode == "never" else None
        self.compile_s = None
        self.program = None          # compiler.Program, once prepared
        self.native = None
        self._done = threading.Event()
        self._thread = None
        if mode == "sync":
            self._build(raise_errors=True)
        elif mode == "background":
            # The compile thread starts once the first call has its result: its imports (the
            # compiler, Numba) would otherwise compete with that call for the GIL and import lock.
            self.tier = "compiling"
            self._thread = threading.Thread(target=self._build, daemon=True, name="tracegrad-compile")
            interpreted = self.run

            def first_call(*args):
                try:
                    return interpreted(*args)
                finally:
                    if self.run is first_call:
                        self.run = interpreted
                    self._start()
            self.run = first_call

    @property
    def compiled_ir(self):
        """The simplified IR the compiler gets (computed once, on first use)."""
        if self._compiled_ir is None:
            self._compiled_ir = simplify(self._hoisted)
        return self._compiled_ir

    # ------------------------------------------------------------ building native code

    def _start(self):
        with _START_LOCK:
            if self._thread.ident is None:
                self._thread.start()

    def _build(self, raise_errors=False):
        import compiler           # (a process that never compiles never imports the compiler)
        t0 = time.perf_counter()
        try:
            native = with_draws(self._compile(compiler), self.draws, self.compiled_ir)
            self.compile_s = time.perf_counter() - t0
            self.native, self.run, self.tier, self.why = native, native, "native", None
        except compiler.NotCompilable as e:
            self.why = str(e)              # runs on the interpreter tier, as eager mode would
        except Exception as e:   # noqa: BLE001  (the entry keeps running on the interpreter tier)
            self.why = f"compilation failed: {e}"
            if raise_errors:
                raise
        finally:
            if self.tier != "native":
                self.tier = "interpreted"
            self._done.set()

    def _compile(self, compiler):
        from compiler import workers
        workers.pool().start()      # workers import Numba while the kernels are generated
        self.program = compiler.prepare(self.compiled_ir, self.check_finite)
        futures = [workers.pool().submit(k) for k in self.program.kernels]
        import compiler.build   # noqa: F401  (Numba's import overlaps the workers' compile)
        for f in futures:
            try:
                f.result()
            except workers.CompileFailed as e:
                if e.stopped:
                    raise NativeUnavailable(str(e)) from None
                # a Numba error: load() compiles that kernel here, which raises it with the
                # generated line and the user's line (compiler.build.translate_error)
        return self.program.load()

    def wait_native(self):
        """Block until native code exists (compiling now if nothing was started); return it."""
        if self._thread is None and not self._done.is_set():
            self._build(raise_errors=True)
        elif self._thread is not None:
            self._start()
        self._done.wait()
        if self.native is None:
            raise NativeUnavailable(f"no native code for this signature: {self.why}")
        return self.native

    def source(self) -> str:
        """The generated Numba source (or why there is none, and the interpreter's source)."""
        if self._thread is not None:
            self._start()
            self._done.wait()
        if self.program is None and self.why in (None, "compile='never'"):
            import compiler
            try:
                self.program = compiler.prepare(self.compiled_ir, self.check_finite)
            except compiler.NotCompilable as e:
                self.why = str(e)
        if self.program is not None:
            return self.program.source
        return (f"# not compiled ({self.why}): the equations run with their NumPy impls\n"
                + interpreter(self.compiled_ir, self.check_finite).source)
