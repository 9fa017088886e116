"""Lowerings of control flow (cond, scan, while, checkpoint): bodies emitted inline, as real loops.

A body is a closed sub-IR (semantics: docs/primitives.md). It gets its own plan (the emitter's
`plan_body`), so it
fuses like any IR, and is emitted at the current indentation with its inputs bound to storage
the caller chose: a loop-invariant operand's buffer, the carry's buffer (the loop equation's own
output storage), the `xs[i]` slice at a run-time offset. Per-iteration outputs (`ys[i]`) are
computed straight into place when they are computed in the body; everything else is copied.
Scalar carries are plain local variables updated with one tuple assignment (safe for swaps).
Under check_finite, a loop stops after the first iteration that produced NaN/Inf, so the report
is the first bad equation as eager mode meets it.
"""
from __future__ import annotations

from tracegrad import primitives as P
from tracegrad.ir import IR, Aval, Lit, Var, format_src

from .. import layout, loops
from ..rules import LOWERINGS, Block


class UnsupportedControlFlow(NotImplementedError):
    """A run-time-sized value used where the compiler cannot size it (see check_run_time_sizes):
    `compile_ir` runs such IRs with the NumPy impls instead (see fallback.py)."""


def check_run_time_sizes(ir):
    """Raise UnsupportedControlFlow unless every value with a run-time length (aval (-1, ...))
    goes straight from the loop that saved it into the xs of a dynamic-length scan: the only
    places the compiler sizes buffers at run time."""
    def bad(v, what):
        return UnsupportedControlFlow(f"a value of run-time length ({v.aval}) {what}")

    def visit(ir):
        for v in ir.inputs + tuple(v for v, _ in ir.consts):
            if layout.run_time_sized(v.aval):
                raise bad(v, "is an input")
        for e in ir.eqns:
            first_x = (1 + e.params["n_consts"] + e.params["n_carry"]
                       if e.prim.name == "scan" and e.params["length"] is None else len(e.inputs))
            for j, a in enumerate(e.inputs):
                if isinstance(a, Var) and layout.run_time_sized(a.aval) and j < first_x:
                    raise bad(a, f"is an operand of {e.prim.name} at {format_src(e.src)}")
            for p in e.params.values():
                for sub in (p if isinstance(p, tuple) else (p,)):
                    if isinstance(sub, IR):
                        visit(sub)
        for a in ir.outputs:
            if isinstance(a, Var) and layout.run_time_sized(a.aval):
                raise bad(a, "is an output")
    visit(ir)


def _key_frame(ctx, i):
    """(base, width) of the anomaly keys of equation i's body: the open interval just below the
    equation's own key, above the previous equation's, since eager mode meets a body's equations
    after the equations before the loop and before the loop's own outputs are checked."""
    base, scale, n = ctx.key_frame
    if scale is None:
        return i - 1.0, 1.0
    width = scale / (n + 1)
    return base + scale * (i + 1) / (n + 1) - width, width


def _bind(ctx, atom_acc, var):
    """Make body input `var` stand for the value read through `atom_acc`."""
    if var.aval.shape == ():
        ctx.line(f"{ctx.sname(var)} = {ctx.scalar_of(atom_acc)}")
        return
    base, off, _ = ctx.flat(atom_acc)
    ctx.storage[var] = (base, off)
    ctx.pinned.add(var)


def _fresh_body(ctx, ir):
    """Forget storage from an earlier emission of the same sub-IR object (a JVP or a recompute
    reuses one body in several loops): its values live elsewhere this time."""
    for e in ir.eqns:
        for v in e.outs:
            ctx.storage.pop(v, None)
            ctx.pinned.discard(v)
    for v in ir.inputs:
        ctx.storage.pop(v, None)
        ctx.pinned.discard(v)


def _emit_body(ctx, ir, eqn_index):
    """Emit sub-IR `ir`; returns its plan (whose output accesses the caller reads)."""
    sub = ctx.plan_body(ir)
    saved = ctx.plan, ctx.key_frame, ctx.eqn
    base, width = _key_frame(ctx, eqn_index)
    ctx.plan, ctx.key_frame = sub, (base, width, len(sub.eqns))
    keep = {sub.access[a].root for a in ir.outputs if isinstance(a, Var)}
    live = ctx.emit_groups(sub, keep)
    ctx.plan, ctx.key_frame, ctx.eqn = saved
    sub.live_outputs = live
    return sub


def _release_body(ctx, sub):
    for v in sub.live_outputs:
        ctx._release(v)


