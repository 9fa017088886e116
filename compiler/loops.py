"""Loop nests: a fused group (elementwise chain + reductions) as one explicit loop.

Every array is a flat buffer read through a strided `Access`, so a group's accesses are stride
vectors over its loop space; `layout.collapse` merges axes (most loops end up 1-D). A statement is
placed at the shallowest loop level it depends on (a bias read once per row, not per element).
Reductions whose reduced axes are the innermost loops accumulate in a scalar; others accumulate
into their output array. Big loops run with `prange` when Numba can parallelise them safely and
the work pays for the threads.
"""
from __future__ import annotations

from . import layout
from .rules import Reduction, View, np_type

# A loop runs its outermost axis with prange when points x per-point cost reaches this. Measured
# here: the 1e6-element `chain` gradient (~60 ops per point) runs 31 ms serial, 15 ms on 2 threads;
# a 200k-element `p - lr * g` update (memory bound) gains nothing, and parallel=True adds ~1 s of
# compile time, so cheap loops stay serial.
PARALLEL_MIN_WORK = 2_000_000


class Nest:
    """Statements per loop level; level l runs inside loops 0..l-1."""

    def __init__(self, em, shape, parallel=False):
        self.em, self.shape, self.d = em, tuple(shape), len(shape)
        self.eqn = em.eqn          # statements default to the equation being lowered
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

    def at(self, level, text, eqn=...):
        self.body[level].append((text, self.eqn if eqn is ... else eqn))

    def after_loop(self, level, text, eqn=...):
        """After loop `level` finishes (at the indentation of level `level`)."""
        eqn = self.eqn if eqn is ... else eqn
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
    key = em.check_key(k)
    return f"if bad_ > {key} and not np.isfinite({name}): bad_ = {key}"


def _to_space(acc, natural, space):
    """`acc` broadcast to the member's natural shape, then seen over the group's loop space."""
    acc = layout.broadcast(acc, natural)
    return layout.reshape(acc, space)


def _squeeze_axes(natural, values):
    return tuple(v for d, v in zip(natural, values) if d != 1)


def emit_group(em, plan, group):
    S = group.space
    eqns = plan.eqns
    # ---- pass 1: what each member reads, and the stride patterns of everything it touches
    reads, read_keys = [], {}            # [(name, Access over S, comment eqn)]
    used_names = set()
    ops_of = []
    red_patterns, masks = [], []
    for i in group.members:
        e, rule = eqns[i], plan.rules[i]
        natural = plan.natural_shape(i)
        forced = i in plan.view_access
        ops = []
        for a, acc in plan.reads(i):
            if a is not None and a in group.inloop and plan.is_inloop_read(i, a) \
                    and plan.group_of.get(plan.producer.get(a)) is group:
                ops.append(("local", em.sname(a)))
                continue
            if acc.scalar_root:
                ops.append(("scalar", em.scalar_root_text(acc.root)))
                continue
            acc = _to_space(acc, natural, S)
            key = (acc.root, acc.offset, acc.strides)
            rid = read_keys.get(key)
            if rid is None:
                # a read is named after the value it reads (a forced view reads into its output)
                name = em.sname(e.outs[0] if forced else a)
                if name in used_names:
                    name = em.fresh(name)
                used_names.add(name)
                rid = read_keys[key] = len(reads)
                src = i if forced else plan.producer.get(a)
                reads.append((name, acc, src if forced or src in plan.lazy else None))
            ops.append(("read", rid))
        ops_of.append(ops)
        if isinstance(rule, Reduction):
            axes = e.params["axes"]
            ostr = iter(layout.c_strides(e.outs[0].aval.shape))
            mask = tuple(k in axes for k in range(len(natural)))
            pattern = tuple(0 if k in axes else next(ostr) for k in range(len(natural)))
            masks.append(_squeeze_axes(natural, mask))
            red_patterns.append(_squeeze_axes(natural, pattern))
    patterns = [acc.strides for _, acc, _ in reads] + red_patterns + [layout.c_strides(S)]
    shape, pats, msks = layout.collapse(S, patterns, masks)
    n_reads, store_pat = len(reads), pats[-1]

    # ---- parallel or not, and where each reduction accumulates
    cost = sum(eqns[i].prim.loop_cost for i in group.members)
    parallel = (not plan.check_finite and len(shape) > 0
                and layout.size_of(S) * cost >= PARALLEL_MIN_WORK)
    red_info = []
    for (i, m) in zip([i for i in group.members if isinstance(plan.rules[i], Reduction)], msks):
        r = next((k for k in range(len(shape)) if m[k]), len(shape))
        suffix = all(m[k] for k in range(r, len(shape)))
        red_info.append((r, suffix))
        if suffix and r == 0 and len(shape) > 0:
            parallel = parallel and plan.rules[i].parallel_ok
        elif not suffix and m and m[0]:
            parallel = False          # an array accumulator shared across outer iterations
    nest = Nest(em, shape, parallel)

    # ---- pass 2: statements at their levels
    pre, post = [], []           # statements before / after the loop nest
    level_of = {}
    emitted = set()

    def operand(op):
        kind, val = op
        if kind == "scalar":
            return val, 0
        if kind == "local":
            return val, level_of.get(val, 0)
        name, acc, src = reads[val]
        lv = nest.level(pats[val])
        if val not in emitted:
            emitted.add(val)
            nest.at(lv, f"{name} = {em.ref(acc.root, nest.index(acc.offset, pats[val]))}", src)
        level_of[name] = lv
        return name, lv

    red_k = 0
    for i, ops in zip(group.members, ops_of):
        e, rule = eqns[i], plan.rules[i]
        em.eqn = i
        texts, lv = [], 0
        for op in ops:
            t, l = operand(op)
            texts.append(t)
            lv = max(lv, l)
        if isinstance(rule, Reduction):
            _reduction(em, plan, nest, i, rule, texts[0], pats[n_reads + red_k], msks[red_k],
                       red_info[red_k], pre, post)
            red_k += 1
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
            base, off = em.place(out)
            nest.at(nest.d, f"{base}[{nest.index(off, store_pat)}] = {name}", i)

    em.eqn = None
    if len(group.members) > 1 or shape:
        what = f"fused loop over {S}:" if shape else "scalar code:"
        text = what
        for i in group.members:
            item = f"{em.name(eqns[i].outs[0])}={eqns[i].prim.name}"
            if len(text) + len(item) > 90:
                em.comment(text)
                text = "  "
            text += " " + item
        em.comment(text)
    for text, eqn in pre:
        em.line(text, eqn)
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
        base, off = em.place(out)
        idx = nest.index(off, out_pattern[:r] + (0,) * (d - r))
        nest.after_loop(r, f"{base}[{idx}] = {cast(acc)}", i)
    else:
        base, off = em.place(out)
        n = out.aval.size
        tbase, toff = (base, off) if acc_dt == out_dt else em.temp(acc_dt, n)
        if not isinstance(toff, int):
            toff = f"({toff})"
        t = em.fresh("t")
        pre.append((f"for {t} in range({n}):", i))
        pre.append((f"    {tbase}[{_plus(toff, t)}] = {rule.identity(in_dt)}", i))
        idx = f"{tbase}[{nest.index(toff, out_pattern)}]"
        nest.at(d, f"{idx} {inplace}= {value}" if inplace else f"{idx} = {rule.combine(idx, value, in_dt)}", i)
        if (tbase, toff) != (base, off):
            post.append((f"for {t} in range({n}):", i))
            post.append((f"    {base}[{_plus(off, t)}] = {np_type(out_dt)}({tbase}[{_plus(toff, t)}])", i))
    if plan.check_finite and out.aval.is_float:
        post.extend(em.check_buffer_lines((base, off), out.aval.size, i))


