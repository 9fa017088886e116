"""Planning: which equations become one loop, which values need a real array, in what order.

Each equation is classified by its lowering rule:
  view    emits no code: its output is an `Access` (a strided map) into its input's buffer,
          unless it must exist as an array ("forced": an IR output, a reshape of a
          non-contiguous view, or under check_finite a view of an input whose values are checked);
  loop    elementwise, reduction or forced view: a member of a loop group over one loop space
          (the output shape; a reduction's is its input's shape);
  block   everything else (dot_general, pad, ...): statements of its own.
Groups start as single equations and merge along producer->consumer edges when the consumer reads
the producer's value at the same index ("in-loop"), every edge between the two groups is such an
edge, and no other path joins them (which would make a cycle). So an elementwise chain and the
reductions consuming it become one loop, forward and backward. An in-loop value is stored to a
buffer only when something outside its group, or the caller, needs it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from tracegrad.ir import Lit, Var

from . import layout
from .lowering import Block, Elementwise, Reduction, View, lowering


@dataclass(eq=False)
class Group:
    kind: str                          # "loop" or "block"
    space: tuple | None                # loop shape (None for a block)
    members: list = field(default_factory=list)   # equation indices, in IR order
    inloop: set = field(default_factory=set)      # Vars computed per loop point

    @property
    def first(self) -> int:
        return self.members[0]


class Plan:
    def __init__(self, ir, check_finite: bool):
        self.ir = ir
        self.eqns = list(ir.eqns)
        self.check_finite = check_finite
        self.rules = [lowering(e.prim) for e in self.eqns]
        self.producer: dict = {}          # Var -> equation index
        self.access: dict = {}            # Var -> Access consumers read it through
        self.lazy: set = set()            # view equations that emit no code
        self.view_access: dict = {}       # forced view index -> Access of its output
        self.operands: dict = {}          # (eqn index, operand index) -> Access used (non-lazy eqns)
        self.outputs = set(a for a in ir.outputs if isinstance(a, Var))
        for v in ir.inputs:
            self.access[v] = layout.identity(v)
        for v, _ in ir.consts:
            self.access[v] = layout.identity(v)
        self._resolve_views()
        self.groups = self._fuse()
        self.group_of = {i: g for g in self.groups for i in g.members}
        self.stored = self._stored()

    # ------------------------------------------------------------ views

    def access_of(self, a):
        if isinstance(a, Lit):
            return layout.Access(a, 0, (), ())
        return self.access[a]

    def _resolve_views(self):
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
            if out in self.outputs and not (acc.covers_root() and root_is_eqn):
                force = True
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
        rule = self.rules[i]
        if i in self.lazy:
            return "lazy"
        if isinstance(rule, Block):
            return "block"
        return "loop"

    def space(self, i):
        e = self.eqns[i]
        if isinstance(self.rules[i], Reduction):
            return e.inputs[0].aval.shape
        return e.outs[0].aval.shape

    def operand_access(self, i, j):
        """How equation i reads its operand j (through any lazy views)."""
        a = self.eqns[i].inputs[j]
        hit = self.operands.get((i, j))
        return hit if hit is not None else self.access_of(a)

    # ------------------------------------------------------------ grouping

    def _deps(self, i):
        """(producer index, in-loop?) for each value equation i reads."""
        e, rule = self.eqns[i], self.rules[i]
        if i in self.view_access:
            reads = [(None, self.view_access[i])]
        else:
            reads = [(a, self.operand_access(i, j)) for j, a in enumerate(e.inputs) if isinstance(a, Var)]
        out = []
        for a, acc in reads:
            root = acc.root
            if not isinstance(root, Var) or root not in self.producer:
                continue
            p = self.producer[root]
            inloop = (root is a and isinstance(rule, (Elementwise, Reduction))
                      and self.kind(p) == "loop"
                      and not isinstance(self.rules[p], Reduction)
                      and a.aval.shape == self.space(i) == self.space(p))
            out.append((p, inloop))
        return out

    def _fuse(self):
        nodes = [i for i in range(len(self.eqns)) if i not in self.lazy]
        parent = {i: i for i in nodes}

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        succ = {i: {} for i in nodes}     # group -> {group: all edges in-loop}
        pred = {i: {} for i in nodes}
        lo = {i: i for i in nodes}
        hi = {i: i for i in nodes}
        inloop_edges = []
        last_effect = None
        for i in nodes:
            deps = self._deps(i)
            if getattr(self.eqns[i].prim, "effectful", False):
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

        def reaches_other_way(g1, g2):
            """Is there a path g1 -> X -> ... -> g2 with X not g1 or g2?"""
            stack = [s for s in succ[g1] if s != g2]
            seen = set(stack)
            while stack:
                s = stack.pop()
                if s == g2:
                    return True
                if lo[s] > hi[g2]:
                    continue
                for t in succ[s]:
                    if t not in seen:
                        seen.add(t)
                        stack.append(t)
            return False

        for p, i in inloop_edges:
            g1, g2 = find(p), find(i)
            if g1 == g2 or not succ[g1].get(g2, False) or g1 in succ[g2]:
                continue
            if reaches_other_way(g1, g2):
                continue
            # merge g2 into g1
            parent[g2] = g1
            lo[g1], hi[g1] = min(lo[g1], lo[g2]), max(hi[g1], hi[g2])
            for a, b in ((succ, pred), (pred, succ)):
                for n, flag in a.pop(g2).items():
                    b[n].pop(g2, None)
                    if n == g1:
                        continue
                    merged = a[g1].get(n, True) and flag
                    a[g1][n] = merged
                    b[n][g1] = merged
                a[g1].pop(g2, None)

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
        for i, e in enumerate(self.eqns):
            g = self.group_of.get(i)
            for j, a in enumerate(e.inputs):
                if not isinstance(a, Var) or a.aval.shape == ():
                    continue
                p = self.producer.get(a)
                if p is None or self.kind(p) != "loop" or a not in self.group_of[p].inloop:
                    continue
                same = g is self.group_of[p]
                if not same or i in self.view_access:
                    stored.add(a)
        for a in self.outputs:
            p = self.producer.get(a)
            if p is not None and self.kind(p) == "loop" and a.aval.shape != ():
                stored.add(a)
        return stored