def _direct_ok(sub, atom):
    """Was body output `atom` computed straight into the storage preassigned to it?"""
    acc = sub.access.get(atom)
    return acc is not None and acc.root is atom and atom in sub.producer


def _preassign(ctx, ir, atom, loc, taken):
    """Let body output `atom` be computed straight into `loc` when nothing else can see it there."""
    if (isinstance(atom, Var) and atom.aval.shape != () and atom not in ir.inputs
            and atom not in taken and sum(a is atom for a in ir.outputs) == 1):
        ctx.storage[atom] = loc
        ctx.pinned.add(atom)
        taken.add(atom)


def _store(ctx, sub, atom, target_var, loc):
    """Write body output `atom` into `loc`, the storage of `target_var`'s shape."""
    if isinstance(atom, Var) and _direct_ok(sub, atom) and ctx.storage.get(atom) == loc:
        return
    acc = layout.Access(atom, 0, (), ()) if isinstance(atom, Lit) else sub.access[atom]
    shape = target_var.aval.shape
    if acc.scalar_root and not shape:
        ctx.line(f"{ctx.ref_loc(loc, '0')} = {ctx.scalar_of(acc)}")
        return
    if not acc.scalar_root and ctx.loc(acc.root) == loc and acc.covers_root():
        return
    loops.copy_loop(ctx, layout.broadcast(acc, shape) if acc.scalar_root else acc, loc,
                    layout.c_strides(shape))


def _carries(ctx, inits, in_vars, out_vars):
    """Initial carries: scalars as locals (the body input's name), arrays in the output's storage."""
    for acc, v, o in zip(inits, in_vars, out_vars):
        if v.aval.shape == ():
            ctx.line(f"{ctx.sname(v)} = {ctx.scalar_of(acc)}")
            continue
        loc = ctx.place(o)
        loops.copy_loop(ctx, layout.broadcast(acc, v.aval.shape) if acc.scalar_root else acc, loc,
                        layout.c_strides(v.aval.shape))
        ctx.storage[v] = loc
        ctx.pinned.add(v)


def _update_carries(ctx, sub, outs, in_vars):
    """carry <- body outputs, as if simultaneously."""
    scalars = [(v, a) for v, a in zip(in_vars, outs) if v.aval.shape == ()]
    if scalars:
        texts = [ctx.scalar_of(layout.Access(a, 0, (), ()) if isinstance(a, Lit) else sub.access[a])
                 for _, a in scalars]
        names = [ctx.sname(v) for v, _ in scalars]
        if names != texts:
            ctx.line(f"{', '.join(names)} = {', '.join(texts)}")
    arrays = [(v, a) for v, a in zip(in_vars, outs) if v.aval.shape != ()]
    carry_locs = {ctx.loc(v) for v, _ in arrays}
    staged = []
    for v, a in arrays:
        acc = layout.Access(a, 0, (), ()) if isinstance(a, Lit) else sub.access[a]
        if not acc.scalar_root and ctx.loc(acc.root) in carry_locs and ctx.loc(acc.root) != ctx.loc(v):
            # reads another carry that may be overwritten first: copy it aside
            tmp = ctx.temp_value(v.aval.shape, v.aval.dtype)
            loops.copy_loop(ctx, acc, ctx.loc(tmp), layout.c_strides(v.aval.shape))
            acc = layout.identity(tmp)
        staged.append((v, acc))
    for v, acc in staged:
        if not acc.scalar_root and ctx.loc(acc.root) == ctx.loc(v) and acc.covers_root():
            continue
        loops.copy_loop(ctx, layout.broadcast(acc, v.aval.shape) if acc.scalar_root else acc,
                        ctx.loc(v), layout.c_strides(v.aval.shape))


def _stop_if_anomaly(ctx):
    if ctx.plan.check_finite:
        ctx.line(f"if bad_ != {ctx.none_key}: break")


def _operand_accesses(ctx, eqn):
    return [ctx.access(a) for a in eqn.inputs]


# ---------------------------------------------------------------- scan

