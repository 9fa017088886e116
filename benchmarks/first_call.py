"""How long until a tracegrad function gives its first result, in a fresh process with empty caches.

    python benchmarks/first_call.py                          # every function (can take a while)
    python benchmarks/first_call.py --only grad_inv,loop_tanh_10
    python benchmarks/first_call.py --timeout 120 --max-gb 2 --no-jax --json PATH

For each function, a child Python process with fresh, empty `TRACEGRAD_CACHE_DIR` and
`NUMBA_CACHE_DIR` builds the jitted function and its arguments, then measures
  * first result: the first call, in tracegrad's default compile mode (trace + compile or interpret),
  * until native: from the same start until `cf.lower(*args).compile()` has returned and one call of
    the compiled function has run (`n/a` where that API does not exist),
and afterwards counts the IR's equations (`tg.make_ir`). The parent polls the child's process tree
(the child and every process it started) through /proc: it kills the tree above `--max-gb` of
resident memory or after `--timeout` seconds, and reports the tree's peak. JAX `jit` gets the same
function in its own fresh process. Every result is checked against a float64 NumPy or
finite-difference reference. Results: a markdown table, and JSON (`benchmarks/results/first_call.json`).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):          # this checkout's tracegrad, and the benchmark helpers
    if _p not in sys.path:
        sys.path.insert(0, _p)

import run  # noqa: E402  (benchmarks/run.py: the workloads, their references and the result check)
from _common import NotAvailable, write_json  # noqa: E402

MARK = "TG_FIRST_CALL "
HMM_T, HMM_K, HMM_V = 500, 4, 6     # observed symbols, hidden states, alphabet size


# ---------------------------------------------------------------- the functions, generic in xp

def _rng_data():
    rng = np.random.default_rng(0)
    x3 = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    K = rng.standard_normal((3, 3))
    A4 = 0.5 * rng.standard_normal((4, 4))
    x4 = rng.standard_normal(4)
    return x3, K, A4, x4


def inv_loss(x, K, xp):
    return xp.sum(xp.linalg.inv(x) * K)


def det_loss(x, xp):
    return xp.linalg.det(x) + xp.linalg.det(x @ x.T + xp.eye(3))


def loop_tanh(A, x, n, xp):
    for i in range(n):
        x = xp.tanh(A @ x + 0.1 * i)
    return xp.sum(x)


def logsumexp(a, xp, axis=None):
    m = xp.max(a, axis=axis, keepdims=True)
    return (xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)) + m)[0]


def hmm_log_likelihood(params, ys, xp):
    """log p(ys) of an HMM by the forward recursion in log space (as in autograd's hmm_em example)."""
    log_pi, log_A, log_B = params
    log_alpha = log_pi + log_B[:, ys[0]]
    for y in ys[1:]:
        log_alpha = logsumexp(log_alpha[:, None] + log_A, xp, axis=0) + log_B[:, y]
    return logsumexp(log_alpha, xp)


def hmm_data():
    """Log-parameters to differentiate at, and HMM_T symbols sampled (seed 0) from another HMM."""
    rng = np.random.default_rng(0)
    K, V = HMM_K, HMM_V

    def hmm():      # initial distribution, transition and emission matrices (rows sum to 1)
        return (rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K), rng.dirichlet(np.ones(V), size=K))
    pi, A, B = hmm()
    s, ys = rng.choice(K, p=pi), []
    for _ in range(HMM_T):
        ys.append(int(rng.choice(V, p=B[s])))
        s = rng.choice(K, p=A[s])
    return tuple(np.log(a) for a in hmm()), ys


