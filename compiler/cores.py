"""How many cores this process may use right now: the machine's cores minus what other processes use.

BLAS and `prange` threads that wait for a core another process holds make a step many times slower
than one thread would (a 784x256 product: 4.4 ms on two threads against 0.65 ms on one, with a
spinning process on the other core). So the runners of compiled kernels ask `free()` before each call
and pass the answer to the kernel, which gives BLAS (and Numba's parallel loops) at most that many
threads. `free()` samples the system's busy time (/proc/stat) and this process's own CPU time at most
every `PERIOD` seconds: the difference is what others use. Where /proc/stat is missing, every core
counts as free.
"""
from __future__ import annotations

import os
import time

PERIOD = 0.25
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class _Sampler:
    """The last sample and the estimate it gave (one per process: the machine is shared by all)."""
    __slots__ = ("t", "busy", "own", "free")

    def __init__(self):
        self.t, self.busy, self.own = time.monotonic(), _system_busy(), _own_cpu()
        self.free = _CPUS


def _system_busy():
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]
    idle = ticks[3] + ticks[4]                       # idle + iowait
    return (sum(ticks) - idle) / _TICK


def _own_cpu():
    t = os.times()
    return t.user + t.system


_state = _Sampler()


def free() -> int:
    """Cores not used by other processes over the last sampling period (at least 1)."""
    s = _state
    now = time.monotonic()
    if now - s.t < PERIOD:
        return s.free
    busy, own = _system_busy(), _own_cpu()
    if busy is not None and s.busy is not None:
        others = (busy - s.busy - (own - s.own)) / (now - s.t)
        s.free = max(1, min(_CPUS, int(_CPUS - others + 0.5)))
    s.t, s.busy, s.own = now, busy, own
    return s.free


def cpus() -> int:
    return _CPUS
