"""LLVM-level pieces of compiler/vecmath.py: bit casts, fma, and a call that stays rare.

`rare_call(name, fn)` makes an intrinsic for a float64 -> float64 function that a vectorised loop
should run only on the few lanes that need it. A call under a condition does not do that by
itself: the loop vectorizer treats a readnone call in a conditional block as speculatable and
runs it for every lane (a libm call per element), or, for a call it cannot vectorise, gives up
on the loop. Here the call site carries LLVM's "vector-function-abi-variant" attribute, which
names masked vector variants written below in LLVM IR: the vectorised loop calls the variant of
its width once per vector with the lanes' mask; the variant returns at once when no lane is set,
otherwise calls `fn` (compiled once as a C function) lane by lane.
"""
from __future__ import annotations

from llvmlite import binding as llvm, ir as lir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def as_int(typingctx, x):
    """The bits of a float64 as an int64."""
    if x == types.float64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))
        return types.int64(x), codegen


@intrinsic
def as_float(typingctx, i):
    """An int64 bit pattern as a float64."""
    if isinstance(i, types.Integer) and i.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))
        return types.float64(i), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma)."""
    if a == b == c == types.float64:
        def codegen(context, builder, sig, args):
            return builder.fma(*args)
        return types.float64(a, b, c), codegen


# ---------------------------------------------------------------- rare calls

_VFS = (2, 4, 8, 16)             # vector widths LLVM may choose for a float64 (or float32) loop


def _masked_variant(name, vf, scalar):
    """<vf x double> variant(<vf x double> x, <vf x i1> mask): `scalar` on the set lanes only."""
    v = f"<{vf} x double>"
    out = [f"define {v} @tg_vecmath_{name}_m{vf}({v} %x, <{vf} x i1> %m) noinline nounwind {{",
           "entry:", f"  %bits = bitcast <{vf} x i1> %m to i{vf}", f"  %any = icmp ne i{vf} %bits, 0",
           "  br i1 %any, label %l0, label %none", "none:", f"  ret {v} %x"]
    acc = "%x"
    for i in range(vf):
        out += [f"l{i}:", f"  %m{i} = extractelement <{vf} x i1> %m, i32 {i}",
                f"  br i1 %m{i}, label %c{i}, label %j{i}",
                f"c{i}:", f"  %x{i} = extractelement {v} %x, i32 {i}",
                f"  %r{i} = call double @{scalar}(double %x{i})",
                f"  %a{i} = insertelement {v} {acc}, double %r{i}, i32 {i}", f"  br label %j{i}",
                f"j{i}:", f"  %p{i} = phi {v} [ %a{i}, %c{i} ], [ {acc}, %l{i} ]"]
        acc = f"%p{i}"
        out.append(f"  br label %l{i + 1}" if i + 1 < vf else f"  ret {v} {acc}")
    return out + ["}"]


def _slow_ir(name, scalar, data_layout):
    """tg_vecmath_<name>_slow(x): a call of the C function `scalar` that LLVM may vectorise
    through the masked variants."""
    exact = f"tg_vecmath_{name}_exact"                   # noinline: the call must stay a call
    variants = ",".join(f"_ZGV_LLVM_M{vf}v_{exact}(tg_vecmath_{name}_m{vf})" for vf in _VFS)
    lines = [f'target datalayout = "{data_layout}"',
             f'declare double @"{scalar}"(double)',
             f"define double @{exact}(double %x) noinline nounwind {{",
             f'  %r = call double @"{scalar}"(double %x)', "  ret double %r", "}",
             f"define double @tg_vecmath_{name}_slow(double %x) alwaysinline nounwind {{",
             f"  %r = call double @{exact}(double %x) #0", "  ret double %r", "}",
             f'attributes #0 = {{ nounwind willreturn memory(none) '
             f'"vector-function-abi-variant"="{variants}" }}']
    # memory(none) is what lets LLVM vectorise the call; it holds for the exact functions, which
    # read only constant tables and cannot raise
    for vf in _VFS:
        lines += _masked_variant(name, vf, exact)
    # the variants are referenced only by name: keep them through optimisation and linking
    used = ", ".join(f"ptr @tg_vecmath_{name}_m{vf}" for vf in _VFS)
    lines.append(f'@llvm.used = appending global [{len(_VFS)} x ptr] [{used}], section "llvm.metadata"')
    return "\n".join(lines)


_slow_libraries: dict = {}       # (codegen, name) -> library; built on first use, then cached


def rare_call(name, exact):
    """An intrinsic f(x: float64) -> float64 calling the Python function `exact` (compiled as a
    C function on first use) through tg_vecmath_<name>_slow, so that under a condition in a
    vectorised loop it costs one masked call per vector. Kernels that use it link the C
    function's code in: a cached kernel needs nothing at load time."""
    @intrinsic
    def call(typingctx, x):
        if x == types.float64:
            def codegen(context, builder, sig, args):
                cg = context.codegen()
                lib = _slow_libraries.get((cg, name))
                if lib is None:
                    c = cfunc(types.float64(types.float64), cache=True, error_model="numpy")(exact)
                    lib = cg.create_library(f"tg_vecmath_{name}_slow")
                    lib.add_llvm_module(llvm.parse_assembly(
                        _slow_ir(name, c.native_name, str(cg.target_data))))
                    lib.add_linking_library(c._library)    # its code, not its address
                    lib.finalize()
                    _slow_libraries[(cg, name)] = lib
                context.active_code_library.add_linking_library(lib)
                fnty = lir.FunctionType(lir.DoubleType(), [lir.DoubleType()])
                fn = cgutils.get_or_insert_function(builder.module, fnty, f"tg_vecmath_{name}_slow")
                return builder.call(fn, args)
            return types.float64(x), codegen
    return call