def hmm_reference(params, ys):
    """Gradient of the log-likelihood: expected counts from the forward-backward algorithm."""
    log_pi, log_A, log_B = params
    T = len(ys)

    def lse(a, axis=None):
        m = np.max(a, axis=axis, keepdims=True)
        return np.squeeze(np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m, axis=axis)
    alpha = np.empty((T, HMM_K))
    beta = np.zeros((T, HMM_K))
    alpha[0] = log_pi + log_B[:, ys[0]]
    for t in range(1, T):
        alpha[t] = lse(alpha[t - 1][:, None] + log_A, axis=0) + log_B[:, ys[t]]
    for t in range(T - 2, -1, -1):
        beta[t] = lse(log_A + (log_B[:, ys[t + 1]] + beta[t + 1])[None, :], axis=1)
    log_z = lse(alpha[-1])
    gamma = np.exp(alpha + beta - log_z)
    g_A = np.zeros_like(log_A)
    for t in range(T - 1):
        g_A += np.exp(alpha[t][:, None] + log_A + (log_B[:, ys[t + 1]] + beta[t + 1])[None, :] - log_z)
    g_B = np.zeros_like(log_B)
    for t, y in enumerate(ys):
        g_B[:, y] += gamma[t]
    return [gamma[0], g_A, g_B]


def _fd_grad(f, x, eps=1e-5):
    """Central finite differences of f (array -> array) w.r.t. every element of x."""
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1).reshape(np.shape(f(x)) + x.shape)


def inv_grad_ref(x, K):
    xi = np.linalg.inv(x)
    return -xi.T @ K @ xi.T


def det_grad_ref(x):
    M = x @ x.T + np.eye(3)
    return np.linalg.det(x) * np.linalg.inv(x).T + 2 * np.linalg.det(M) * np.linalg.solve(M, x)


def loop_tanh_ref(A, x0, n):
    xs = [x0]
    for i in range(n):
        xs.append(np.tanh(A @ xs[-1] + 0.1 * i))
    lam, gA = np.ones_like(x0), np.zeros_like(A)
    for i in range(n - 1, -1, -1):
        dz = lam * (1 - xs[i + 1] ** 2)
        gA += np.outer(dz, xs[i])
        lam = A.T @ dz
    return gA


RUN_WORKLOADS = {      # run.py's jitted workloads (README beside this file)
    "dispatch": "run.py's dispatch: tg.jit(tg.grad) of sum(sin(x) * x), x of 10",
    "small_mlp": "run.py's small_mlp SGD step",
    "mnist_mlp": "run.py's mnist_mlp SGD step (784-256-10, batch 128)",
    "chain": "run.py's chain gradient (1e6 elements)",
    "pendulum": "run.py's pendulum gradient (tg.fori_loop, 500 steps)",
    "pendulum_while": "run.py's pendulum_while gradient (tg.while_loop)",
    "odeint": "run.py's odeint: tg.jit(tg.grad) of the RK4 solve written with tg.fori_loop",
    "jacrev_tanh": "run.py's jacrev_tanh: tg.jit(tg.jacrev) of a 100->100 tanh layer",
    "per_example_grads": "run.py's per_example_grads: tg.jit(tg.vmap(tg.grad)), mnist model, batch 128",
}


class Spec:
    """One function: tracegrad (jitted callable, args), JAX (jitted callable, args), reference outputs."""

    def __init__(self, what, tg, jax, reference, dtype=np.float64, atol=0.0):
        self.what, self.tg, self.jax, self.reference, self.dtype = what, tg, jax, reference, dtype
        self.atol = atol        # absolute tolerance, for results that are all rounding-sized


