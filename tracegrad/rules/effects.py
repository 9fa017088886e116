"""Effectful primitives (kept by dead-code elimination): `debug_print` (no outputs) and `random`."""
from __future__ import annotations

import numpy as np

from .. import primitives as P
from .common import defimpl, defshape


def _debug_print_impl(*xs, fmt):
    print(fmt.format(*[np.asarray(x) for x in xs]))
    return ()


defimpl(P.debug_print_p, _debug_print_impl)
defshape(P.debug_print_p, lambda *xs, fmt: ())


# `random` (tracegrad/draws.py): the `draw` param makes the draw; its aval is known from the trace.
def _random_impl(*, draw):
    return draw()


defimpl(P.random_p, _random_impl)
defshape(P.random_p, lambda *, draw: () if draw.aval is None else (draw.aval,))
