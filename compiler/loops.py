"""Loop nests: a fused group (elementwise chain + reductions) as one explicit loop.

Every array is a flat buffer read through a strided `Access`, so a group's accesses are stride
vectors over its loop space; `layout.collapse` merges axes (most loops end up 1-D). A statement is
placed at the shallowest loop level it depends on (a bias read once per row, not per element).
Reductions whose reduced axes are the innermost loops accumulate in a scalar; others accumulate
into their output array. Big loops run with `prange` when Numba can parallelise them safely.
"""
from __future__ import annotations

import numpy as np

from . import layout
from .lowering import Reduction, View, np_type

# A loop of at least this many points runs its outermost axis with prange (2+ threads). Below it,
# thread start-up costs more than it saves (measured: 1e6-element chain 31 ms serial, 15 ms on 2
# threads; a 10k-element loop gains nothing).
PARALLEL_MIN_ELEMENTS = 100_000


class Nest:
    """Statements per loop level; level l runs inside loops 0..l-1."""

    def __init__(self, em, shape, parallel=False):
        self.em, self.shape, self.d = em, tuple(shape), len(shape)
        self.ivars = [em.fresh("i") for _ in self.shape]
        self.body = [[] for _ in range(self.d + 1)]
        self.after = [[] for _ in range(self.d)]
        self.parallel = parallel and self.d > 0

    def index(self, offset, strides) -> str:
        text = str(offset) if offset else ""
        for iv, s in zip(self.ivars, strides):
            if s == 0:
                continue
            term = iv if abs(s) == 1 else f"{iv} * {abs(s)}"
            if not text:
                text = term if s > 0 else f"-{term}"
            else:
                text += f" + {term}" if s > 0 else f" - {term}"
        return text or "0"

    def level(self, strides) -> int:
        for k in range(len(strides) - 1, -1, -1):
            if strides[k] != 0:
                return k + 1
        return 0

    def at(self, level, text, eqn=None):
        self.body[level].append((text, eqn))

    def after_loop(self, level, text, eqn=None):
        """After loop `level` finishes (at the indentation of level `level`)."""
        if level == self.d:
            self.body[level].append((text, eqn))
        else:
            self.after[level].append((text, eqn))

    def render(self):
        em = self.em

        def go(l):
            for text, eqn in self.body[l]:
                em.line(text, eqn)
            if l < self.d:
                rng = "prange" if self.parallel and l == 0 else "range"
                em.line(f"for {self.ivars[l]} in {rng}({self.shape[l]}):", None)
                em.indent += 1
                go(l + 1)
                em.indent -= 1
                for text, eqn in self.after[l]:
                    em.line(text, eqn)
        if self.parallel:
            em.uses_prange = True
        go(0)


def check_line(em, name, k) -> str:
    return f"if bad_ > {k} and not np.isfinite({name}): bad_ = {k}"