def _specs():
    x3, K, A4, x4 = _rng_data()
    specs = {}

    def jnp():
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy
        return jax, jax.numpy

    def tg():
        import tracegrad
        return tracegrad

    specs["grad_inv"] = Spec(
        "tg.grad of sum(inv(x) * K), x 3x3",
        lambda: (tg().jit(tg().grad(lambda x: inv_loss(x, K, np))), (x3,)),
        lambda: (lambda j, n: (j.jit(j.grad(lambda x: inv_loss(x, K, n))), (n.asarray(x3),)))(*jnp()),
        lambda: [inv_grad_ref(x3, K)])
    specs["hessian_inv"] = Spec(
        "tg.hessian of sum(inv(x) * K), x 3x3",
        lambda: (tg().jit(tg().hessian(lambda x: inv_loss(x, K, np))), (x3,)),
        lambda: (lambda j, n: (j.jit(j.hessian(lambda x: inv_loss(x, K, n))), (n.asarray(x3),)))(*jnp()),
        lambda: [_fd_grad(lambda x: inv_grad_ref(x, K), x3)])
    specs["hessian_det"] = Spec(
        "tg.hessian of det(x) + det(x @ x.T + eye(3)), x 3x3",
        lambda: (tg().jit(tg().hessian(lambda x: det_loss(x, np))), (x3,)),
        lambda: (lambda j, n: (j.jit(j.hessian(lambda x: det_loss(x, n))), (n.asarray(x3),)))(*jnp()),
        lambda: [_fd_grad(det_grad_ref, x3)])
    for n_steps in (10, 40, 160):
        specs[f"loop_tanh_{n_steps}"] = Spec(
            f"grad w.r.t. A (4x4) of a Python loop of {n_steps} steps x = tanh(A @ x + 0.1*i)",
            (lambda n_steps: lambda: (tg().jit(tg().grad(lambda A, x: loop_tanh(A, x, n_steps, np))),
                                      (A4, x4)))(n_steps),
            (lambda n_steps: lambda: (lambda j, n: (j.jit(j.grad(lambda A, x: loop_tanh(A, x, n_steps, n))),
                                                    (n.asarray(A4), n.asarray(x4))))(*jnp()))(n_steps),
            (lambda n_steps: lambda: [loop_tanh_ref(A4, x4, n_steps)])(n_steps),
            # as 0.1*i grows, tanh saturates: the gradient after 160 steps is ~4e-13, so rounding
            # differences of 1e-16 are a relative error of 1e-3; accept absolute errors below 1e-14
            atol=1e-14)
    params, ys = hmm_data()
    specs["hmm_forward"] = Spec(
        f"grad w.r.t. the log-parameters of an HMM forward pass, Python loop over {HMM_T} symbols, "
        f"{HMM_K} states",
        lambda: (tg().jit(tg().grad(lambda p: hmm_log_likelihood(p, ys, np))), (params,)),
        lambda: (lambda j, n: (j.jit(j.grad(lambda p: hmm_log_likelihood(p, ys, n))),
                               (tuple(n.asarray(a) for a in params),)))(*jnp()),
        lambda: hmm_reference(params, ys))
    for w, what in RUN_WORKLOADS.items():
        specs[w] = Spec(what, (lambda w: lambda: run.tracegrad_jitted(w))(w),
                        (lambda w: lambda: run.jax_jitted(w))(w),
                        (lambda w: lambda: run.reference(w))(w), run.workload_dtype(w))
    return specs


SPECS = _specs()


# ---------------------------------------------------------------- the child process

def _emit(**event):
    print(MARK + json.dumps(event, default=str), flush=True)


def _save(path, out):
    np.savez(path, *[np.asarray(a) for a in run.flat(out)])


def _count_eqns(ir):
    """Equations of an IR, including those of IRs nested in equation parameters (loop bodies)."""
    n = 0
    for e in getattr(ir, "eqns", ()):
        n += 1
        for v in getattr(e, "params", {}).values():
            for sub in (v if isinstance(v, (tuple, list)) else (v,)):
                if hasattr(sub, "eqns") and hasattr(sub, "outputs"):
                    n += _count_eqns(sub)
    return n


def _entries(cf):
    info = cf.cache_info() if hasattr(cf, "cache_info") else None
    out = []
    for e in getattr(info, "entries", None) or []:
        get = (lambda k: e.get(k)) if isinstance(e, dict) else (lambda k: getattr(e, k, None))
        out.append({k: get(k) for k in ("tier", "compile_s", "why")})
    return out


