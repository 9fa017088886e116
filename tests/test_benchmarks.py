"""Smoke tests for benchmarks/run.py and benchmarks/first_call.py, so that the benchmark scripts do not rot.

No speed is asserted: these check that the workloads run, that their results match the references,
and that the machinery (busy spinners, child-process limits) cleans up after itself.
"""
import importlib.util
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
NEW_WORKLOADS = "eager_small_mlp,eager_pendulum,eager_many_ops,inline_grad,odeint,tracing,per_example_grads,jacrev_tanh"


def run_bench(tmp_path, *args, compile="sync", quick=True, peers=False):
    out = tmp_path / "bench.json"
    env = dict(os.environ, TRACEGRAD_COMPILE=compile)
    cmd = [sys.executable, "benchmarks/run.py", "--json", str(out), *args]
    cmd += ["--quick"] if quick else []
    cmd += [] if peers else ["--no-peers"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout, json.loads(out.read_text())


def bench_module(name):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def gone(pid):
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


def test_quick_chain_without_peers(tmp_path):
    """Native code (compile mode sync): compiles the chain gradient in a fresh cache."""
    stdout, doc = run_bench(tmp_path, "--only", "chain")
    (rec,) = doc["results"]
    assert rec["workload"] == "chain" and rec["impl"] == "tracegrad"
    assert rec["status"] == "ok" and rec["check"] == "ok", rec
    assert rec["median_us"] > 0 and rec["n"] >= 3
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["numpy"]
    assert doc["machine"]["tracegrad_backend"] == "numba"
    assert doc["settings"]["busy"] == 0
    assert "chain" in stdout and "tracegrad" in stdout


def test_quick_loop_workloads_match_their_references(tmp_path):
    """The interpreter tier: checks the loop workloads' code and results, without compile time."""
    _, doc = run_bench(tmp_path, "--only", "pendulum,pendulum_while", compile="never")
    assert [r["workload"] for r in doc["results"]] == ["pendulum", "pendulum_while"]
    for rec in doc["results"]:
        assert rec["status"] == "ok" and rec["check"] == "ok", rec


def test_new_workloads_match_their_references(tmp_path):
    """Eager, inline-transform, ODE and vmap workloads: every tracegrad variant against its reference."""
    stdout, doc = run_bench(tmp_path, "--check-only", "--only", NEW_WORKLOADS, compile="never",
                            quick=False)
    recs = doc["results"]
    assert {r["workload"] for r in recs} == set(NEW_WORKLOADS.split(","))
    variants = {(r["workload"], r.get("variant")) for r in recs}
    assert ("inline_grad", "tg.grad(h)(x) inline") in variants
    assert ("odeint", "tg.vjp per step") in variants
    for rec in recs:
        assert rec["status"] == "ok" and rec["check"] == "ok", rec
    for heading in ("## eager mode", "## transforms", "## vmap"):
        assert heading in stdout


def test_quick_timing_of_variants(tmp_path):
    """The timed path with several tracegrad variants of one workload (one row each)."""
    stdout, doc = run_bench(tmp_path, "--only", "inline_grad", "--seconds", "0.05", compile="never")
    recs = doc["results"]
    assert len(recs) == 5
    for rec in recs:
        assert rec["status"] == "ok" and rec["check"] == "ok" and rec["median_us"] > 0, rec
        assert f"inline_grad: {rec['variant']}" in stdout


def test_references_against_finite_differences():
    """The hand-derived references of the ODE and HMM workloads agree with central differences."""
    extra = bench_module("_extra_workloads")
    fc = bench_module("first_call")
    params, y0, target = extra.make_data("odeint")
    _, g = extra.ode_reference(params, y0, target)
    for k, idx in ((0, (3, 1)), (1, (5,)), (2, (2, 7)), (3, (4,))):
        p = [a.copy() for a in params]
        p[k][idx] += 1e-6
        up = extra.ode_reference(tuple(p), y0, target)[0]
        p[k][idx] -= 2e-6
        down = extra.ode_reference(tuple(p), y0, target)[0]
        assert abs((up - down) / 2e-6 - g[k][idx]) <= 1e-6 * max(1.0, abs(g[k][idx]))
    params, ys = fc.hmm_data()
    g = fc.hmm_reference(params, ys)
    for k, idx in ((0, (1,)), (1, (2, 0)), (2, (3, ys[7]))):
        p = [a.copy() for a in params]
        p[k][idx] += 1e-6
        up = fc.hmm_log_likelihood(tuple(p), ys, np)
        p[k][idx] -= 2e-6
        down = fc.hmm_log_likelihood(tuple(p), ys, np)
        assert abs((up - down) / 2e-6 - g[k][idx]) <= 1e-5 * max(1.0, abs(g[k][idx]))


def test_busy_spinners_run_during_the_measurement_and_stop(tmp_path):
    _, doc = run_bench(tmp_path, "--busy", "2", "--check-only", "--only", "inline_grad", compile="never")
    assert doc["settings"]["busy"] == 2
    busy = doc["busy"]
    assert len(busy["pids"]) == 2 and len(busy["stopped"]) == 2
    assert all(s["alive_until_stop"] for s in busy["stopped"]), busy
    assert all(gone(pid) for pid in busy["pids"])


def test_busy_spinners_stop_on_ctrl_c(tmp_path):
    env = dict(os.environ, TRACEGRAD_COMPILE="never")
    p = subprocess.Popen([sys.executable, "benchmarks/run.py", "--busy", "1", "--no-peers", "--only",
                          "eager_pendulum", "--seconds", "60", "--json", str(tmp_path / "b.json")],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pids = None
        for line in p.stdout:
            m = re.search(r"^busy: .* pids ([\d ]+)$", line.strip())
            if m:
                pids = [int(x) for x in m.group(1).split()]
                break
        assert pids, "no spinner pids printed"
        assert not any(gone(pid) for pid in pids)
        # Ctrl-C, again if need be: Python ignores a KeyboardInterrupt raised inside a weakref
        # callback or __del__ (cache entries go when the objects they key on die)
        for _ in range(30):
            p.send_signal(signal.SIGINT)
            try:
                p.communicate(timeout=2)
                break
            except subprocess.TimeoutExpired:
                pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0
    # (a second Ctrl-C may land in the cleanup itself: then the kernel stops the spinners as their
    # parent exits, a moment later)
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)


def test_first_call_cheapest_function(tmp_path):
    out = tmp_path / "first_call.json"
    p = subprocess.run([sys.executable, "benchmarks/first_call.py", "--only", "dispatch", "--no-jax",
                        "--timeout", "120", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    (rec,) = json.loads(out.read_text())["results"]
    assert rec["function"] == "dispatch" and rec["status"] == "ok", rec
    assert rec["first_check"] == "ok" and rec["first_result_s"] > 0
    assert rec.get("native_check", "ok") == "ok"
    assert rec["peak_mb"] > 10 and rec["ir_eqns"] > 0
    assert "| dispatch |" in p.stdout


def test_first_call_limits_kill_the_whole_process_tree(tmp_path):
    fc = bench_module("first_call")
    # a child that starts a grandchild which fills 300 MB: the tree's RSS crosses the cap
    pidfile = tmp_path / "grandchild.pid"
    grandchild = (f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
                  f"a = b'x' * 300_000_000; time.sleep(60)")
    hog = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)"
    t0 = time.monotonic()
    events, status, peak, _, _, _ = fc.watch([sys.executable, "-c", hog], dict(os.environ), 30, 150e6)
    assert status.startswith("killed at") and peak > 150e6, status
    assert time.monotonic() - t0 < 20
    assert gone(int(pidfile.read_text()))
    _, status, _, _, _, _ = fc.watch([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ),
                                     1, 4e9)
    assert status.startswith("timeout after"), status
