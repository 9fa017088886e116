"""Lowerings of the extended primitives (semantics: docs/primitives.md).

gather, scatter and linear_recurrence are emitted as loops (their index arithmetic is static);
sort, lu, triangular_solve and cholesky call the cached helpers in `kernels.py`; eigh and svd call
NumPy through Numba's object mode, since they must match `np.linalg` bit for bit (LAPACK's sign
choices); `callback` (tg.pure_callback) runs the user's Python the same way. All register into
the one table, `lowering.LOWERINGS`, by primitive name.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import Lit

from . import layout
from . import loops  # (a module reference: loops imports lowering, which imports this)
from .lowering import LOWERINGS, Block, _flag, _int, lit, np_type


def _wrap_int(dt, expr):
    if dt.kind in "iu" and dt.itemsize < 8:
        return f"{np_type(dt)}({expr})"
    return expr


# ---------------------------------------------------------------- gather / scatter

def _index_loop(ctx, idx, x_shape, axes, body):
    """For each index tuple (a loop over the index batch): its checked, wrapped element offset
    `p` into a C-ordered array of `x_shape`; then body(p, g, nb) emits the per-tuple statements
    (g: the batch position as text)."""
    k = len(axes)
    nb = layout.size_of(idx.aval.shape[:-1])
    ib, io, _ = ctx.flat(ctx.access(idx))
    xstr = layout.c_strides(x_shape)
    g, p = ctx.fresh("g"), ctx.fresh("p")
    gi = g if nb > 1 else "0"
    if nb > 1:
        ctx.line(f"for {g} in range({nb}):")
        ctx.indent += 1
    ctx.line(f"{p} = 0")
    for j, a in enumerate(axes):
        d = x_shape[a]
        t, u = ctx.fresh("t"), ctx.fresh("u")
        at = _sum(f"{g} * {k}" if nb > 1 and k > 1 else (g if nb > 1 else ""), layout.add_offset(io, j))
        ctx.line(f"{t} = {ib}[{at}]")
        ctx.line(f"{u} = {t} + {d} if {t} < 0 else {t}")
        ctx.line(f"if {u} < 0 or {u} >= {d}:")
        ctx.line(f"    raise IndexError('index ' + str({t}) + ' is out of bounds for axis {a} with size {d}')")
        ctx.line(f"{p} += {u} * {xstr[a]}" if xstr[a] != 1 else f"{p} += {u}")
    body(p, gi, nb)
    if nb > 1:
        ctx.indent -= 1


def _sum(*terms) -> str:
    """`a + b + ...` without zero terms."""
    kept = [str(t) for t in terms if str(t) not in ("", "0")]
    return " + ".join(kept) or "0"


def _rest(shape, axes):
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _rest_strides(shape, axes):
    st = layout.c_strides(shape)
    return tuple(s for i, s in enumerate(st) if i not in axes)


def _rest_loop(ctx, rest, strides_a, strides_b, stmt):
    """A nest over the non-indexed axes; stmt(index_a, index_b) is the statement at its core."""
    shape, (pa, pb), _ = layout.collapse(rest, [strides_a, strides_b])
    nest = loops.Nest(ctx, shape)
    nest.at(nest.d, stmt(nest.index(0, pa), nest.index(0, pb)))
    nest.render()


def _gather(ctx, eqn):
    x, idx = eqn.inputs
    (out,) = eqn.outs
    axes = eqn.params["axes"]
    ob, oo = ctx.new_buffer(out)
    if out.aval.size == 0:
        return
    rest = _rest(x.aval.shape, axes)
    nr = layout.size_of(rest)
    xb, xo, _ = ctx.flat(ctx.access(x))

    def body(p, g, nb):
        dst = _sum(oo, f"{g} * {nr}" if nb > 1 else "")
        _rest_loop(ctx, rest, layout.c_strides(rest), _rest_strides(x.aval.shape, axes),
                   lambda i, j: f"{ob}[{_sum(dst, i)}] = {xb}[{_sum(xo, p, j)}]")

    _index_loop(ctx, idx, x.aval.shape, axes, body)


def _scatter(ctx, eqn):
    operand, idx, updates = eqn.inputs
    (out,) = eqn.outs
    axes, mode = eqn.params["axes"], eqn.params["mode"]
    dt = out.aval.dtype
    ob, oo = ctx.new_buffer(out)
    ctx.copy(ctx.access(operand), (ob, oo), 0, layout.c_strides(out.aval.shape))
    if updates.aval.size == 0:
        return
    rest = _rest(out.aval.shape, axes)
    nr = layout.size_of(rest)
    ub, uo, _ = ctx.flat(ctx.access(updates))

    def body(p, g, nb):
        ubase = _sum(uo, f"{g} * {nr}" if nb > 1 else "")

        def stmt(i, j):
            target, u = f"{ob}[{_sum(oo, p, j)}]", f"{ub}[{_sum(ubase, i)}]"
            if mode == "set":
                return f"{target} = {u}"
            if dt.kind == "b":
                return f"{target} = {target} {'|' if mode == 'add' else '&'} {u}"
            op = "+" if mode == "add" else "*"
            return f"{target} = " + _wrap_int(dt, f"{target} {op} {u}")

        _rest_loop(ctx, rest, layout.c_strides(rest), _rest_strides(out.aval.shape, axes), stmt)

    _index_loop(ctx, idx, out.aval.shape, axes, body)


# ---------------------------------------------------------------- linear_recurrence

def _linear_recurrence(ctx, eqn):
    a, b = eqn.inputs
    (out,) = eqn.outs
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    dt = out.aval.dtype
    ob, oo = ctx.new_buffer(out)
    shape = out.aval.shape
    n = shape[axis]
    if out.aval.size == 0:
        return
    if n == 1:
        ctx.copy(ctx.access(b), (ob, oo), 0, layout.c_strides(shape))
        return
    last = len(shape) - 1
    perm = tuple(i for i in range(len(shape)) if i != axis) + (axis,)

    def along(acc):      # the recurrence axis last, walked in visiting order
        acc = layout.transpose(acc, perm)
        return layout.rev(acc, (last,)) if reverse else acc

    bacc, oacc = along(ctx.access(b)), along(layout.identity(out))
    pats = [bacc.strides, oacc.strides]
    a_acc = ctx.access(a)
    if a_acc.scalar_root:
        a_text = ctx.scalar_of(a_acc)
        unit = isinstance(a_acc.root, Lit) and a_acc.root.value == 1
    else:
        a_acc = along(a_acc)
        pats.append(a_acc.strides)
    mask = (False,) * last + (True,)
    cshape, cpats, _ = layout.collapse(bacc.shape, pats, [mask])
    nest = loops.Nest(ctx, cshape)
    d = nest.d
    y, bv, av = ctx.fresh("y"), ctx.fresh("bv"), ctx.fresh("av")
    nest.at(d - 1, f"{y} = {lit(0, dt)}")
    nest.at(d, f"{bv} = {ctx.read(bacc, nest.index(bacc.offset, cpats[0]))}")
    if not a_acc.scalar_root:
        # a at the first visited position is never used (so an inf/nan there cannot leak)
        nest.at(d, f"{av} = {ctx.read(a_acc, nest.index(a_acc.offset, cpats[2]))}")
        step = f"{av} * {y} + {bv}"
    else:
        step = f"{y} + {bv}" if unit else f"{a_text} * {y} + {bv}"
    nest.at(d, f"{y} = {bv} if {nest.ivars[-1]} == 0 else {_wrap_int(dt, step)}")
    nest.at(d, f"{ob}[{nest.index(layout.add_offset(oo, oacc.offset), cpats[1])}] = {y}")
    nest.render()


# ---------------------------------------------------------------- sort

def _sort(ctx, eqn):
    (x,) = eqn.inputs
    vals, perm = eqn.outs
    axis = eqn.params["axis"]
    shape = x.aval.shape
    n = shape[axis]
    rows = layout.size_of(shape) // n if n else 0
    vb, vo = ctx.new_buffer(vals)
    pb, po = ctx.new_buffer(perm)
    if x.aval.size == 0:
        return
    order = tuple(i for i in range(len(shape)) if i != axis) + (axis,)
    xb, xo, _ = ctx.flat(layout.transpose(ctx.access(x), order))
    ctx.kernels.add("sort_rows")
    if axis == len(shape) - 1:
        ctx.line(f"sort_rows({xb}, {_int(xo)}, {_int(rows)}, {_int(n)}, {vb}, {_int(vo)}, "
                 f"{pb}, {_int(po)})")
        return
    # sorted rows in (others..., axis) order, then back to the outputs' layout
    tshape = tuple(shape[i] for i in order)
    tv, tp = ctx.temp_value(tshape, x.aval.dtype), ctx.temp_value(tshape, np.int64)
    (tvb, tvo), (tpb, tpo) = ctx.loc(tv), ctx.loc(tp)
    ctx.line(f"sort_rows({xb}, {_int(xo)}, {_int(rows)}, {_int(n)}, {tvb}, {_int(tvo)}, "
             f"{tpb}, {_int(tpo)})")
    inv = tuple(order.index(i) for i in range(len(order)))
    for t, dst in ((tv, (vb, vo)), (tp, (pb, po))):
        ctx.copy(layout.transpose(layout.identity(t), inv), dst, 0, layout.c_strides(shape))


# ---------------------------------------------------------------- linear algebra helpers

def _blocks(ctx, atom):
    base, off, _ = ctx.flat(ctx.access(atom))
    return base, off


def _lu(ctx, eqn):
    (a,) = eqn.inputs
    lu, piv, perm = eqn.outs
    n = a.aval.shape[-1]
    nb = layout.size_of(a.aval.shape[:-2])
    outs = [ctx.new_buffer(v) for v in (lu, piv, perm)]
    if a.aval.size == 0:
        return
    ab, ao = _blocks(ctx, a)
    (lb, lo), (pb, po), (qb, qo) = outs
    ctx.kernels.add("lu_factor")
    ctx.line(f"lu_factor({ab}, {_int(ao)}, {_int(nb)}, {_int(n)}, {lb}, {_int(lo)}, {pb}, {_int(po)}, "
             f"{qb}, {_int(qo)})")


def _triangular_solve(ctx, eqn):
    a, b = eqn.inputs
    (x,) = eqn.outs
    p = eqn.params
    n, m = b.aval.shape[-2], b.aval.shape[-1]
    nb = layout.size_of(a.aval.shape[:-2])
    xb, xo = ctx.new_buffer(x)
    if x.aval.size == 0 and n == 0:
        return
    ab, ao = _blocks(ctx, a)
    bb, bo = _blocks(ctx, b)
    ctx.kernels.add("tri_solve")
    ctx.line(f"tri_solve({ab}, {_int(ao)}, {bb}, {_int(bo)}, {xb}, {_int(xo)}, {_int(nb)}, {_int(n)}, "
             f"{_int(m)}, {_flag(p['lower'])}, {_flag(p['transpose_a'])}, {_flag(p['unit_diagonal'])})")


def _cholesky(ctx, eqn):
    (a,) = eqn.inputs
    (out,) = eqn.outs
    n = a.aval.shape[-1]
    nb = layout.size_of(a.aval.shape[:-2])
    lb, lo = ctx.new_buffer(out)
    if a.aval.size == 0:
        return
    ab, ao = _blocks(ctx, a)
    ctx.kernels.add("cholesky")
    ctx.line(f"cholesky({ab}, {_int(ao)}, {lb}, {_int(lo)}, {_int(nb)}, {_int(n)})")


def _numpy_call(what, **kw):
    """Through object mode: NumPy itself computes, into the outputs' storage."""
    def rule(ctx, eqn):
        ins = []
        for v in eqn.inputs:
            base, off, _ = ctx.flat(ctx.access(v))
            ins.append(ctx.view_text(base, off, v.aval.shape))
        outs = []
        for v in eqn.outs:
            base, off = ctx.new_buffer(v)
            outs.append(ctx.view_text(base, off, v.aval.shape))
        params = "".join(f", {k}={eqn.params[k]!r}" for k in kw)
        ctx.line("with objmode():")
        ctx.line(f"    _numpy_call({what!r}, ({', '.join(ins)},), ({', '.join(outs)},){params})")
        ctx.uses_objmode = True
        ctx.helpers.add("_numpy_call")
    return Block(rule)


