"""gather and scatter as loops over the index batch (their index arithmetic is static; traced indices
are bounds-checked and wrapped per element); slice_start as CPython's slice adjustment per bound
pair, raising the impl's IndexError."""
from __future__ import annotations


from tracegrad import primitives as P
from tracegrad.errors import slice_length_message

from .. import layout, loops
from ..rules import LOWERINGS, Block, wrap_int

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
            return f"{target} = " + wrap_int(dt, f"{target} {op} {u}")

        _rest_loop(ctx, rest, layout.c_strides(rest), _rest_strides(out.aval.shape, axes), stmt)

    _index_loop(ctx, idx, out.aval.shape, axes, body)


def _slice_start(ctx, eqn):
    start, stop = eqn.inputs
    (out,) = eqn.outs
    size, length, step = eqn.params["size"], eqn.params["length"], eqn.params["step"]
    axis, src = eqn.params["axis"], eqn.params["src"]
    ob, oo = ctx.new_buffer(out)
    n = out.aval.size
    if n == 0:
        return
    g = ctx.fresh("g")
    if n == 1:
        bound = [lambda a=a: ctx.scalar(a) for a in (start, stop)]
    else:
        flats = [ctx.flat(ctx.access(a)) for a in (start, stop)]
        bound = [lambda buf=buf, off=off: f"{buf}[{_sum(off, g)}]" for buf, off, _ in flats]
        ctx.line(f"for {g} in range({n}):")
        ctx.indent += 1
    s, e, a, b, k = (ctx.fresh(c) for c in "seabk")
    ctx.line(f"{s} = {bound[0]()}")
    ctx.line(f"{e} = {bound[1]()}")
    lo, hi = (-1, size - 1) if step < 0 else (0, size)
    for raw, adj in ((s, a), (e, b)):        # CPython's PySlice_AdjustIndices
        ctx.line(f"{adj} = min(max({raw} + {size} if {raw} < 0 else {raw}, {lo}), {hi})")
    if step == 1:
        ctx.line(f"{k} = {b} - {a} if {b} > {a} else 0")
    elif step > 0:
        ctx.line(f"{k} = ({b} - {a} - 1) // {step} + 1 if {b} > {a} else 0")
    else:
        ctx.line(f"{k} = ({a} - {b} - 1) // {-step} + 1 if {a} > {b} else 0")
    # the impl's message (tracegrad.errors.slice_length_message), built at run time
    text = slice_length_message("\0", "\1", "\2", size=size, length=length, step=step, axis=axis, src=src)
    pieces = text.replace("\1", "\0").replace("\2", "\0").split("\0")
    msg = " + ".join(f"{p!r} + str({v})" for p, v in zip(pieces, (s, e, k))) + f" + {pieces[-1]!r}"
    ctx.line(f"if {k} != {length}:")
    ctx.line(f"    raise IndexError({msg})")
    ctx.line(f"{ob}[{_sum(oo, g if n > 1 else '')}] = {a}")
    if n > 1:
        ctx.indent -= 1


LOWERINGS[P.gather_p] = Block(_gather)
LOWERINGS[P.scatter_p] = Block(_scatter)
LOWERINGS[P.slice_start_p] = Block(_slice_start)