def child(name, impl, outdir):
    spec = SPECS[name]
    t_start = time.perf_counter()
    if impl == "jax":
        import jax
        _emit(event="imported", s=time.perf_counter() - t_start)
        jf, args = spec.jax()
        t0 = time.perf_counter()
        try:
            out = jax.block_until_ready(jf(*args))
        except ValueError as e:     # e.g. no reverse mode through lax.while_loop
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            _emit(event="error", status="n/a (no VJP of while_loop)" if "while_loop" in msg else f"n/a ({msg[:80]})")
            return
        _emit(event="first_result", s=time.perf_counter() - t0)
        _save(os.path.join(outdir, "first.npz"), out)
        return
    import tracegrad as tg
    _emit(event="imported", s=time.perf_counter() - t_start)
    try:
        cf, args = spec.tg()
    except NotAvailable as e:
        _emit(event="error", status=str(e))
        return
    t0 = time.perf_counter()
    out = cf(*args)
    _emit(event="first_result", s=time.perf_counter() - t0, entries=_entries(cf))
    _save(os.path.join(outdir, "first.npz"), out)
    del out
    if hasattr(cf, "lower"):
        try:
            compiled = cf.lower(*args).compile()
            out = compiled(*args)
        except Exception as e:
            _emit(event="native", status=f"error: {type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}")
        else:
            _emit(event="native", s=time.perf_counter() - t0, entries=_entries(cf))
            _save(os.path.join(outdir, "native.npz"), out)
            del out
    else:
        _emit(event="native", status="n/a (not available)")
    try:
        _emit(event="ir", eqns=_count_eqns(tg.make_ir(cf)(*args)))
    except Exception as e:      # counting is a bonus; never lose the timings over it
        _emit(event="ir", status=f"error: {type(e).__name__}")


# ---------------------------------------------------------------- process-tree watching

