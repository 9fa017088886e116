"""Compile worker processes: kernels are compiled beside the user's program, not in it.

A compile in a thread would starve the caller (Numba holds the GIL for most of a compile), so
`submit(kernel)` hands the kernel's file to a worker process (`compiler.worker`) that compiles it
into Numba's disk cache; the caller loads it from there when it is done. Workers start lazily,
are reused, and never outlive this process (their stdin closes with it; on Linux they are also
killed with it). A watchdog thread bounds each worker's memory (`TRACEGRAD_COMPILE_MEMORY_MB`,
default 1024 above a fresh worker's footprint) and each compile's time
(`TRACEGRAD_COMPILE_TIMEOUT`, default 300 s): a worker over either is killed, and the kernel's
future fails with the reason. A worker that crashes or is killed costs only the kernels it was
compiling, never the caller's program.
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the directory holding compiler/


def _env_float(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return float(default)


def worker_count() -> int:
    n = os.environ.get("TRACEGRAD_COMPILE_WORKERS")
    if n is not None and n.strip().isdigit():
        return max(1, int(n))
    return max(1, min(2, os.cpu_count() or 1))


def memory_budget_mb() -> float:
    return _env_float("TRACEGRAD_COMPILE_MEMORY_MB", 1024)


class CompileFailed(RuntimeError):
    """A worker could not compile a kernel: Numba's error (`stopped` False), or the worker died or
    was stopped for its memory or time (`stopped` True)."""

    def __init__(self, message, stopped=False):
        super().__init__(message)
        self.stopped = stopped


class _Worker:
    def __init__(self, pool):
        env = dict(os.environ)
        env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen([sys.executable, "-m", "compiler.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                     text=True, bufsize=1)
        self.pool = pool
        self.pending: dict = {}          # job id -> (Future, started)
        self.base_rss = None
        self.killed_for = None
        threading.Thread(target=self._read, daemon=True, name="tracegrad-compile-reader").start()

    def send(self, job_id, job, fut):
        self.pending[job_id] = (fut, time.monotonic())
        try:
            self.proc.stdin.write(json.dumps(dict(job, id=job_id)) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self._fail_all("the compile worker is gone")

    def _read(self):
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            fut, _ = self.pending.pop(reply["id"], (None, None))
            if fut is None:
                continue
            if reply["ok"]:
                fut.set_result(reply["seconds"])
            else:
                fut.set_exception(CompileFailed(reply["error"]))
        code = self.proc.wait()
        why = self.killed_for or f"the compile worker died (exit status {code})"
        self._fail_all(why)
        self.pool._forget(self)

    def _fail_all(self, why):
        for fut, _ in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(CompileFailed(why, stopped=True))
        self.pending.clear()

    def rss_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError, AttributeError):
            return None

    def kill(self, why):
        self.killed_for = why
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass


class Pool:
    def __init__(self):
        self.pid = os.getpid()
        self.workers: list = []
        self.lock = threading.Lock()
        self.ids = itertools.count()
        self.next = 0
        self.watchdog = None
        self.closed = False

    def start(self):
        """Start the workers now (each takes ~1 s to import Numba) if they are not running."""
        with self.lock:
            while not self.closed and len([w for w in self.workers if w.proc.poll() is None]) < worker_count():
                self._pick()

    def submit(self, kernel) -> Future:
        """A Future of the compile time (s) of `kernel` (a `program.Kernel`) in a worker."""
        fut = Future()
        with self.lock:
            if self.closed:
                fut.set_exception(CompileFailed("the process is exiting", stopped=True))
                return fut
            worker = self._pick()
            worker.send(next(self.ids), kernel.job(), fut)
        return fut

    def _pick(self):
        self.workers = [w for w in self.workers if w.proc.poll() is None]
        if len(self.workers) < worker_count():
            w = _Worker(self)
            self.workers.append(w)
            if self.watchdog is None:
                self.watchdog = threading.Thread(target=self._watch, daemon=True,
                                                 name="tracegrad-compile-watchdog")
                self.watchdog.start()
            return w
        self.next = (self.next + 1) % len(self.workers)
        return min(self.workers, key=lambda w: (len(w.pending), w is not self.workers[self.next]))

    def _forget(self, worker):
        with self.lock:
            if worker in self.workers:
                self.workers.remove(worker)

    def _watch(self):
        while not self.closed:
            time.sleep(0.05)
            budget, timeout = memory_budget_mb(), _env_float("TRACEGRAD_COMPILE_TIMEOUT", 300)
            for w in list(self.workers):
                rss = w.rss_mb()
                if rss is None:
                    continue
                if not w.pending:
                    w.base_rss = rss if w.base_rss is None else min(w.base_rss, rss)
                    continue
                base = w.base_rss if w.base_rss is not None else 0.0
                if rss - base > budget:
                    w.kill(f"compiling took more than the memory budget ({rss - base:.0f} MB > "
                           f"{budget:.0f} MB, TRACEGRAD_COMPILE_MEMORY_MB); the worker was stopped")
                elif any(time.monotonic() - t > timeout for _, t in list(w.pending.values())):
                    w.kill(f"compiling took more than {timeout:.0f} s (TRACEGRAD_COMPILE_TIMEOUT); "
                           f"the worker was stopped")

    def shutdown(self):
        with self.lock:
            self.closed = True
            workers, self.workers = self.workers, []
        for w in workers:
            w.close()
        deadline = time.monotonic() + 1.0
        for w in workers:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill("the process is exiting")


_pool = None
_pool_lock = threading.Lock()


def pool() -> Pool:
    """This process's pool (a process forked from one that had workers gets its own: the pipes it
    inherited belong to its parent)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = Pool()
            atexit.register(_pool.shutdown)
        return _pool