def _scan(ctx, eqn):
    p = eqn.params
    body, L, reverse = p["body"], p["length"], p["reverse"]
    nc, nk = p["n_consts"], p["n_carry"]
    i_eqn = ctx.eqn
    accs = _operand_accesses(ctx, eqn)
    trips = L
    if L is None:
        trips, accs = ctx.scalar_of(accs[0]), accs[1:]
        if not trips.isidentifier():         # (a buffer element: read it once)
            n = ctx.fresh("n")
            ctx.line(f"{n} = {trips}")
            trips = n
    b_i, b_consts = body.inputs[0], body.inputs[1:1 + nc]
    b_carry, b_xs = body.inputs[1 + nc:1 + nc + nk], body.inputs[1 + nc + nk:]
    carry_outs, ys_outs = eqn.outs[:nk], eqn.outs[nk:]
    _fresh_body(ctx, body)
    for acc, v in zip(accs[:nc], b_consts):
        _bind(ctx, acc, v)
    _carries(ctx, accs[nc:nc + nk], b_carry, carry_outs)
    xs = [ctx.flat(acc) for acc in accs[nc + nk:]]
    if L is None:
        _check_rows(ctx, trips, accs[nc + nk:], xs)
    ys = [ctx.place(o) if L is not None else ctx.grow(o, trips) for o in ys_outs]
    if L is None or L > 0:
        it = ctx.fresh("it")
        last = L - 1 if L is not None else f"{trips} - 1"
        rng = f"range({last}, -1, -1)" if reverse else f"range({trips})"
        ctx.line(f"for {it} in {rng}:")
        ctx.indent += 1
        ctx.line(f"{ctx.sname(b_i)} = {it}")
        for (base, off, _), v in zip(xs, b_xs):
            slot = layout.add_offset(off, f"{it} * {v.aval.size}" if v.aval.size != 1 else it)
            if v.aval.shape == ():
                ctx.line(f"{ctx.sname(v)} = {base}[{slot}]")
            else:
                ctx.storage[v] = (base, slot)
                ctx.pinned.add(v)
        body_ys = body.outputs[nk:]
        y_slots = []
        taken = set(a for a in body.outputs[:nk] if isinstance(a, Var))
        for a, (base, off), o in zip(body_ys, ys, ys_outs):
            size = layout.size_of(o.aval.shape[1:])
            slot = (base, layout.add_offset(off, f"{it} * {size}" if size != 1 else it))
            y_slots.append(slot)
            _preassign(ctx, body, a, slot, taken)
        sub = _emit_body(ctx, body, i_eqn)
        ctx.eqn = i_eqn
        for a, slot, o in zip(body_ys, y_slots, ys_outs):
            _store(ctx, sub, a, _row(o), slot)
        _update_carries(ctx, sub, body.outputs[:nk], b_carry)
        _release_body(ctx, sub)
        _stop_if_anomaly(ctx)
        ctx.indent -= 1
    for v, o in zip(b_carry, carry_outs):
        if o.aval.shape == ():
            ctx.line(f"{ctx.sname(o)} = {ctx.sname(v)}")


def _check_rows(ctx, trips, accs, xs):
    """A run-time trip count must not run past the rows of the stacked inputs (as the impl)."""
    short = []
    for acc, (base, off, _) in zip(accs, xs):
        rows, row = acc.shape[0], layout.size_of(acc.shape[1:])
        if rows != -1:
            short.append(f"{trips} > {rows}")
        elif row:
            short.append(f"{trips} * {row} > {base}.size - {off}" if off != 0 else
                         f"{trips} * {row} > {base}.size")
    if short:
        ctx.line(f"if {' or '.join(short)}:")
        where = format_src(ctx.plan.eqns[ctx.eqn].src)
        ctx.line(f"    raise ValueError({f'scan at {where}: an xs operand has fewer rows than the trip count'!r})")


def _row(var):
    """A stand-in with the aval of one row of stacked output `var`."""
    return Var(Aval(var.aval.shape[1:], var.aval.dtype))


# ---------------------------------------------------------------- while

