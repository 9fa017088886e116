"""The compile worker process: `python -m compiler.worker`.

Reads one job per line on stdin (JSON: a kernel's module name, file, signature and flags, see
`program.Kernel.job`), compiles it with Numba, which writes the result to its disk cache, and
answers one line per job on stdout: `{"id", "ok", "seconds", "error"}`. The parent loads the kernel
from that cache. It exits when stdin closes, and on Linux also when its parent dies.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback


def _die_with_parent():
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)            # PR_SET_PDEATHSIG
        if os.getppid() == 1:                    # the parent died before prctl took effect
            os._exit(0)
    except (OSError, AttributeError):
        pass


def _compile(job):
    import numpy as np
    from numba.core import types
    from numba.np.numpy_support import from_dtype

    from .build import compile_module
    sig = tuple(types.Array(from_dtype(np.dtype(dt)), nd, "C") if nd >= 0 else from_dtype(np.dtype(dt))
                for dt, nd in job["signature"])
    with open(job["path"], encoding="utf-8") as f:
        source = f.read()
    compile_module(job["name"], job["path"], source, sig, job["parallel"])


def main():
    _die_with_parent()
    out = sys.stdout
    sys.stdout = sys.stderr            # nothing but answers on the answer channel
    for line in sys.stdin:
        job = json.loads(line)
        t0 = time.perf_counter()
        reply = {"id": job["id"], "ok": True, "error": None}
        try:
            _compile(job)
        except Exception as exc:   # noqa: BLE001  (reported to the parent, which translates it)
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                         typing=type(exc).__name__ == "TypingError",
                         trace=traceback.format_exc(limit=3))
        reply["seconds"] = time.perf_counter() - t0
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
