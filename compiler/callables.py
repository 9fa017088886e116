"""Scalar functions defined outside the compiler that elementwise lowerings may call by name.

An Elementwise rule returns expression text, and generated modules import only `math`, `np` and
`compiler.kernels`; a lowering module that needs its own jitted or intrinsic scalar function
registers `NAME -> module` here, and the emitter imports NAME from that module into every kernel
whose body calls `NAME(` (as it does for `kernels.HELPERS`).
"""
from __future__ import annotations

import re

IMPORTS: dict = {}     # function name -> the module generated code imports it from
NOTES: dict = {}       # module -> a comment its import line carries (e.g. a version digest)


def register(module: str, *names: str, note: str = "") -> None:
    """`names` are imported from `module` by kernels calling them. A `note` (say, a digest of the
    module's source) goes into the import line, so the kernels' source -- and their disk-cache key --
    changes with it: Numba's cache does not notice changes to functions it inlined."""
    for n in names:
        assert IMPORTS.get(n, module) == module, f"{n} is already registered from {IMPORTS[n]}"
        IMPORTS[n] = module
    if note:
        NOTES[module] = note


def import_lines(body_text: str) -> list:
    """`from MODULE import NAME, ...` lines for the registered functions `body_text` calls."""
    used: dict = {}
    for name, module in IMPORTS.items():
        if re.search(rf"\b{name}\(", body_text):
            used.setdefault(module, []).append(name)
    return [f"from {m} import {', '.join(sorted(ns))}" + (f"  # {NOTES[m]}" if m in NOTES else "")
            for m, ns in sorted(used.items())]
