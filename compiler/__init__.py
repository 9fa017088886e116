"""tracegrad's compiler: an IR becomes one native function through generated Numba source.

    run = compile_ir(ir, check_finite=False)
    outputs = run(*inputs)          # a tuple, one array per ir.outputs (0-d for scalars)
    run.source                      # exactly the text that was compiled
    run.from_disk_cache             # True when Numba loaded it from the on-disk cache

Pipeline: `fuse.Plan` (which equations share a loop, which values need arrays) -> `emit` (the
kernel's source, through the rule table in `lowering.py` and the loop emitter in `loops.py`) ->
`cache` (a content-addressed .py file) -> `build` (njit(cache=True), error translation, wrapper).
This package imports only tracegrad's IR, primitives and errors; tracegrad imports it lazily.
"""
from __future__ import annotations

import weakref

import numpy as np

from .loops import PARALLEL_MIN_WORK  # noqa: F401  (the prange threshold, re-exported)


def compile_ir(ir, check_finite: bool = False):
    """Compile `ir` into a callable `run(*inputs) -> tuple of outputs`.

    With `check_finite`, the kernel checks every floating-point result it computes and `run`
    raises `AnomalyError` for the first equation (in IR order) that produced NaN or Inf.
    """
    from . import build, fallback
    from .control import UnsupportedControlFlow, check_run_time_sizes
    from .emit import generate
    from .fuse import Plan

    odd = fallback.unsupported_dtypes(ir)
    if odd:
        return fallback.interpreted(ir, check_finite, "Numba has no " +
                                    ", ".join(sorted(d.name for d in odd)) + " type")
    try:
        check_run_time_sizes(ir)
    except UnsupportedControlFlow as e:
        return fallback.interpreted(ir, check_finite, str(e))
    plan = Plan(ir, check_finite)
    gen = generate(plan)
    gen.eqns = plan.eqns
    mod, from_disk, path = build.compile_kernel(gen)
    consts = tuple(build.flat_const(c, v.aval) for v, c in ir.consts)
    key = build.register_callbacks(gen.callbacks)
    run = mod.make_runner(mod.dispatcher, consts, build.coercer([v.aval for v in ir.inputs]),
                          build.anomaly_raiser(gen.anomaly_eqns), key)
    if key:
        weakref.finalize(run, build.CALLBACKS.pop, key, None)
    run.source = gen.source
    run.from_disk_cache = from_disk
    run.path = path
    run.ir = ir
    run.check_finite = check_finite
    run.dispatcher = mod.dispatcher
    return run
