"""Numba lowerings of the special-function primitives (lgamma, digamma, polygamma, erfc, erfinv,
i0, ...; rules in `tracegrad/rules/special.py`): each is a call of a scalar function defined in
`compiler/special_calls.py` (SciPy's own C implementation, or our polygamma), which the emitter imports
into the kernels that call it (`callables.py`). Float32 is computed in float64 and rounded, as
the impls do.
"""
from __future__ import annotations

import numpy as np

from tracegrad import primitives as P

from .. import callables
from ..rules import LOWERINGS, Elementwise, np_type

# primitive -> (name generated code calls, cython_special export of its `double f(double)` version)
EXPORTS = {
    P.lgamma_p: ("sp_gammaln", "gammaln"),
    P.digamma_p: ("sp_digamma", "__pyx_fuse_1psi"),
    P.gamma_p: ("sp_gamma", "__pyx_fuse_1gamma"),
    P.erfc_p: ("sp_erfc", "__pyx_fuse_1erfc"),
    P.erfinv_p: ("sp_erfinv", "__pyx_fuse_0erfinv"),
    P.log_ndtr_p: ("sp_log_ndtr", "__pyx_fuse_1log_ndtr"),
    P.i0_p: ("sp_i0", "i0"),
    P.i1_p: ("sp_i1", "i1"),
    P.i0e_p: ("sp_i0e", "i0e"),
    P.i1e_p: ("sp_i1e", "i1e"),
}
# two and three operands: (name, export, number of double arguments)
EXPORTS_N = {
    P.gammainc_p: ("sp_gammainc", "gammainc", 2),
    P.gammaincc_p: ("sp_gammaincc", "gammaincc", 2),
    P.betainc_p: ("sp_betainc", "__pyx_fuse_0betainc", 3),
}
callables.register("compiler.special_calls", *(name for name, _ in EXPORTS.values()),
                   *(name for name, _, _ in EXPORTS_N.values()), "sp_polygamma")


def _call(name):
    def rule(args, ins, out, **_):
        if out.dtype == np.float64:
            return f"{name}({', '.join(args)})"
        wide = ", ".join(f"np.float64({a})" for a in args)
        return f"{np_type(out.dtype)}({name}({wide}))"
    return Elementwise(rule)


for _p, (_name, _) in EXPORTS.items():
    LOWERINGS[_p] = _call(_name)
for _p, (_name, _, _) in EXPORTS_N.items():
    LOWERINGS[_p] = _call(_name)
LOWERINGS[P.polygamma_p] = _call("sp_polygamma")
