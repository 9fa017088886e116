"""Source generation: one module per IR, holding the kernel and the Python runner that calls it.

The kernel takes flat C-contiguous buffers: the IR's inputs, its constants (arguments, never
globals), one preallocated array per output, and one workspace per dtype in which intermediate
values live at fixed offsets (packed by liveness: a dead value's space is reused). It allocates
nothing itself: Numba charges ~50 ms of compile time per `np.empty` call site. The runner, plain
Python in the same module, allocates the outputs, keeps the workspaces between calls and passes
everything in one call.

Names follow the printed IR: a value's scalar is `c`, its buffer `C` (or a workspace slice, noted
in a comment where it is placed). Every statement an equation produces carries the comment
`# prim aval  file.py:LINE`, and the line map sends generated lines back to equations for error
messages. This module is also the API block lowerings program against (`Emitter`).
"""
from __future__ import annotations

import builtins
import itertools
import keyword
import re
from dataclasses import dataclass

import numpy as np

from tracegrad.ir import Aval, Lit, Var, _pretty, format_src, short_dtype

from . import callables, layout, loops
from .fuse import Plan
from .rules import KERNEL_HELPERS, lit, np_type

_HELPERS = {
    "_debug_print": """
def _debug_print(fmt, dtypes, *values):
    print(fmt.format(*[np.asarray(v, dtype=d) for v, d in zip(values, dtypes)]))
""",
    "_numpy_call": """
def _numpy_call(what, ins, outs, **kw):
    res = getattr(np.linalg, what)(*ins, **kw)
    for o, r in zip(outs, res if isinstance(res, tuple) else (res,)):
        o[...] = r
""",
    "_callback": """
def _callback(key, k, ins, outs):
    from compiler.build import CALLBACKS
    for o, r in zip(outs, CALLBACKS[key][k](*ins)):
        o[...] = np.reshape(r, o.shape)
""",
}
_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {"np", "math", "prange", "objmode", "kernel"}
_COMMENT_COL = 48


@dataclass
class Generated:
    source: str
    line_eqn: dict        # 1-based line number -> the Eqn it computes
    parallel: bool
    check_finite: bool
    signature: list       # (dtype, ndim) per kernel parameter (ndim -1: a scalar)
    callbacks: list = None  # tg.pure_callback objects the kernel calls, by slot
    anomaly_eqns: dict = None   # anomaly key -> equation (check_finite)
    eqns: list = None       # the planned equations (error messages number them)


class Workspace:
    """First-fit packing of intermediate buffers into one flat array per dtype."""

    def __init__(self):
        self.free: dict = {}     # dtype -> sorted list of (start, size) holes
        self.top: dict = {}      # dtype -> high-water mark

    def alloc(self, dtype, n) -> int:
        holes = self.free.setdefault(dtype, [])
        for k, (start, size) in enumerate(holes):
            if size >= n:
                if size == n:
                    del holes[k]
                else:
                    holes[k] = (start + n, size - n)
                return start
        start = self.top.get(dtype, 0)
        self.top[dtype] = start + n
        return start

    def release(self, dtype, start, n):
        holes = self.free.setdefault(dtype, [])
        holes.append((start, n))
        holes.sort()
        merged = []
        for s, z in holes:
            if merged and merged[-1][0] + merged[-1][1] == s:
                merged[-1] = (merged[-1][0], merged[-1][1] + z)
            else:
                merged.append((s, z))
        holes[:] = merged


def workspace_name(dtype) -> str:
    return "W" + short_dtype(dtype)


