"""`--busy N`: N spinning child processes that keep cores busy while the benchmarks are measured.

Each spinner is a plain `python -c` child running a pure-Python loop. They are stopped (killed and
reaped) when the `with Spinners(n):` block ends, also on Ctrl-C, SIGTERM or an exception; if the
parent dies without running its cleanup (SIGKILL), the kernel kills them (PR_SET_PDEATHSIG on Linux),
and each spinner also leaves its loop by itself within a few milliseconds once its parent is gone.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

# A pure-Python busy loop that checks every ~20 ms whether its parent is still there.
SPIN = ("import os\n"
        "parent = os.getppid()\n"
        "while os.getppid() == parent:\n"
        "    for _ in range(300000):\n"
        "        pass\n")


def _die_with_parent():          # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
    except Exception:
        pass


def _cpu_seconds(pid):
    """User + system CPU seconds of a live process (from /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Spinners:
    """Context manager: start `n` spinners on entry, stop them on exit. `.info()` for the JSON."""

    def __init__(self, n: int):
        self.n = int(n)
        self.procs: list = []
        self.stopped: dict = {}
        self._old_term = None

    def __enter__(self):
        if self.n <= 0:
            return self
        # SIGTERM (e.g. `timeout`, a killed CI job) would end Python without running `finally`
        # blocks; turn it into SystemExit so that the spinners are stopped on the way out.
        if hasattr(signal, "SIGTERM") and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            try:
                self._old_term = signal.signal(signal.SIGTERM, _term_to_exit)
            except ValueError:       # not the main thread
                self._old_term = None
        try:
            for _ in range(self.n):
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        """Kill and reap every spinner (idempotent); remember whether each was still spinning."""
        for p in self.procs:
            if p.pid in self.stopped:
                continue
            alive = p.poll() is None
            cpu = _cpu_seconds(p.pid) if alive else None
            if alive:
                try:
                    p.kill()
                except OSError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.stopped[p.pid] = {"alive_until_stop": alive, "cpu_s": cpu}
        if self._old_term is not None:
            try:
                signal.signal(signal.SIGTERM, self._old_term)
            except ValueError:
                pass
            self._old_term = None

    def info(self):
        return {"n": self.n, "pids": self.pids(),
                "stopped": [dict(pid=pid, **st) for pid, st in self.stopped.items()]}


def _term_to_exit(signum, frame):
    raise SystemExit(128 + signum)
