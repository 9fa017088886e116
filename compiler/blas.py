"""Control of the BLAS thread count from compiled code.

Numba's `np.dot` calls SciPy's BLAS (an OpenBLAS build, `scipy_openblas`), whose worker threads wait
for cores that other processes may hold. `blas_set_threads(n)` (callable in nopython code) sets that
library's thread count; `kernels.gemm` calls it before each product with the number of cores the
runner found free. The function is bound by name through an LLVM symbol, so cached kernels stay valid
in the next process; where SciPy's BLAS is not OpenBLAS (no such symbol) it does nothing.
"""
from __future__ import annotations

import ctypes
import glob
import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_SYMBOL = "tracegrad_blas_set_num_threads"


def _openblas():
    """SciPy's bundled OpenBLAS (the library Numba's BLAS calls go to), or None."""
    import scipy
    libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        if "openblas64" in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
            return lib, lib.scipy_openblas_set_num_threads, lib.scipy_openblas_get_num_threads
        except (OSError, AttributeError):
            continue
    return None


_LIB = _openblas()
AVAILABLE = _LIB is not None
if AVAILABLE:
    llvm.add_symbol(_SYMBOL, ctypes.cast(_LIB[1], ctypes.c_void_p).value)
    _LIB[2].restype = ctypes.c_int


def default_threads() -> int:
    """The BLAS thread count this process started with (what a kernel restores)."""
    return int(_LIB[2]()) if AVAILABLE else 1


@intrinsic
def blas_set_threads(typingctx, n):
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        if AVAILABLE:
            fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(32)])
            fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOL)
            builder.call(fn, [builder.trunc(args[0], ir.IntType(32)) if n.bitwidth > 32 else args[0]])
        return context.get_dummy_value()
    return types.none(n), codegen
