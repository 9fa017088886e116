"""Source generation: the text of one kernel function for a planned IR, and its line map.

The kernel takes the IR's inputs then its constants (as arrays: never globals), views each as a flat
buffer, runs the planned groups in order (fused loops from `loops.py`, blocks from the lowering
table) and returns a tuple of arrays, 0-d for scalars. Names follow the printed IR (`c`, `ab`):
a value's scalar is `c`, its flat buffer `C`. Every statement an equation produces carries the
comment `# prim aval  file.py:LINE`, and the line map sends generated lines back to equations for
error messages. This module is also the API block lowerings program against (`Emitter`).
"""
from __future__ import annotations

import builtins
import itertools
import keyword
from dataclasses import dataclass

import numpy as np

from tracegrad.ir import Lit, Var, _pretty, format_src

from . import layout, loops
from .lowering import lit, np_type

_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {"np", "math", "prange", "objmode", "kernel"}
_COMMENT_COL = 48


@dataclass
class Generated:
    source: str
    line_eqn: dict        # 1-based line number -> equation index
    parallel: bool
    check_finite: bool
    n_outputs: int


class Emitter:
    def __init__(self, plan):
        self.plan = plan
        self.ir = plan.ir
        self.names: dict = {}
        _pretty(self.ir, self.names, 0)          # the printer's names, so source and IR agree
        self.lines: list = []                    # (indent, text, eqn index | None, is_comment)
        self.indent = 1
        self._count = itertools.count()
        self.buffers: dict = {}                  # Var -> name of its flat buffer
        self.sizes: dict = {}                    # buffer name -> elements
        self.copies: dict = {}                   # Access -> (buffer, offset) of a contiguous copy
        self.eqn = None                          # equation being lowered (for comments)
        self.uses_prange = False
        self.uses_objmode = False

    # ------------------------------------------------------------ names and lines

    def sname(self, v) -> str:
        n = self.names[v]
        return n + "_" if n in _RESERVED else n

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self._count)}"

    def line(self, text: str, eqn=...):
        self.lines.append((self.indent, text, self.eqn if eqn is ... else eqn, False))

    def comment(self, text: str):
        self.lines.append((self.indent, "# " + text, None, True))

    def buf(self, v) -> str:
        try:
            return self.buffers[v]
        except KeyError:
            raise AssertionError(f"internal error: {self.names.get(v, v)} has no buffer") from None

    def new_buffer(self, v, emit=True) -> str:
        name = self.names[v].upper()
        n = v.aval.size
        if emit:
            self.line(f"{name} = np.empty({n}, {np_type(v.aval.dtype)})")
        self.buffers[v] = name
        self.sizes[name] = n
        return name

    # ------------------------------------------------------------ API for block lowerings

    def scalar_root_text(self, root) -> str:
        if isinstance(root, Lit):
            return lit(root.value, root.aval.dtype)
        return self.sname(root)

    def access(self, atom, perm=None) -> layout.Access:
        """How the current equation reads `atom` (through lazy views), optionally transposed."""
        if isinstance(atom, Lit):
            acc = layout.Access(atom, 0, (), ())
        else:
            j = next(j for j, a in enumerate(self.plan.eqns[self.eqn].inputs) if a is atom)
            acc = self.plan.operand_access(self.eqn, j)
        return layout.transpose(acc, perm) if perm is not None else acc

    def scalar(self, atom) -> str:
        acc = self.access(atom)
        if acc.scalar_root:
            return self.scalar_root_text(acc.root)
        return f"{self.buf(acc.root)}[{acc.offset}]"

    def contiguous(self, acc) -> tuple:
        """(buffer, offset) holding `acc`'s elements in C order: the root itself or a copy."""
        if not acc.scalar_root and acc.is_c_contiguous():
            return self.buf(acc.root), acc.offset
        hit = self.copies.get(acc)
        if hit is None:
            tmp = self.fresh("T")
            n = layout.size_of(acc.shape)
            self.line(f"{tmp} = np.empty({n}, {np_type(acc.root.aval.dtype)})")
            self.sizes[tmp] = n
            self.copy(acc, tmp, 0, layout.c_strides(acc.shape))
            hit = self.copies[acc] = (tmp, 0)
        return hit

    def block(self, flat, start, shape) -> str:
        """A C-contiguous `shape` view of a flat buffer from element `start` (int, or (var, step))."""
        name, off = (flat, 0) if isinstance(flat, str) else flat
        n = layout.size_of(shape)
        shape_text = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        if isinstance(start, tuple):
            var, step = start
            lo = f"{var} * {step}" + (f" + {off}" if off else "")
        else:
            lo = off + start
            if lo == 0 and n == self.sizes.get(name):
                return f"{name}.reshape({shape_text})"
        return f"{name}[{lo}:{lo} + {n}].reshape({shape_text})"

    def fill(self, buf, n, value):
        if n:
            t = self.fresh("i")
            self.line(f"for {t} in range({n}):")
            self.line(f"    {buf}[{t}] = {value}")

    def copy(self, acc, dst, dst_offset, dst_strides):
        loops.copy_loop(self, acc, dst, dst_offset, dst_strides)

    def reduce_loop(self, acc, out_buf, better, init):
        loops.reduce_loop(self, acc, out_buf, better, init)

    def check_buffer_lines(self, buf, n, k) -> list:
        t = self.fresh("i")
        return [(f"for {t} in range({n}):", k),
                (f"    if bad_ > {k} and not np.isfinite({buf}[{t}]): bad_ = {k}", k)]

    # ------------------------------------------------------------ the kernel

    def _prologue(self):
        ir = self.ir
        params = []
        for kind, v in [("input", v) for v in ir.inputs] + [("const", v) for v, _ in ir.consts]:
            p = f"{self.names[v]}_in"
            params.append(p)
            shape = v.aval.shape
            if kind == "input":
                self.line(f"if {p}.shape != {shape!r}:", None)
                self.line(f"    raise ValueError('argument {len(params) - 1} must have shape {shape}')", None)
            if shape == ():
                self.line(f"{self.sname(v)} = {p}[()]", None)
            else:
                name = self.names[v].upper()
                self.line(f"{name} = {p}" if len(shape) == 1 else f"{name} = {p}.reshape({v.aval.size})", None)
                self.buffers[v] = name
                self.sizes[name] = v.aval.size
        return params

    def _outputs(self):
        outs, returned = [], set()
        inputs = set(self.ir.inputs) | {v for v, _ in self.ir.consts}
        for a in self.ir.outputs:
            if isinstance(a, Lit):
                outs.append(f"np.array({lit(a.value, a.aval.dtype)})")
                continue
            if a.aval.shape == ():
                outs.append(f"np.array({self.scalar_text_final(a)})")
                continue
            acc = self.plan.access[a]
            root = acc.root
            text = f"{self.buf(root)}.reshape({a.aval.shape!r})"
            if root in inputs or root in returned:
                text += ".copy()"
            returned.add(root)
            outs.append(text)
        return outs

    def scalar_text_final(self, v) -> str:
        acc = self.plan.access[v]
        if acc.scalar_root:
            return self.scalar_root_text(acc.root)
        return f"{self.buf(acc.root)}[{acc.offset}]"

    def generate(self) -> Generated:
        plan = self.plan
        params = self._prologue()
        if plan.check_finite:
            self.line(f"bad_ = {len(plan.eqns)}", None)
        for g in plan.groups:
            if g.kind == "loop":
                loops.emit_group(self, plan, g)
                continue
            (i,) = g.members
            self.eqn = i
            e = plan.eqns[i]
            plan.rules[i].fn(self, e)
            for v in e.outs:
                if v.aval.shape == ():
                    self.line(f"{self.sname(v)} = {self.buf(v)}[0]")
                if plan.check_finite and v.aval.is_float:
                    if v.aval.shape == ():
                        self.line(loops.check_line(self, self.sname(v), i))
                    else:
                        for text, k in self.check_buffer_lines(self.buf(v), v.aval.size, i):
                            self.line(text, k)
            self.eqn = None
        outs = self._outputs()
        if plan.check_finite:
            outs = ["bad_"] + outs
        self.line(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})", None)
        return self._render(params)

    def _describe(self, i) -> str:
        e = self.plan.eqns[i]
        aval = " ".join(str(v.aval) for v in e.outs)
        where = format_src(e.src) if e.fwd_src is None else f"bwd {format_src(e.fwd_src)}"
        return f"{e.prim.name} {aval}  {where}" if aval else f"{e.prim.name}  {where}"

    def _render(self, params) -> Generated:
        parallel = self.uses_prange
        head = [
            "# Generated by tracegrad (compiler/emit.py) from one IR; compiled by compiler/build.py with",
            f"# numba.njit(cache=True, error_model='numpy', parallel={parallel}).",
            "# Values are flat C-contiguous buffers (upper case) or scalars (lower case), named as in",
            "# the printed IR; each line says which equation it computes and the user's line.",
            "import math",
            "import numpy as np",
            "from numba import objmode, prange",
            "",
        ]
        if self.uses_objmode:
            head += [
                "",
                "def _debug_print(fmt, dtypes, *values):",
                "    print(fmt.format(*[np.asarray(v, dtype=d) for v, d in zip(values, dtypes)]))",
                "",
            ]
        head += ["", f"def kernel({', '.join(params)}):"]
        out = list(head)
        line_eqn = {}
        for indent, text, eqn, is_comment in self.lines:
            code = "    " * indent + text
            if eqn is not None and not is_comment:
                code = code.ljust(_COMMENT_COL - 1) + "  # " + self._describe(eqn)
                line_eqn[len(out) + 1] = eqn
            out.append(code)
        source = "\n".join(out) + "\n"
        return Generated(source, line_eqn, parallel, self.plan.check_finite, len(self.ir.outputs))


def generate(plan) -> Generated:
    return Emitter(plan).generate()