def emit_group(em, plan, group):
    S = group.space
    eqns = plan.eqns
    # ---- pass 1: what each member reads, what is stored, what is reduced (strides over S)
    reads, read_keys = [], {}            # [(name, Access, comment eqn)], key -> read id
    used_names = set()
    plans = []
    red_patterns, masks = [], []
    for i in group.members:
        e, rule = eqns[i], plan.rules[i]
        ops = []
        forced = i in plan.view_access
        sources = [(None, plan.view_access[i])] if forced else [(a, None) for a in e.inputs]
        for j, (a, acc) in enumerate(sources):
            if acc is None:
                if a in group.inloop and plan.group_of.get(plan.producer.get(a)) is group:
                    ops.append(("local", em.sname(a)))
                    continue
                acc = plan.operand_access(i, j)
            if acc.scalar_root:
                ops.append(("scalar", em.scalar_root_text(acc.root)))
                continue
            acc = layout.broadcast(acc, S)
            key = (acc.root, acc.offset, acc.strides)
            rid = read_keys.get(key)
            if rid is None:
                # a read is named after the value it reads (a forced view reads straight into its output)
                name = em.sname(e.outs[0] if forced else a)
                if name in used_names:
                    name = em.fresh(name)
                used_names.add(name)
                rid = read_keys[key] = len(reads)
                src = i if forced else plan.producer.get(a)
                reads.append((name, acc, src if forced or src in plan.lazy else None))
            ops.append(("read", rid))
        plans.append(ops)
        if isinstance(rule, Reduction):
            axes = e.params["axes"]
            out = e.outs[0]
            ostr = iter(layout.c_strides(out.aval.shape))
            masks.append(tuple(k in axes for k in range(len(S))))
            red_patterns.append(tuple(0 if k in axes else next(ostr) for k in range(len(S))))
    n_reads = len(reads)
    patterns = [acc.strides for _, acc, _ in reads] + red_patterns + [layout.c_strides(S)]
    store_pattern = len(patterns) - 1
    shape, pats, msks = layout.collapse(S, patterns, masks)

    # ---- pass 2: statements at their levels
    parallel = (not plan.check_finite and layout.size_of(S) >= PARALLEL_MIN_ELEMENTS and len(shape) > 0)
    red_i = 0
    red_info = []
    for i in group.members:
        if isinstance(plan.rules[i], Reduction):
            m = msks[red_i]
            r = next((k for k in range(len(shape)) if m[k]), len(shape))
            suffix = all(m[k] for k in range(r, len(shape)))
            red_info.append((r, suffix))
            if suffix and r == 0 and len(shape) > 0:
                parallel = parallel and plan.rules[i].parallel_ok
            elif not suffix and m and m[0]:
                parallel = False
            red_i += 1
    nest = Nest(em, shape, parallel)
    pre = []                                   # allocations before the loop: (text, eqn)
    post = []                                  # after the loop
    level_of = {}                              # local name -> level
    emitted_reads = set()

    def operand(op):
        kind, val = op
        if kind == "scalar":
            return val, 0
        if kind == "local":
            return val, level_of.get(val, 0)
        name, acc, src = reads[val]
        strides = pats[val]
        lv = nest.level(strides)
        if val not in emitted_reads:
            emitted_reads.add(val)
            nest.at(lv, f"{name} = {em.buf(acc.root)}[{nest.index(acc.offset, strides)}]", src)
        level_of[name] = lv
        return name, lv

    store_idx = nest.index(0, pats[store_pattern])
    red_i = 0
    for i, ops in zip(group.members, plans):
        e, rule = eqns[i], plan.rules[i]
        em.eqn = i
        texts, lv = [], 0
        for op in ops:
            t, l = operand(op)
            texts.append(t)
            lv = max(lv, l)
        if isinstance(rule, Reduction):
            _reduction(em, plan, nest, i, rule, texts[0], pats[n_reads + red_i], msks[red_i],
                       red_info[red_i], pre, post)
            red_i += 1
            continue
        (out,) = e.outs
        name = em.sname(out)
        expr = texts[0] if isinstance(rule, View) else \
            rule.fn(texts, [a.aval for a in e.inputs], out.aval, **e.params)
        if expr != name:
            nest.at(lv, f"{name} = {_strip_parens(expr)}", i)
        level_of[name] = lv
        if plan.check_finite and out.aval.is_float:
            nest.at(lv, check_line(em, name, i), i)
        if out in plan.stored:
            buf = em.new_buffer(out, emit=False)
            pre.append((f"{buf} = np.empty({out.aval.size}, {np_type(out.aval.dtype)})", i))
            nest.at(nest.d, f"{buf}[{store_idx}] = {name}", i)

    em.eqn = None
    for text, eqn in pre:
        em.line(text, eqn)
    if len(group.members) > 1 or shape:
        what = f"fused loop over {S}:" if shape else "scalar code:"
        items = [f"{em.names[eqns[i].outs[0]]}={eqns[i].prim.name}" for i in group.members]
        text = what
        for item in items:
            if len(text) + len(item) > 90:
                em.comment(text)
                text = "  "
            text += " " + item
        em.comment(text)
    nest.render()
    for text, eqn in post:
        em.line(text, eqn)