class Emitter:
    def __init__(self, plan):
        self.plan = plan
        self.ir = plan.ir
        self.names: dict = {}
        _pretty(self.ir, self.names, 0)          # the printer's names, so source and IR agree
        self.lines: list = []                    # (indent, text, eqn index | None, is_comment)
        self.indent = 1
        self._count = itertools.count()
        self.storage: dict = {}                  # Var -> (array name, offset)
        self.ws = Workspace()
        self.temps: list = []                    # workspace slots to release after this group
        self.eqn = None                          # equation being lowered (for comments)
        self.uses_prange = False
        self.uses_objmode = False
        self.helpers: set = set()               # module-level Python helpers object mode calls
        self.kernels: set = set()               # compiler.kernels helpers called
        self.callbacks: list = []               # tg.pure_callback objects, by slot
        self.table: list = []                   # helper calls' integer parameters (`P_`)
        self.pinned: set = set()                # values whose storage a caller owns
        self.key_frame = (0, None, len(plan.eqns))
        self.none_key = repr(float(len(plan.eqns)))   # bad_ before any anomaly
        self.anomaly_eqns: dict = {}            # anomaly key -> equation

    # ------------------------------------------------------------ names and lines

    def name(self, v) -> str:
        n = self.names.get(v)
        if n is None:   # a value the printer does not show (e.g. inside a tuple of sub-IRs)
            n = self.names[v] = self.fresh("v")
        return n

    def sname(self, v) -> str:
        n = self.name(v)
        return n + "_" if n in _RESERVED else n

    def bname(self, v) -> str:
        return self.name(v).upper()

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self._count)}"

    def line(self, text: str, eqn=...):
        """A statement; `eqn` (default: the one being lowered) is an index into the plan being
        emitted, stored as the equation itself (loop bodies have plans of their own)."""
        i = self.eqn if eqn is ... else eqn
        self.lines.append((self.indent, text, None if i is None else self.plan.eqns[i], False))

    def comment(self, text: str):
        self.lines.append((self.indent, "# " + text, None, True))

    # ------------------------------------------------------------ storage

    def loc(self, v) -> tuple:
        try:
            return self.storage[v]
        except KeyError:
            raise AssertionError(f"internal error: {self.names.get(v, v)} has no buffer") from None

    def ref(self, v, index: str) -> str:
        """`index` (an element offset within v's buffer) as an element of v's storage."""
        base, off = self.loc(v)
        if off != 0:
            index = str(off) if index == "0" else f"{off} + {index}"
        return f"{base}[{index}]"

    def ref_loc(self, loc, index: str) -> str:
        base, off = loc
        return f"{base}[{index if off == 0 else layout.add_offset(off, index)}]"

    def place(self, v) -> tuple:
        """Storage for value v: its output array if it has one, else a workspace slot."""
        if v in self.storage:
            return self.storage[v]
        if layout.run_time_sized(v.aval):
            raise AssertionError(f"internal error: {self.name(v)} ({v.aval}) needs a grown buffer")
        dt = v.aval.dtype
        off = self.ws.alloc(dt, v.aval.size)
        self.storage[v] = (workspace_name(dt), off)
        self.comment(f"{self.bname(v)}: {v.aval} at {workspace_name(dt)}[{off}:{off + v.aval.size}]")
        return self.storage[v]

    def grow(self, v, rows) -> tuple:
        """Storage for `v`, whose leading dimension is known only at run time (aval (-1, ...)),
        holding at least `rows` rows (a run-time text). It is a kernel-local array, not a
        workspace slot: the first call allocates it, later calls grow it by doubling."""
        dt = v.aval.dtype
        self.ws.top.setdefault(dt, 0)        # `W[:0]` below names a (possibly empty) workspace
        old = self.storage[v][0] if v in self.storage else f"{workspace_name(dt)}[:0]"
        row = layout.size_of(v.aval.shape[1:])
        need = rows if row == 1 else f"({rows}) * {row}"
        name = self.bname(v)
        self.line(f"{name} = grow_buffer({old}, {need})")
        self.storage[v] = (name, 0)
        return self.storage[v]

    def plan_body(self, ir):
        """The fusion plan of a nested IR (a loop or branch body), emitted inline by its lowering."""
        return Plan(ir, self.plan.check_finite)

    def temp_value(self, shape, dtype) -> Var:
        """A scratch array (released after this group) that accesses can name as their root."""
        v = Var(Aval(shape, dtype))
        self.storage[v] = self.temp(dtype, v.aval.size)
        return v

    def helper_call(self, fn, arrays, ints, what=""):
        """A call of `kernels.fn` on `arrays`, its integer parameters (offsets, sizes, flags) in
        the kernel's parameter table: `fn(arrays..., P_, np.int64(k))` reads them at P_[k:].
        A parameter known only at run time (an offset inside a loop body) is stored first."""
        if not self.table:    # P_[0]: cores free now (set by the runner), P_[1]: BLAS's default
            self.table.extend((1, 1))
        k = len(self.table)
        static = [v if isinstance(v, (bool, int, np.integer)) else 0 for v in ints]
        self.table.extend(int(v) for v in static)
        self.kernels.add(fn)
        shown = tuple(int(v) if isinstance(v, (bool, int, np.integer)) else v for v in ints)
        self.comment(f"{fn} parameters P_[{k}:{len(self.table)}] = {shown}{what}".replace("'", ""))
        for j, v in enumerate(ints):
            if not isinstance(v, (bool, int, np.integer)):
                self.line(f"P_[{k + j}] = {v}")
        self.line(f"{fn}({', '.join(arrays)}, P_, np.int64({k}))")

    def callback_slot(self, callback) -> int:
        self.callbacks.append(callback)
        return len(self.callbacks) - 1

    def temp(self, dtype, n) -> tuple:
        dtype = np.dtype(dtype)
        off = self.ws.alloc(dtype, n)
        self.temps.append((dtype, off, n))
        return workspace_name(dtype), off

    def _release(self, v):
        base, off = self.storage[v]
        if base == workspace_name(v.aval.dtype) and v not in self._params and v not in self.pinned \
                and isinstance(off, int):
            self.ws.release(v.aval.dtype, off, v.aval.size)

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

    def scalar_of(self, acc) -> str:
        """The value of a one-element access."""
        if acc.scalar_root:
            return self.scalar_root_text(acc.root)
        return self.ref(acc.root, str(acc.offset))

    def read(self, acc, index: str) -> str:
        """Element `index` (an offset text over acc's strides) of an access, scalar roots too."""
        if acc.scalar_root:
            return self.scalar_root_text(acc.root)
        return self.ref(acc.root, index)

    def scalar(self, atom) -> str:
        return self.scalar_of(self.access(atom))

    def flat(self, acc, transposable=False):
        """(array, offset, transposed) holding `acc`'s elements in C order -- or, when
        `transposable`, with its last two axes swapped (transposed=True) -- copying if needed."""
        if not acc.scalar_root and acc.is_c_contiguous():
            base, off = self.loc(acc.root)
            return base, layout.add_offset(off, acc.offset), False
        if transposable and len(acc.shape) >= 2 and not acc.scalar_root:
            perm = tuple(range(len(acc.shape) - 2)) + (len(acc.shape) - 1, len(acc.shape) - 2)
            swapped = layout.transpose(acc, perm)
            if swapped.is_c_contiguous():
                base, off = self.loc(acc.root)
                return base, layout.add_offset(off, acc.offset), True
        dt = acc.root.aval.dtype
        n = layout.size_of(acc.shape)
        base, off = self.temp(dt, n)
        loops.copy_loop(self, acc, (base, off), layout.c_strides(acc.shape))
        return base, off, False

    def new_buffer(self, v) -> tuple:
        return self.place(v)

    def view_text(self, base, off, shape) -> str:
        """A C-contiguous `shape` array over base[off:] (for object-mode calls)."""
        n = layout.size_of(shape)
        return f"{base}[{off}:{layout.add_offset(off, n)}].reshape({tuple(shape)!r})"

    def fill(self, dst, n, value):
        if n:
            base, off = dst
            t = self.fresh("i")
            self.line(f"for {t} in range({n}):")
            self.line(f"    {base}[{off} + {t}] = {value}" if off else f"    {base}[{t}] = {value}")

    def copy(self, acc, dst, dst_offset, dst_strides):
        base, off = dst
        loops.copy_loop(self, acc, (base, layout.add_offset(off, dst_offset)), dst_strides)

    def reduce_loop(self, acc, dst, better, init):
        loops.reduce_loop(self, acc, dst, better, init)

    def check_key(self, i):
        """The anomaly key of equation i of the plan being emitted: keys order equations as
        eager mode meets them (a loop body's equations between its loop and the next one)."""
        base, scale, n = self.key_frame
        key = i if scale is None else base + scale * (i + 1) / (n + 1)
        self.anomaly_eqns[key] = self.plan.eqns[i]
        return repr(key)

    def check_buffer_lines(self, dst, n, k) -> list:
        base, off = dst
        t = self.fresh("i")
        idx = f"{off} + {t}" if off != 0 else t
        key = self.check_key(k)
        return [(f"for {t} in range({n}):", k),
                (f"    if bad_ > {key} and not np.isfinite({base}[{idx}]): bad_ = {key}", k)]

    # ------------------------------------------------------------ the kernel

    def _parameters(self):
        ir, plan = self.ir, self.plan
        self.params = []          # (name, dtype, ndim, kind)
        self._params = set()
        self.out_params = []
        for v in list(ir.inputs) + [v for v, _ in ir.consts]:
            if v.aval.shape == ():
                name = f"{self.name(v)}_in"
                self.params.append((name, v.aval.dtype, 0, "input"))
            else:
                name = self.bname(v)
                self.params.append((name, v.aval.dtype, 1, "input"))
                self.storage[v] = (name, 0)
            self._params.add(v)
        taken = {p[0] for p in self.params}
        for k, a in enumerate(ir.outputs):
            name = f"OUT{k}"
            if isinstance(a, Var) and self.bname(a) not in taken:
                name = self.bname(a)
            taken.add(name)
            self.params.append((name, a.aval.dtype, 0 if a.aval.shape == () else 1, "output"))
            self.out_params.append(name)
            if isinstance(a, Lit) or a.aval.shape == ():
                continue
            acc = plan.access[a]
            root = acc.root
            if (root in plan.producer and root not in self.storage and acc.covers_root()):
                self.storage[root] = (name, 0)     # computed straight into the caller's array
                self._params.add(root)

    def _prologue(self):
        sized = [(n, v) for (n, _, nd, kind), v in zip(self.params, list(self.ir.inputs))
                 if kind == "input" and nd == 1]
        if sized:
            cond = " or ".join(f"{n}.size != {v.aval.size}" for n, v in sized)
            self.line(f"if {cond}:", None)
            self.line("    raise ValueError('argument sizes differ from the compiled shapes')", None)
        for v in self.ir.inputs:
            if v.aval.shape == ():
                self.line(f"{self.sname(v)} = {self.name(v)}_in[()]", None)

    def _epilogue(self):
        plan = self.plan
        for k, a in enumerate(self.ir.outputs):
            name = self.out_params[k]
            if isinstance(a, Lit):
                self.line(f"{name}[()] = {lit(a.value, a.aval.dtype)}", None)
                continue
            acc = plan.access[a]
            if a.aval.shape == ():
                self.line(f"{name}[()] = {self.scalar_of(acc)}", None)
            elif self.storage.get(acc.root) != (name, 0) or not acc.covers_root():
                self.comment(f"output {k} ({self.name(a)}) copied into the caller's array")
                loops.copy_loop(self, acc, (name, 0), layout.c_strides(acc.shape))

    def generate(self) -> Generated:
        plan = self.plan
        self._parameters()
        self._prologue()
        if plan.check_finite:
            self.line(f"bad_ = {self.none_key}", None)
        self.emit_groups(plan, keep=())
        self._epilogue()
        if "gemm" in self.kernels:
            self.line("blas_set_threads(P_[1])   # BLAS back to its default thread count", None)
        self.line("return bad_" if plan.check_finite else "return 0", None)
        return self._render()

    def emit_groups(self, plan, keep):
        """Emit `plan`'s groups in order, releasing workspace as values die (except `keep`)."""
        live = set()
        outer_temps, self.temps = self.temps, []
        for k, g in enumerate(plan.groups):
            if g.kind == "loop":
                loops.emit_group(self, plan, g)
            else:
                self._block(g.members[0])
            for dt, off, n in self.temps:
                self.ws.release(dt, off, n)
            self.temps = []
            for i in g.members:
                live.update(v for v in plan.eqns[i].outs if v in self.storage)
            for v in [v for v in live if plan.last_use.get(v, -1) <= k and v not in keep]:
                live.discard(v)
                self._release(v)
        self.temps = outer_temps
        return live

    def _block(self, i):
        plan = self.plan
        self.eqn = i
        e = plan.eqns[i]
        plan.rules[i].fn(self, e)
        for v in e.outs:
            if v.aval.shape == () and v in self.storage:   # (else the rule set the local itself)
                self.line(f"{self.sname(v)} = {self.ref(v, '0')}")
            if plan.check_finite and v.aval.is_float and not layout.run_time_sized(v.aval):
                # (run-time-sized values are loop outputs the loop body already checked)
                if v.aval.shape == ():
                    self.line(loops.check_line(self, self.sname(v), i))
                else:
                    for text, k in self.check_buffer_lines(self.loc(v), v.aval.size, i):
                        self.line(text, k)
        self.eqn = None

    def _describe(self, e) -> str:
        aval = " ".join(str(v.aval) for v in e.outs)
        where = format_src(e.src) if e.fwd_src is None else f"bwd {format_src(e.fwd_src)}"
        return f"{e.prim.name} {aval}  {where}" if aval else f"{e.prim.name}  {where}"

    # ------------------------------------------------------------ the module text

    def _runner(self) -> list:
        ir = self.ir
        n_in, n_const = len(ir.inputs), len(ir.consts)
        ins = [self.sname(v) for v in ir.inputs]
        in_args = [f"{s}.reshape(-1)" if v.aval.ndim > 1 else s for s, v in zip(ins, ir.inputs)]
        consts = [name for name, _, _, _ in self.params[n_in:n_in + n_const]]
        allocs, out_args, outs = [], [], []
        for k, a in enumerate(ir.outputs):
            name = f"out{k}"
            allocs.append(f"{name} = empty({a.aval.shape!r}, T{k})")   # (T{k} bound once per runner)
            out_args.append(f"{name}.reshape(-1)" if a.aval.ndim > 1 else name)
            outs.append(name)
        works = [(workspace_name(dt), n, dt) for dt, n in self._workspaces()]
        if self.table:
            works.append(("P_", None, np.dtype(np.int64)))
        extra = ["key"] if self.callbacks else []
        call = f"kernel({', '.join(in_args + consts + out_args + [w for w, _, _ in works] + extra)})"
        res = "bad = " if self.plan.check_finite else ""
        sig = ", ".join(ins)
        tup = lambda xs: f"({', '.join(xs)}{',' if len(xs) == 1 else ''})"   # noqa: E731
        alloc_ws = [f"{w} = empty({n}, {np_type(dt)})" for w, n, dt in works if w != "P_"]
        # Python code called from the kernel (debug_print, callbacks) may re-enter this function,
        # so such kernels get fresh workspaces per call; the others reuse one set.
        reentrant = self.uses_objmode
        lines = ["", "", "def make_runner(kernel, consts, coerce, anomaly, key=0):",
                 '    """The Python side: allocates the outputs and calls the kernel once."""',
                 "    empty = np.empty"]
        lines += [f"    T{k} = {np_type(a.aval.dtype)}" for k, a in enumerate(ir.outputs)]
        if consts:
            lines.append(f"    {tup(consts)} = consts")
        if self.table:
            lines.append(f"    P_ = np.array({self.table!r}, np.int64)   # helper calls' parameters")
        uses_blas = "gemm" in self.kernels
        if uses_blas:
            lines.append("    P_[1] = default_threads()")
        if not reentrant:
            lines += [f"    {x}" for x in alloc_ws]
        lines += ["", f"    def run({sig}):"]
        if reentrant:
            lines += [f"        {x}" for x in alloc_ws]
        lines += [f"        {x}" for x in allocs]
        if uses_blas:
            lines.append("        P_[0] = free_cores()   # BLAS threads: the cores other processes leave free")
        if self.uses_prange:
            lines.append("        set_num_threads(min(free_cores(), config.NUMBA_NUM_THREADS))")
        if ins:
            lines += ["        try:", f"            {res}{call}",
                      "        except (TypeError, AttributeError):   # not exactly the compiled types",
                      f"            {tup(ins)} = coerce({tup(ins)})", f"            {res}{call}"]
        else:
            lines.append(f"        {res}{call}")
        if self.plan.check_finite:
            lines += [f"        if bad < {len(self.plan.eqns)}:", "            anomaly(bad)"]
        lines += [f"        return {tup(outs)}", "", "    return run"]
        return lines

    def _workspaces(self) -> list:
        # (empty ones too: a zero-size value still names its workspace)
        return sorted(self.ws.top.items(), key=lambda x: x[0].name)

    def _render(self) -> Generated:
        parallel = self.uses_prange
        head = [
            "# Generated by tracegrad (compiler/emit.py) from one IR; compiled by compiler/build.py with",
            f"# numba.njit(cache=True, error_model='numpy', parallel={parallel}).",
            "# Buffers are flat C-ordered arrays (upper case; intermediates live in the W* workspaces),",
            "# scalars are lower case, named as in the printed IR; each line names its equation.",
            "import math",
            "import numpy as np",
            "from numba import objmode, prange",
        ]
        body_text = "\n".join(text for _, text, _, _ in self.lines)
        self.kernels |= {h for h in KERNEL_HELPERS if re.search(rf"\b{h}\(", body_text)}
        if self.kernels:
            head.append(f"from compiler.kernels import {', '.join(sorted(self.kernels))}")
        if "gemm" in self.kernels:
            head.append("from compiler.blas import blas_set_threads, default_threads")
        if "gemm" in self.kernels or self.uses_prange:
            head.append("from compiler.cores import free as free_cores")
        if self.uses_prange:
            head.append("from numba import config, set_num_threads")
        head += callables.import_lines(body_text)
        head.append("")
        for h in sorted(self.helpers):
            head += ["", *_HELPERS[h].strip("\n").split("\n"), ""]
        params = [name for name, _, _, _ in self.params]
        works = [workspace_name(dt) for dt, _ in self._workspaces()] + (["P_"] if self.table else [])
        extra = ["callbacks_"] if self.callbacks else []
        signature = [(dt, nd) for _, dt, nd, _ in self.params]
        signature += [(dt, 1) for dt, _ in self._workspaces()]
        if self.table:
            signature.append((np.dtype(np.int64), 1))
        if self.callbacks:
            signature.append((np.dtype(np.int64), -1))      # the callbacks' registry key
        types = ", ".join(f"{n}: {short_dtype(dt)}{'[]' if nd == 0 else '[:]' if nd == 1 else ''}"
                          for n, (dt, nd) in zip(params + works + extra, signature))
        head += ["", f"# compiled for ({types})", f"def kernel({', '.join(params + works + extra)}):"]
        out = list(head)
        line_eqn = {}      # line number -> Eqn
        for indent, text, eqn, is_comment in self.lines:
            code = "    " * indent + text
            if eqn is not None and not is_comment:
                code = code.ljust(_COMMENT_COL - 1) + "  # " + self._describe(eqn)
                line_eqn[len(out) + 1] = eqn
            out.append(code)
        out += self._runner()
        source = "\n".join(out) + "\n"
        return Generated(source, line_eqn, parallel, self.plan.check_finite, signature,
                         list(self.callbacks), dict(self.anomaly_eqns), list(self.plan.eqns))


def generate(plan) -> Generated:
    return Emitter(plan).generate()
