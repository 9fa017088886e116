"""The on-disk kernel cache: a new process loads instead of compiling; damage is rebuilt, not fatal.

Each check runs a fresh Python process (the only honest test of a cross-process cache) with its
own TRACEGRAD_CACHE_DIR, and asserts what the process reports (`from_disk_cache`), never timings.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r'''
import json, numpy as np, tracegrad as tg, compiler
def loss(x, w):
    return np.sum(np.tanh(x @ w) * 1.5)
x = np.linspace(-1, 1, 12).reshape(3, 4)
w = np.linspace(0, 1, 8).reshape(4, 2)
run = compiler.compile_ir(tg.make_ir(tg.grad(loss, argnums=1))(x, w))
print(json.dumps({"from_disk_cache": run.from_disk_cache, "path": run.path,
                  "grad": run(x, w)[0].tolist()}))
'''


def expected_grad():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    w = np.linspace(0, 1, 8).reshape(4, 2)
    t = np.tanh(x @ w)
    return x.T @ (1.5 * (1 - t * t))


def run_child(cache_dir, background=False):
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(cache_dir), TRACEGRAD_COMPILE="sync")
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("TRACEGRAD_EAGER", None)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if background:
        return proc
    return finish(proc)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    np.testing.assert_allclose(report["grad"], expected_grad(), rtol=1e-12)
    return report


def numba_files(path):
    folder = os.path.join(os.path.dirname(path), "__pycache__")
    name = os.path.basename(path)[:-3]
    return sorted(glob.glob(os.path.join(folder, name + ".*.nb[ic]")))


def test_second_process_loads_from_disk(tmp_path):
    first = run_child(tmp_path)
    assert first["from_disk_cache"] is False
    assert os.path.isfile(first["path"]) and first["path"].startswith(str(tmp_path))
    assert numba_files(first["path"]), "Numba wrote no cache entry"
    second = run_child(tmp_path)
    assert second["from_disk_cache"] is True
    assert second["path"] == first["path"]


def test_damaged_entries_are_rebuilt(tmp_path):
    path = run_child(tmp_path)["path"]
    source = open(path).read()

    # a truncated kernel module is detected (content check) and rewritten
    with open(path, "w") as f:
        f.write(source[: len(source) // 2])
    run_child(tmp_path)
    assert open(path).read() == source

    # garbage in Numba's index: the entry is purged, compiled again, then served from disk again
    index = [f for f in numba_files(path) if f.endswith(".nbi")]
    assert index
    for f in index:
        with open(f, "wb") as fh:
            fh.write(os.urandom(64))
    assert run_child(tmp_path)["from_disk_cache"] is False
    assert run_child(tmp_path)["from_disk_cache"] is True

    # garbage in the compiled data file
    for f in numba_files(path):
        if f.endswith(".nbc"):
            with open(f, "wb") as fh:
                fh.write(b"\x80\x04garbage" + os.urandom(32))
    assert run_child(tmp_path)["from_disk_cache"] is False
    assert run_child(tmp_path)["from_disk_cache"] is True


def test_concurrent_processes_do_not_corrupt_the_cache(tmp_path):
    procs = [run_child(tmp_path, background=True) for _ in range(2)]
    reports = [finish(p) for p in procs]
    assert reports[0]["path"] == reports[1]["path"]
    # one of them compiled under the lock; the other waited and loaded it (or both compiled
    # before either saved): either way the entry left behind is whole
    assert run_child(tmp_path)["from_disk_cache"] is True


@pytest.mark.compiled
def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    import compiler.cache as cache
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path / "here"))
    assert cache.cache_dir().startswith(str(tmp_path / "here"))
    monkeypatch.delenv("TRACEGRAD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir().startswith(str(tmp_path / "xdg" / "tracegrad"))