def _reduction(em, plan, nest, i, rule, value, out_pattern, mask, info, pre, post):
    e = plan.eqns[i]
    (out,) = e.outs
    in_dt, out_dt = e.inputs[0].aval.dtype, out.aval.dtype
    acc_dt = rule.acc_dtype(in_dt)
    r, suffix = info
    d = nest.d
    inplace = {"reduce_sum": "+", "reduce_prod": "*"}.get(e.prim.name) if in_dt.kind != "b" else None

    def cast(x):
        return x if acc_dt == out_dt else f"{np_type(out_dt)}({x})"

    if suffix:
        acc = em.fresh("acc")
        nest.at(r, f"{acc} = {rule.identity(in_dt)}", i)
        step = f"{acc} {inplace}= {value}" if inplace else f"{acc} = {rule.combine(acc, value, in_dt)}"
        nest.at(d, step, i)
        if out.aval.shape == ():
            name = em.sname(out)
            nest.after_loop(r, f"{name} = {cast(acc)}", i)
            if plan.check_finite and out.aval.is_float:
                nest.after_loop(r, check_line(em, name, i), i)
            return
        buf = em.new_buffer(out, emit=False)
        pre.append((f"{buf} = np.empty({out.aval.size}, {np_type(out_dt)})", i))
        nest.after_loop(r, f"{buf}[{nest.index(0, out_pattern[:r] + (0,) * (d - r))}] = {cast(acc)}", i)
    else:
        buf = em.new_buffer(out, emit=False)
        n = out.aval.size
        pre.append((f"{buf} = np.empty({n}, {np_type(out_dt)})", i))
        target = buf
        if acc_dt != out_dt:
            target = em.fresh(buf)
            pre.append((f"{target} = np.empty({n}, {np_type(acc_dt)})", i))
        t = em.fresh("t")
        pre.append((f"for {t} in range({n}):", i))
        pre.append((f"    {target}[{t}] = {rule.identity(in_dt)}", i))
        idx = nest.index(0, out_pattern)
        if inplace:
            nest.at(d, f"{target}[{idx}] {inplace}= {value}", i)
        else:
            nest.at(d, f"{target}[{idx}] = {rule.combine(f'{target}[{idx}]', value, in_dt)}", i)
        if target != buf:
            post.append((f"for {t} in range({n}):", i))
            post.append((f"    {buf}[{t}] = {np_type(out_dt)}({target}[{t}])", i))
    if plan.check_finite and out.aval.is_float:
        em.eqn = i
        post.extend(em.check_buffer_lines(buf, out.aval.size, i))


def reduce_loop(em, acc, out_buf, better, init):
    """argmax/argmin of `acc` over its last axis into `out_buf` (first occurrence; NaN wins)."""
    n = acc.shape[-1]
    if n == 1:
        em.fill(out_buf, layout.size_of(acc.shape[:-1]), "0")
        return
    ostr = layout.c_strides(acc.shape[:-1]) + (0,)
    mask = (False,) * (len(acc.shape) - 1) + (True,)
    shape, (src, dst), _ = layout.collapse(acc.shape, [acc.strides, ostr], [mask])
    nest = Nest(em, shape)
    d = nest.d
    best, at = em.fresh("best"), em.fresh("at")
    v = em.fresh("v")
    nest.at(d - 1, f"{best} = {init}")
    nest.at(d - 1, f"{at} = 0")
    nest.at(d, f"{v} = {em.buf(acc.root)}[{nest.index(acc.offset, src)}]")
    nest.at(d, f"if {v} {better} {best} or ({v} != {v} and {best} == {best}):")
    nest.at(d, f"    {best} = {v}")
    nest.at(d, f"    {at} = {nest.ivars[-1]}")
    nest.after_loop(d - 1, f"{out_buf}[{nest.index(0, dst[:-1] + (0,))}] = {at}")
    nest.render()


def copy_loop(em, src, dst, dst_offset, dst_strides):
    """dst[dst_offset + idx . dst_strides] = src[idx] over src's shape."""
    if layout.size_of(src.shape) == 0:
        return
    patterns = [dst_strides] + ([] if src.scalar_root else [src.strides])
    shape, pats, _ = layout.collapse(src.shape, patterns)
    nest = Nest(em, shape)
    value = em.scalar_root_text(src.root) if src.scalar_root else \
        f"{em.buf(src.root)}[{nest.index(src.offset, pats[1])}]"
    nest.at(nest.d, f"{dst}[{nest.index(dst_offset, pats[0])}] = {value}")
    nest.render()



def _strip_parens(expr: str) -> str:
    """`(a * b)` -> `a * b` when the parentheses enclose the whole expression."""
    if not (expr.startswith("(") and expr.endswith(")")):
        return expr
    depth = 0
    for k, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(expr) - 1:
            return expr
    return expr[1:-1]
