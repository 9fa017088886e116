"""Planning: which equations become one loop, which values need a real array, in what order.

Each equation is classified by its lowering rule:
  view    emits no code: its output is an `Access` (a strided map) into its input's buffer,
          unless it must exist as an array ("forced": an IR output that is not a plain reshape,
          a reshape of a non-contiguous view, or under check_finite a view of values no equation
          checked);
  loop    elementwise, reduction or forced view: a member of a loop group. Its loop space is its
          output shape (a reduction's: its input shape) with size-1 axes dropped, since flat
          buffers do not see them;
  block   everything else (dot_general, pad, ...): statements of its own.
Groups start as single equations and merge along producer->consumer edges when the consumer reads
the producer's value at the same point ("in-loop"), every edge between the two groups is such an
edge, and no other path joins them (which would make a cycle). So an elementwise chain and the
reductions consuming it become one loop, forward and backward. Then independent groups over the
same space merge too (sibling fusion: fewer loops to compile and run). An in-loop value is stored
to a buffer only when something outside its group, or the caller, needs it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from tracegrad import primitives as P
from tracegrad.ir import Eqn, Lit, Var

from . import layout
from .rules import Block, Reduction, View, lowering


def squeeze(shape) -> tuple:
    return tuple(d for d in shape if d != 1)


@dataclass(eq=False)
class Group:
    kind: str                          # "loop" or "block"
    space: tuple | None                # loop shape, size-1 axes dropped (None for a block)
    members: list = field(default_factory=list)   # equation indices, in IR order
    inloop: set = field(default_factory=set)      # Vars computed per loop point


class Plan:
    def __init__(self, ir, check_finite: bool):
        self.ir = ir
        self.eqns = swap_transposed_products(ir)
        self.check_finite = check_finite
        self.rules = [lowering(e.prim) for e in self.eqns]
        self.producer: dict = {}          # Var -> equation index
        self.access: dict = {}            # Var -> Access consumers read it through
        self.lazy: set = set()            # view equations that emit no code
        self.view_access: dict = {}       # forced view index -> Access of its output
        self.operands: dict = {}          # (eqn index, operand index) -> Access used
        self.outputs = [a for a in ir.outputs if isinstance(a, Var)]
        self.inputs = set(ir.inputs) | {v for v, _ in ir.consts}
        for v in self.inputs:
            self.access[v] = layout.identity(v)
        self._resolve_views()
        self.groups = self._fuse()
        self.group_of = {i: g for g in self.groups for i in g.members}
        self.stored = self._stored()
        self.last_use = self._last_use()

    # ------------------------------------------------------------ views

    def access_of(self, a):
        if isinstance(a, Lit):
            return layout.Access(a, 0, (), ())
        return self.access[a]

    def _resolve_views(self):
        outputs = set(self.outputs)
        for i, e in enumerate(self.eqns):
            for v in e.outs:
                self.producer[v] = i
            rule = self.rules[i]
            if not isinstance(rule, View):
                for j, a in enumerate(e.inputs):
                    if isinstance(a, Var) and self._is_lazy_var(a):
                        self.operands[(i, j)] = self.access[a]
                for v in e.outs:
                    self.access[v] = layout.identity(v)
                continue
            (x,), (out,) = e.inputs, e.outs
            acc = rule.fn(self.access_of(x), [x.aval], out.aval, **e.params)
            if acc is None:
                # not a strided view of what x reads: x becomes a real array first
                self._force(self.producer[x])
                acc = rule.fn(self.access_of(x), [x.aval], out.aval, **e.params)
            root_is_eqn = isinstance(acc.root, Var) and acc.root in self.producer
            if out in outputs:
                # a reshape of a computed value is that value written straight into the output
                force = not (acc.covers_root() and root_is_eqn and acc.root not in outputs)
            else:
                force = self.check_finite and not root_is_eqn
            self.access[out] = acc
            self.lazy.add(i)
            if force:
                self._force(i)

    def _is_lazy_var(self, v) -> bool:
        p = self.producer.get(v)
        return p is not None and p in self.lazy

    def _force(self, i):
        """Make lazy view `i` a loop member that writes its output."""
        (out,) = self.eqns[i].outs
        self.view_access[i] = self.access[out]
        self.access[out] = layout.identity(out)
        self.lazy.discard(i)

    def kind(self, i) -> str:
        if i in self.lazy:
            return "lazy"
        if isinstance(self.rules[i], Block):
            return "block"
        return "loop"

    def natural_shape(self, i) -> tuple:
        """The shape a loop member iterates over (a reduction: its input's)."""
        e = self.eqns[i]
        if isinstance(self.rules[i], Reduction):
            return e.inputs[0].aval.shape
        return e.outs[0].aval.shape

    def space(self, i) -> tuple:
        return squeeze(self.natural_shape(i))

    def operand_access(self, i, j):
        """How equation i reads its operand j (through any lazy views)."""
        a = self.eqns[i].inputs[j]
        hit = self.operands.get((i, j))
        return hit if hit is not None else self.access_of(a)

    def reads(self, i) -> list:
        """(operand atom or None, Access) for each value equation i reads."""
        if i in self.view_access:
            return [(None, self.view_access[i])]
        return [(a, self.operand_access(i, j)) for j, a in enumerate(self.eqns[i].inputs)]

    def is_inloop_read(self, i, a) -> bool:
        """Does loop member i read atom `a` at its own loop point, from a loop producer?"""
        if not isinstance(a, Var) or self.kind(i) != "loop" or i in self.view_access:
            return False
        p = self.producer.get(a)
        if p is None or self.kind(p) != "loop" or isinstance(self.rules[p], Reduction):
            return False
        # same number of elements as the point set: broadcasting added no axis (flat index agrees)
        return (a.aval.size == layout.size_of(self.natural_shape(i))
                and self.space(i) == self.space(p))

    # ------------------------------------------------------------ grouping

    def _deps(self, i):
        """(producer index, in-loop?) for each value equation i reads."""
        out = []
        for a, acc in self.reads(i):
            root = acc.root
            if not isinstance(root, Var) or root not in self.producer:
                continue
            out.append((self.producer[root], root is a and self.is_inloop_read(i, a)))
        return out

    def _fuse(self):
        nodes = [i for i in range(len(self.eqns)) if i not in self.lazy]
        parent = {i: i for i in nodes}

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        succ = {i: {} for i in nodes}     # group -> {group: every edge in-loop}
        pred = {i: {} for i in nodes}
        lo = {i: i for i in nodes}
        inloop_edges = []
        last_effect = None
        for i in nodes:
            deps = self._deps(i)
            if self.eqns[i].prim.effectful:
                if last_effect is not None:
                    deps.append((last_effect, False))
                last_effect = i
            for p, inloop in deps:
                if p == i:
                    continue
                succ[p][i] = succ[p].get(i, True) and inloop
                pred[i][p] = succ[p][i]
                if inloop:
                    inloop_edges.append((p, i))

        def reaches(g1, g2, skip_direct):
            """Is there a path g1 -> ... -> g2 (other than the direct edge, if skip_direct)?
            (No pruning by IR position: a merged group can hold early and late equations, so a
            path may enter it through a late one and leave through an early one.)"""
            stack = [s for s in succ[g1] if not (skip_direct and s == g2)]
            seen = set(stack)
            while stack:
                s = stack.pop()
                if s == g2:
                    return True
                for t in succ[s]:
                    if t not in seen:
                        seen.add(t)
                        stack.append(t)
            return False

        def merge(g1, g2):
            parent[g2] = g1
            lo[g1] = min(lo[g1], lo[g2])
            for a, b in ((succ, pred), (pred, succ)):
                for n, flag in a.pop(g2).items():
                    b[n].pop(g2, None)
                    if n == g1:
                        continue
                    merged = a[g1].get(n, True) and flag
                    a[g1][n] = merged
                    b[n][g1] = merged
                a[g1].pop(g2, None)

        for p, i in inloop_edges:
            g1, g2 = find(p), find(i)
            if g1 == g2 or not succ[g1].get(g2, False):
                continue
            if not reaches(g1, g2, skip_direct=True):
                merge(g1, g2)

        # sibling fusion: independent loop groups over the same space share one loop
        roots = sorted({find(i) for i in nodes}, key=lambda g: lo[g])
        last_of_space = {}
        for g in roots:
            if self.kind(g) != "loop":
                continue
            key = self.space(g)
            h = last_of_space.get(key)
            if h is not None and g not in succ[h] and h not in succ[g] \
                    and not reaches(h, g, False) and not reaches(g, h, False):
                merge(h, g)
                continue
            last_of_space[key] = g

        members = {}
        for i in nodes:
            members.setdefault(find(i), []).append(i)
        # topological order, earliest first equation first (keeps IR order where data allows)
        indeg = {g: len(pred[g]) for g in members}
        ready = [(min(m), g) for g, m in members.items() if indeg[g] == 0]
        heapq.heapify(ready)
        groups = []
        while ready:
            _, g = heapq.heappop(ready)
            ms = members[g]
            kind = self.kind(ms[0])
            grp = Group(kind, self.space(ms[0]) if kind == "loop" else None, ms)
            if kind == "loop":
                grp.inloop = {v for i in ms if not isinstance(self.rules[i], Reduction)
                              for v in self.eqns[i].outs}
            groups.append(grp)
            for s in succ[g]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, (min(members[s]), s))
        assert len(groups) == len(members), "fusion produced a cycle"
        return groups

    def _stored(self) -> set:
        """In-loop values that must also be written to a buffer."""
        stored = set()
        for i in range(len(self.eqns)):
            g = self.group_of.get(i)
            for a, acc in self.reads(i):
                v = a if isinstance(a, Var) and acc.root is a else acc.root
                if not isinstance(v, Var) or v.aval.shape == ():
                    continue
                p = self.producer.get(v)
                if p is None or self.kind(p) != "loop" or v not in self.group_of[p].inloop:
                    continue
                if g is not self.group_of[p] or not self.is_inloop_read(i, v):
                    stored.add(v)
        for a in self.outputs:
            root = self.access[a].root
            p = self.producer.get(root)
            if p is not None and self.kind(p) == "loop" and root.aval.shape != ():
                stored.add(root)
        return stored

    def _last_use(self) -> dict:
        """Var -> index (in `groups`) of the last group reading its buffer."""
        last = {}
        for k, g in enumerate(self.groups):
            for i in g.members:
                for a, acc in self.reads(i):
                    if isinstance(acc.root, Var):
                        last[acc.root] = k
        for a in self.outputs:       # read again when the outputs are written, after every group
            last[self.access[a].root] = len(self.groups)
        return last


