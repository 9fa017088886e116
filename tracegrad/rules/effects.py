"""Effectful primitives: `debug_print` (no outputs; kept by dead-code elimination)."""
from __future__ import annotations

import numpy as np

from .. import primitives as P
from .common import defimpl, defshape


def _debug_print_impl(*xs, fmt):
    print(fmt.format(*[np.asarray(x) for x in xs]))
    return ()


defimpl(P.debug_print_p, _debug_print_impl)
defshape(P.debug_print_p, lambda *xs, fmt: ())