def _while(ctx, eqn):
    p = eqn.params
    cond, body = p["cond"], p["body"]
    ncc, nbc = p["n_cond_consts"], p["n_body_consts"]
    i_eqn = ctx.eqn
    nk = len(eqn.inputs) - ncc - nbc
    carry_outs = eqn.outs[:nk]
    accs = _operand_accesses(ctx, eqn)
    c_consts, c_carry = cond.inputs[:ncc], cond.inputs[ncc:]
    b_consts, b_carry = body.inputs[:nbc], body.inputs[nbc:]
    _fresh_body(ctx, cond)
    _fresh_body(ctx, body)
    for acc, v in zip(accs[:ncc], c_consts):
        _bind(ctx, acc, v)
    for acc, v in zip(accs[ncc:ncc + nbc], b_consts):
        _bind(ctx, acc, v)
    _carries(ctx, accs[ncc + nbc:], b_carry, carry_outs)
    if p["record"]:
        # the trip count, and one growable buffer per saved residual (16 rows to start)
        count, ys_outs = eqn.outs[nk], eqn.outs[nk + 1:]
        trips = ctx.sname(count)
        ctx.line(f"{trips} = 0")
        for o in ys_outs:
            ctx.grow(o, f"{trips} + 16")
    for cv, bv in zip(c_carry, b_carry):
        if cv.aval.shape != ():
            ctx.storage[cv] = ctx.loc(bv)
            ctx.pinned.add(cv)
    ctx.line("while True:")
    ctx.indent += 1
    for cv, bv in zip(c_carry, b_carry):
        if cv.aval.shape == ():
            ctx.line(f"{ctx.sname(cv)} = {ctx.sname(bv)}")
    csub = _emit_body(ctx, cond, i_eqn)
    ctx.eqn = i_eqn
    (pred,) = cond.outputs
    pacc = layout.Access(pred, 0, (), ()) if isinstance(pred, Lit) else csub.access[pred]
    ctx.line(f"if not {ctx.scalar_of(pacc)}:")
    ctx.line("    break")
    _release_body(ctx, csub)
    body_ys, y_slots = body.outputs[nk:], []
    if p["record"]:
        taken = set(a for a in body.outputs[:nk] if isinstance(a, Var))
        for a, o in zip(body_ys, ys_outs):
            base, _ = ctx.grow(o, f"{trips} + 1")
            size = layout.size_of(o.aval.shape[1:])
            y_slots.append((base, f"{trips} * {size}" if size != 1 else trips))
            _preassign(ctx, body, a, y_slots[-1], taken)
    sub = _emit_body(ctx, body, i_eqn)
    ctx.eqn = i_eqn
    for a, slot, o in zip(body_ys, y_slots, ys_outs if p["record"] else ()):
        _store(ctx, sub, a, _row(o), slot)
    _update_carries(ctx, sub, body.outputs[:nk], b_carry)
    _release_body(ctx, sub)
    if p["record"]:
        ctx.line(f"{trips} += 1")
    _stop_if_anomaly(ctx)
    ctx.indent -= 1
    for v, o in zip(b_carry, carry_outs):
        if o.aval.shape == ():
            ctx.line(f"{ctx.sname(o)} = {ctx.sname(v)}")


# ---------------------------------------------------------------- cond, checkpoint

def _call(ctx, eqn, ir, accs, i_eqn):
    """Inline `ir` on the operands, its outputs landing in the equation's outputs."""
    _fresh_body(ctx, ir)
    for acc, v in zip(accs, ir.inputs):
        _bind(ctx, acc, v)
    locs = [None if o.aval.shape == () else ctx.place(o) for o in eqn.outs]
    taken = set()
    for a, loc in zip(ir.outputs, locs):
        if loc is not None:
            _preassign(ctx, ir, a, loc, taken)
    sub = _emit_body(ctx, ir, i_eqn)
    ctx.eqn = i_eqn
    for a, o, loc in zip(ir.outputs, eqn.outs, locs):
        if loc is None:
            acc = layout.Access(a, 0, (), ()) if isinstance(a, Lit) else sub.access[a]
            ctx.line(f"{ctx.sname(o)} = {ctx.scalar_of(acc)}")
        else:
            _store(ctx, sub, a, o, loc)
    _release_body(ctx, sub)


def _cond(ctx, eqn):
    i_eqn = ctx.eqn
    accs = _operand_accesses(ctx, eqn)
    false_ir, true_ir = eqn.params["branches"]
    ctx.line(f"if {ctx.scalar_of(accs[0])}:")
    ctx.indent += 1
    _call(ctx, eqn, true_ir, accs[1:], i_eqn)
    ctx.line("pass")
    ctx.indent -= 1
    ctx.line("else:")
    ctx.indent += 1
    _call(ctx, eqn, false_ir, accs[1:], i_eqn)
    ctx.line("pass")
    ctx.indent -= 1


def _checkpoint(ctx, eqn):
    _call(ctx, eqn, eqn.params["body"], _operand_accesses(ctx, eqn), ctx.eqn)


LOWERINGS[P.scan_p] = Block(_scan)
LOWERINGS[P.while_p] = Block(_while)
LOWERINGS[P.cond_p] = Block(_cond)
LOWERINGS[P.checkpoint_p] = Block(_checkpoint)