def reduce_loop(em, acc, dst, better, init):
    """argmax/argmin of `acc` over its last axis into dst (first occurrence; NaN wins)."""
    base, off = dst
    n = acc.shape[-1]
    if n == 1:
        em.fill(dst, layout.size_of(acc.shape[:-1]), "0")
        return
    ostr = layout.c_strides(acc.shape[:-1]) + (0,)
    mask = (False,) * (len(acc.shape) - 1) + (True,)
    src_strides = acc.strides if not acc.scalar_root else (0,) * len(acc.shape)
    shape, (src, dst_pat), _ = layout.collapse(acc.shape, [src_strides, ostr], [mask])
    nest = Nest(em, shape)
    d = nest.d
    best, at, v = em.fresh("best"), em.fresh("at"), em.fresh("v")
    value = em.scalar_of(acc) if acc.scalar_root else em.ref(acc.root, nest.index(acc.offset, src))
    nest.at(d - 1, f"{best} = {init}")
    nest.at(d - 1, f"{at} = 0")
    nest.at(d, f"{v} = {value}")
    nest.at(d, f"if {v} {better} {best} or ({v} != {v} and {best} == {best}):")
    nest.at(d, f"    {best} = {v}")
    nest.at(d, f"    {at} = {nest.ivars[-1]}")
    nest.after_loop(d - 1, f"{base}[{nest.index(off, dst_pat[:-1] + (0,))}] = {at}")
    nest.render()


def copy_loop(em, src, dst, dst_strides):
    """dst[idx . dst_strides] = src[idx] over src's shape; dst is (array, offset)."""
    if layout.size_of(src.shape) == 0:
        return
    base, off = dst
    patterns = [dst_strides] + ([] if src.scalar_root else [src.strides])
    shape, pats, _ = layout.collapse(src.shape, patterns)
    nest = Nest(em, shape)
    value = em.scalar_root_text(src.root) if src.scalar_root else \
        em.ref(src.root, nest.index(src.offset, pats[1]))
    nest.at(nest.d, f"{base}[{nest.index(off, pats[0])}] = {value}")
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


def _plus(off, index: str) -> str:
    return f"{off} + {index}" if off != 0 else index