def _proc_table():
    """pid -> (ppid, session, rss bytes) for every process visible in /proc."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            table[int(d)] = (int(fields[1]), int(fields[3]), int(fields[21]) * page)
        except (OSError, ValueError, IndexError):
            pass
    return table


def tree_of(root, table=None):
    """The pids of `root`, its descendants, and anything left in its session (orphaned workers)."""
    table = _proc_table() if table is None else table
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(children.get(p, ()))
    seen |= {pid for pid, (_, sid, _) in table.items() if sid == root}
    return seen & (set(table) | {root})


def _alive(pid):
    """The process still runs (a zombie waiting for its reaper has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_tree(root, wait=10.0):
    """SIGKILL `root`'s tree and wait (up to `wait` s) until it has exited: a killed process that
    is still releasing a large heap goes on holding it for a moment on a busy machine."""
    pids = tree_of(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(root, signal.SIGKILL)
    except OSError:
        pass
    deadline = time.monotonic() + wait
    while any(_alive(pid) for pid in pids if pid != root) and time.monotonic() < deadline:
        time.sleep(0.02)


def watch(cmd, env, timeout, max_bytes, poll=0.05):
    """Run `cmd`, polling its process tree; kill it above `max_bytes` RSS or after `timeout` s.

    Returns (events, status or None, peak tree RSS bytes, ru_maxrss bytes, wall seconds, stderr tail).
    """
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                            text=True, start_new_session=True)
    events = []

    def read():
        for line in proc.stdout:
            if line.startswith(MARK):
                try:
                    events.append(json.loads(line[len(MARK):]))
                except ValueError:
                    pass
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t0, peak, status, reaped = time.monotonic(), 0, None, None
    try:
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (st, ru)
                break
            table = _proc_table()
            rss = sum(table[p][2] for p in tree_of(proc.pid, table) if p in table)
            peak = max(peak, rss)
            elapsed = time.monotonic() - t0
            if rss > max_bytes:
                status = f"killed at {rss / 1e9:.1f} GB after {elapsed:.0f} s"
            elif elapsed > timeout:
                status = f"timeout after {elapsed:.0f} s"
            if status:
                kill_tree(proc.pid)
                _, st, ru = os.wait4(proc.pid, 0)
                reaped = (st, ru)
                break
            time.sleep(poll)
    finally:
        if reaped is None:          # Ctrl-C or an error in this process: leave nothing behind
            kill_tree(proc.pid)
            try:
                os.wait4(proc.pid, 0)
            except ChildProcessError:
                pass
        else:
            kill_tree(proc.pid)     # workers the child left running
        proc.returncode = -1 if reaped is None else os.waitstatus_to_exitcode(reaped[0])
    wall = time.monotonic() - t0
    reader.join(timeout=5)
    err.seek(0)
    tail = [line for line in err.read().strip().splitlines() if line.strip()]
    err.close()
    if status is None and proc.returncode != 0:
        status = f"error: exit {proc.returncode}: {tail[-1] if tail else 'no output'}"
    return events, status, peak, reaped[1].ru_maxrss * 1024 if reaped else 0, wall, tail[-3:]


# ---------------------------------------------------------------- the parent

def _check(path, spec):
    with np.load(path) as z:
        outs = [z[f"arr_{i}"] for i in range(len(z.files))]
    expected = spec.reference()
    result = run.check(outs, expected, spec.dtype)
    if result != "ok" and spec.atol and len(outs) == len(expected) and all(
            np.shape(o) == np.shape(e) and np.max(np.abs(o - e), initial=0.0) <= spec.atol
            for o, e in zip(outs, expected)):
        return "ok"
    return result


def measure(name, impl, opts):
    spec = SPECS[name]
    rec = {"function": name, "impl": impl}
    tmp = tempfile.mkdtemp(prefix=f"tg-first-call-{impl}-")
    env = dict(os.environ)
    env.update(TRACEGRAD_CACHE_DIR=os.path.join(tmp, "tracegrad"), NUMBA_CACHE_DIR=os.path.join(tmp, "numba"),
               PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("TRACEGRAD_COMPILE", None)
    if opts.compile:
        env["TRACEGRAD_COMPILE"] = opts.compile
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--impl", impl, "--outdir", tmp]
    try:
        events, status, peak, maxrss, wall, tail = watch(cmd, env, opts.timeout, opts.max_gb * 1e9)
        by = {}
        for e in events:
            by.setdefault(e["event"], e)
        rec.update(wall_s=wall, peak_tree_mb=peak / 2**20, maxrss_mb=maxrss / 2**20,
                   peak_mb=max(peak, maxrss) / 2**20)
        if "imported" in by:
            rec["import_s"] = by["imported"]["s"]
        if "error" in by:
            rec["status"] = by["error"]["status"]
            return rec
        if "first_result" in by:
            rec["first_result_s"] = by["first_result"]["s"]
            if by["first_result"].get("entries"):
                rec["first_entries"] = by["first_result"]["entries"]
            rec["first_check"] = _check(os.path.join(tmp, "first.npz"), spec)
        if "native" in by:
            if "s" in by["native"]:
                rec["native_s"] = by["native"]["s"]
                if by["native"].get("entries"):
                    rec["native_entries"] = by["native"]["entries"]
                rec["native_check"] = _check(os.path.join(tmp, "native.npz"), spec)
            else:
                rec["native_status"] = by["native"]["status"]
        if "ir" in by:
            rec["ir_eqns"] = by["ir"].get("eqns")
        rec["status"] = status or "ok"
        if tail and status:
            rec["stderr_tail"] = tail
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rec


def _secs(rec, key):
    return f"{rec[key]:.2f}" if key in rec else None


def _short(text, n=60):
    return text if len(text) <= n else text[:n - 1] + "…"


def row(name, recs):
    tg, jx = recs.get("tracegrad", {}), recs.get("jax")
    status = _short(tg.get("status", ""))
    failed = status not in ("ok", "")
    first = _secs(tg, "first_result_s") or (status if failed else "—")
    if tg.get("first_check", "ok") != "ok":
        first += " (!)"
    if "native_s" in tg:
        native = _secs(tg, "native_s") + ("" if tg.get("native_check", "ok") == "ok" else " (!)")
    elif failed and "first_result_s" in tg:
        native = status
    else:
        native = _short(tg.get("native_status", "—"))
    peak = f"{tg['peak_mb']:.0f}" if "peak_mb" in tg else "—"
    if jx is None:
        jax_cell = "—"
    elif "first_result_s" in jx:
        jax_cell = _secs(jx, "first_result_s") + ("" if jx.get("first_check", "ok") == "ok" else " (!)")
    else:
        jax_cell = _short(jx.get("status", "—"))
    eqns = str(tg["ir_eqns"]) if tg.get("ir_eqns") is not None else "—"
    return [name, eqns, first, native, peak, jax_cell]


def print_table(results):
    head = ["function", "IR equations", "first result s", "until native s", "peak MB", "JAX jit first call s"]
    rows = [row(name, recs) for name, recs in results]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join("---" for _ in head) + " |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    notes = []
    for name, recs in results:
        for impl, rec in recs.items():
            for key in ("first_check", "native_check"):
                if rec.get(key, "ok") != "ok":
                    notes.append(f"{name}/{impl}: {key.replace('_check', '')} result check failed: {rec[key]}")
            if rec.get("status", "ok") not in ("ok",) and rec.get("stderr_tail"):
                notes.append(f"{name}/{impl}: {rec['status']}; stderr: {rec['stderr_tail'][-1]}")
    if notes:
        print()
        for n in notes:
            print(f"  {n}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="time to first result in a fresh process with empty caches")
    p.add_argument("--only", default=None, help=f"comma-separated functions out of {','.join(SPECS)}")
    p.add_argument("--timeout", type=float, default=300.0, help="wall-clock limit per child process, s")
    p.add_argument("--max-gb", type=float, default=4.0, help="RSS limit of a child's process tree, GB")
    p.add_argument("--json", default=os.path.join(HERE, "results", "first_call.json"), help="where to write")
    p.add_argument("--no-jax", action="store_true", help="skip JAX even when it is installed")
    p.add_argument("--compile", default=None, choices=("sync", "background", "never"),
                   help="set TRACEGRAD_COMPILE in the children (default: tracegrad's default mode)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--impl", default="tracegrad", help=argparse.SUPPRESS)
    p.add_argument("--outdir", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    if opts.child:
        child(opts.child, opts.impl, opts.outdir)
        return 0
    names = list(SPECS) if not opts.only else [n.strip() for n in opts.only.split(",") if n.strip()]
    for n in names:
        if n not in SPECS:
            raise SystemExit(f"unknown function {n!r}; choose from {', '.join(SPECS)}")
    import importlib.util
    use_jax = not opts.no_jax and importlib.util.find_spec("jax") is not None
    load_start = os.getloadavg()[0]
    print(f"first call in fresh processes: {len(names)} function(s); JAX: {'yes' if use_jax else 'no'}; "
          f"timeout {opts.timeout:g} s, memory cap {opts.max_gb:g} GB; load average {load_start:.2f}",
          flush=True)
    results = []
    for name in names:
        recs = {"tracegrad": measure(name, "tracegrad", opts)}
        if use_jax:
            recs["jax"] = measure(name, "jax", opts)
        results.append((name, recs))
        tg = recs["tracegrad"]
        first = f"{tg['first_result_s']:.2f} s" if "first_result_s" in tg else tg.get("status")
        print(f"  {name}: first result {first}, peak {tg.get('peak_mb', 0):.0f} MB"
              + (f" (status: {tg['status']})" if "first_result_s" in tg and tg.get("status") != "ok" else ""),
              flush=True)
    load_end = os.getloadavg()[0]
    print(f"\nload average {load_start:.2f} at start, {load_end:.2f} at end\n")
    print_table(results)
    machine = run.machine_info("interpreter" if opts.compile == "never" else "numba", load_start)
    doc = {"machine": machine,
           "settings": {"timeout_s": opts.timeout, "max_gb": opts.max_gb, "jax": use_jax,
                        "compile_mode": opts.compile or "default"},
           "functions": {n: SPECS[n].what for n in names},
           "results": [dict(rec, what=SPECS[name].what) for name, recs in results for rec in recs.values()],
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    write_json(opts.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
