"""Smoke test for benchmarks/run.py, so that the benchmark script does not rot."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_bench(tmp_path, *args, backend="numba"):
    out = tmp_path / "bench.json"
    env = dict(os.environ, TRACEGRAD_BACKEND=backend)
    p = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--no-peers", "--json", str(out),
                        *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout, json.loads(out.read_text())


def test_quick_chain_without_peers(tmp_path):
    """The default (Numba) backend: compiles the chain gradient in a fresh cache."""
    stdout, doc = run_bench(tmp_path, "--only", "chain")
    (rec,) = doc["results"]
    assert rec["workload"] == "chain" and rec["impl"] == "tracegrad"
    assert rec["status"] == "ok" and rec["check"] == "ok", rec
    assert rec["median_us"] > 0 and rec["n"] >= 3
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["numpy"]
    assert doc["machine"]["tracegrad_backend"] == "numba"
    assert "chain" in stdout and "tracegrad" in stdout


def test_quick_loop_workloads_match_their_references(tmp_path):
    """Interpret backend: checks the loop workloads' code and results, without compile time."""
    _, doc = run_bench(tmp_path, "--only", "pendulum,pendulum_while", backend="interpret")
    assert [r["workload"] for r in doc["results"]] == ["pendulum", "pendulum_while"]
    for rec in doc["results"]:
        assert rec["status"] == "ok" and rec["check"] == "ok", rec
