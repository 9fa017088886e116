"""tracegrad's compiler: an IR becomes native code through generated Numba source.

    program = prepare(ir, check_finite)   # plan, split, emit; write the kernel modules (no Numba)
    program.source                        # exactly the text that is compiled
    program.kernels                       # what a worker process compiles (each from its file)
    run = program.load()                  # Numba loads (or compiles) each kernel; the runner
    outputs = run(*inputs)                # a tuple, one array per ir.outputs (0-d for scalars)
    run = compile_ir(ir, check_finite)    # prepare + load, in this process

Pipeline: `program.split` (bounded parts) -> `fuse.Plan` (which equations share a loop, which
values need arrays) -> `emit` (the kernel's source, through the rule table `rules.LOWERINGS` filled
by `lowering/` and the loop emitter `loops`) -> `cache` (content-addressed .py files) -> `build`
(njit(cache=True), error translation, the runner). `workers` runs builds in separate processes.
Importing this package does not import Numba; `build` and `kernels` do.
"""
from __future__ import annotations

from . import lowering  # noqa: F401  (registers every primitive's lowering)
from .program import NotCompilable, Program, prepare, why_not_compiled


def compile_ir(ir, check_finite: bool = False):
    """Compile `ir` in this process into `run(*inputs) -> tuple of outputs`.

    With `check_finite`, the kernel checks every floating-point result it computes and `run`
    raises `AnomalyError` for the first equation (in IR order) that produced NaN or Inf.
    Raises NotCompilable (with the reason) for IRs Numba cannot run.
    """
    return prepare(ir, check_finite).load()


__all__ = ["NotCompilable", "Program", "compile_ir", "prepare", "why_not_compiled"]
