"""Threads that never wait for a busy core: BLAS and parallel loops get the cores left free."""
import subprocess
import sys
import time

import numpy as np
import pytest

import tracegrad as tg
from compiler import cores


def test_free_cores_drop_while_another_process_spins():
    assert 1 <= cores.free() <= cores.cpus()
    if cores.cpus() < 2:
        return
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        seen = []
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            time.sleep(cores.PERIOD)
            seen.append(cores.free())
        assert min(seen) <= cores.cpus() - 1, seen
    finally:
        spin.kill()
        spin.wait()


@pytest.mark.compiled
def test_products_set_blas_threads_per_call_and_restore_the_default():
    from compiler import blas
    before = blas.default_threads()

    def f(a, b):
        return np.sum(np.tanh(a @ b))
    a, b = np.ones((8, 8)), np.ones((8, 8))
    cf = tg.jit(tg.grad(f))
    src = cf.source(a, b)
    assert "P_[0] = free_cores()" in src and "blas_set_threads(P_[1])" in src
    np.testing.assert_allclose(cf(a, b), tg.jit(tg.grad(f), compile="never")(a, b), rtol=1e-12)
    assert blas.default_threads() == before