def _callback(ctx, eqn):
    ins = []
    for v in eqn.inputs:
        acc = ctx.access(v)
        if v.aval.shape == ():
            ins.append(f"np.asarray({ctx.scalar_of(acc)}, {np_type(v.aval.dtype)})")
        else:
            base, off, _ = ctx.flat(acc)
            ins.append(ctx.view_text(base, off, v.aval.shape))
    outs = []
    for v in eqn.outs:
        base, off = ctx.new_buffer(v)
        outs.append(ctx.view_text(base, off, v.aval.shape if v.aval.shape else (1,)))
    k = ctx.callback_slot(eqn.params["callback"])
    ctx.line("with objmode():")
    ctx.line(f"    _callback(callbacks_, {k}, ({''.join(s + ', ' for s in ins)}), "
             f"({''.join(s + ', ' for s in outs)}))")
    ctx.uses_objmode = True
    ctx.helpers.add("_callback")


LOWERINGS["gather"] = Block(_gather)
LOWERINGS["scatter"] = Block(_scatter)
LOWERINGS["linear_recurrence"] = Block(_linear_recurrence)
LOWERINGS["sort"] = Block(_sort)
LOWERINGS["lu"] = Block(_lu)
LOWERINGS["triangular_solve"] = Block(_triangular_solve)
LOWERINGS["cholesky"] = Block(_cholesky)
LOWERINGS["eigh"] = _numpy_call("eigh")
LOWERINGS["svd"] = _numpy_call("svd", full_matrices=True)
LOWERINGS["callback"] = Block(_callback)