def swap_transposed_products(ir) -> list:
    """`transpose(dot_general(x, y))` that swaps the two free-dim groups is `dot_general(y, x)`:
    a weight gradient then comes out of BLAS in its final layout instead of being copied."""
    eqns = list(ir.eqns)
    uses: dict = {}
    for e in eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                uses[a] = uses.get(a, 0) + 1
    for a in ir.outputs:
        if isinstance(a, Var):
            uses[a] = uses.get(a, 0) + 2
    producer = {v: k for k, e in enumerate(eqns) for v in e.outs}
    drop = set()
    for k, t in enumerate(eqns):
        if t.prim is not P.transpose_p or uses.get(t.inputs[0], 0) != 1:
            continue
        d_i = producer.get(t.inputs[0])
        if d_i is None or eqns[d_i].prim is not P.dot_general_p:
            continue
        d = eqns[d_i]
        x, y = d.inputs
        (xc, yc), (xb, yb) = d.params["contract"], d.params["batch"]
        nb = len(xb)
        nx = x.aval.ndim - len(xc) - nb
        ny = y.aval.ndim - len(yc) - nb
        want = tuple(range(nb)) + tuple(range(nb + nx, nb + nx + ny)) + tuple(range(nb, nb + nx))
        if t.params["perm"] != want:
            continue
        eqns[d_i] = Eqn(d.prim, (y, x), t.outs, {"contract": (yc, xc), "batch": (yb, xb)},
                        d.src, d.fwd_src)
        drop.add(k)
    return [e for k, e in enumerate(eqns) if k not in drop]
