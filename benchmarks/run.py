"""tracegrad performance workloads, with the peers measured in the same run.

    python benchmarks/run.py                      # every workload, every installed peer
    python benchmarks/run.py --quick              # short timings, one round
    python benchmarks/run.py --only chain,dispatch --no-peers
    python benchmarks/run.py --json /tmp/out.json --compile never   # the interpreter tier
    python benchmarks/run.py --busy 1             # with one spinning process keeping a core busy
    python benchmarks/run.py --check-only --only odeint,inline_grad   # results only, no timing

Workloads (see the README beside this file), in four sections:
  compiled:    small_mlp, mnist_mlp, chain, pendulum, pendulum_while, dispatch, compile
  eager:       eager_small_mlp, eager_pendulum, eager_many_ops        (`with tg.eager():`)
  transforms:  inline_grad, odeint, tracing          (transforms called per call / per step; tracing cost)
  vmap:        per_example_grads, jacrev_tanh
Peers: a hand-written Numba version (always, Numba is a dependency of tracegrad), JAX, PyTorch eager
and HIPS autograd when they are installed (`pip install -e .[bench]`).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):          # this checkout's tracegrad, and the helper modules beside this file
    if _p not in sys.path:
        sys.path.insert(0, _p)
if __name__ == "__main__":       # the helper modules `import run`: let them find this module, not a copy
    sys.modules.setdefault("run", sys.modules[__name__])

import _extra_workloads as extra  # noqa: E402
from _busy import Spinners  # noqa: E402
from _common import NotAvailable, Variants, write_json  # noqa: E402

COMPILED = ("small_mlp", "mnist_mlp", "chain", "pendulum", "pendulum_while", "dispatch", "compile")
WORKLOADS = COMPILED + extra.WORKLOADS
PEERS = ("handnumba", "jax", "torch", "autograd")
# (section, heading, workloads, peers that implement them, tracegrad's column heading)
SECTIONS = (
    ("compiled", "compiled (tg.jit)", COMPILED, ("handnumba", "jax", "torch"), "tracegrad"),
    ("eager", "eager mode: tracegrad in `with tg.eager():` vs eager peers", extra.EAGER,
     ("autograd", "torch"), "tracegrad eager"),
    ("transforms", "transforms called per call / per step, not jitted", extra.TRANSFORMS,
     ("autograd", "jax"), "tracegrad"),
    ("vmap", "vmap and Jacobians (jitted)", extra.VMAP, ("jax",), "tracegrad"),
)
LR = 0.01                 # SGD learning rate of the MLP steps
STEPS, DT = 500, 0.01     # pendulum: explicit-Euler steps and step size
E_STOP, MAX_STEPS = 12.0, 2000   # pendulum_while: step until the energy drops below E_STOP (480 steps)


def section_of(workload):
    return next(sec for sec in SECTIONS if workload in sec[2])


def workload_dtype(workload):
    if workload in extra.WORKLOADS:
        return extra.dtype(workload)
    return np.float32 if workload.endswith("mlp") else np.float64


# ---------------------------------------------------------------- data and NumPy references

def make_data(workload):
    """The workload's inputs, generated the same way for every implementation (seed 0)."""
    if workload in extra.WORKLOADS:
        return extra.make_data(workload)
    rng = np.random.default_rng(0)
    f32 = np.float32
    if workload == "small_mlp":
        X = rng.standard_normal((32, 16)).astype(f32)
        Y = rng.standard_normal((32, 1)).astype(f32)
        P = [(rng.standard_normal((16, 64)) * 0.25).astype(f32), np.zeros(64, f32),
             (rng.standard_normal((64, 1)) * 0.125).astype(f32), np.zeros(1, f32)]
        return P, X, Y
    if workload == "mnist_mlp":
        X = rng.standard_normal((128, 784)).astype(f32)
        Y = np.eye(10, dtype=f32)[rng.integers(0, 10, 128)]
        P = [(rng.standard_normal((784, 256)) * 0.036).astype(f32), np.zeros(256, f32),
             (rng.standard_normal((256, 10)) * 0.0625).astype(f32), np.zeros(10, f32)]
        return P, X, Y
    if workload == "chain":
        return rng.standard_normal(1_000_000)
    if workload in ("pendulum", "pendulum_while"):
        return np.array([1.3, 0.2]), rng.standard_normal(64), np.zeros(64)
    if workload == "dispatch":
        return rng.standard_normal(10)
    raise ValueError(workload)


def reference(workload):
    """Expected outputs, computed in float64 with NumPy and hand-derived derivatives."""
    if workload in extra.WORKLOADS:
        return extra.reference(workload)
    d = make_data(workload)
    if workload in ("small_mlp", "mnist_mlp"):
        P, X, Y = ([p.astype(np.float64) for p in d[0]], d[1].astype(np.float64), d[2].astype(np.float64))
        W1, b1, W2, b2 = P
        Z = X @ W1 + b1
        H = np.tanh(Z) if workload == "small_mlp" else np.maximum(Z, 0)
        out = H @ W2 + b2
        if workload == "small_mlp":
            D = out - Y
            loss, dout = np.mean(D * D), 2 * D / D.size
            dZ = (dout @ W2.T) * (1 - H * H)
        else:
            z = out - out.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -np.mean(np.sum(Y * logp, axis=1))
            dout = (np.exp(logp) * Y.sum(axis=1, keepdims=True) - Y) / len(X)
            dZ = (dout @ W2.T) * (Z > 0)
        grads = [X.T @ dZ, dZ.sum(0), H.T @ dout, dout.sum(0)]
        return [p - LR * g for p, g in zip(P, grads)] + [np.asarray(loss)]
    if workload == "chain":
        x = d
        s, c, e = np.sin(x), np.cos(x), np.exp(-x * x)
        t = np.tanh(s * e)
        return [(1 - t * t) * e * (c - 2 * x * s) + 2 * x / (1 + x * x)]
    if workload in ("pendulum", "pendulum_while"):
        (k, c), x, v = d
        xs, vs = [x], [v]
        while (len(xs) <= STEPS if workload == "pendulum" else
               np.sum(0.5 * v * v + k * (1 - np.cos(x))) > E_STOP and len(xs) <= MAX_STEPS):
            x, v = x + DT * v, v + DT * (-k * np.sin(x) - c * v)
            xs.append(x)
            vs.append(v)
        lx, lv, gk, gc = 2 * (xs[-1] - 0.5), np.zeros_like(x), 0.0, 0.0
        for t in range(len(xs) - 2, -1, -1):
            la = DT * lv
            gk -= np.sum(la * np.sin(xs[t]))
            gc -= np.sum(la * vs[t])
            lx, lv = lx - la * k * np.cos(xs[t]), lv + DT * lx - la * c
        return [np.array([gk, gc])]
    if workload == "dispatch":
        return [np.cos(d) * d + np.sin(d)]
    raise ValueError(workload)


def check(outputs, expected, dtype):
    """'ok' or a description of the worst relative mismatch against the reference."""
    if len(outputs) != len(expected):
        return f"MISMATCH: {len(outputs)} outputs, expected {len(expected)}"
    tol = 2e-3 if dtype == np.float32 else 1e-7
    worst = 0.0
    for o, e in zip(outputs, expected):
        o, e = np.asarray(o, np.float64), np.asarray(e, np.float64)
        if o.shape != e.shape:
            return f"MISMATCH: shape {o.shape}, expected {e.shape}"
        worst = max(worst, float(np.max(np.abs(o - e), initial=0.0) / (np.max(np.abs(e), initial=0.0) + 1e-30)))
    return "ok" if worst <= tol else f"MISMATCH: max relative error {worst:.2e}"


def flat(out):
    """Nested tuples/lists of arrays (any framework) -> flat list of NumPy arrays."""
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in flat(o)]
    if hasattr(out, "detach"):                      # torch
        out = out.detach().numpy()
    return [np.asarray(out)]


# ---------------------------------------------------------------- tracegrad

def tracegrad_impl(workload):
    """A zero-argument callable running one unit of the workload with tracegrad's public API
    (or, for workloads measured several ways, a Variants of them)."""
    if workload in extra.WORKLOADS:
        return extra.tracegrad_impl(workload)
    return _caller(*tracegrad_jitted(workload))


def _caller(fn, args):
    """`lambda: fn(*args)`, without the argument unpacking for one argument (the dispatch workload)."""
    if len(args) == 1:
        (a,) = args
        return lambda: fn(a)
    return lambda: fn(*args)


def tracegrad_jitted(workload):
    """(the jitted tracegrad function, its arguments) of a compiled-section workload."""
    import tracegrad as tg

    if workload in extra.WORKLOADS:
        return extra.tracegrad_jitted(workload)
    if workload in ("small_mlp", "mnist_mlp"):
        return tracegrad_mlp_step(workload), make_data(workload)
    if workload == "chain":
        x = make_data(workload)

        def f(x):
            return np.sum(np.tanh(np.sin(x) * np.exp(-x * x)) + np.log1p(x * x))
        return tg.jit(tg.grad(f)), (x,)
    if workload == "pendulum":
        if not hasattr(tg, "fori_loop"):
            raise NotAvailable("n/a (needs fori_loop)")
        p, x0, v0 = make_data(workload)

        def loss(p, x0, v0):
            k, c = p[0], p[1]

            def body(i, state):
                x, v = state
                a = -k * np.sin(x) - c * v
                return x + DT * v, v + DT * a
            x, _ = tg.fori_loop(0, STEPS, body, (x0, v0))
            return np.sum((x - 0.5) ** 2)
        return tg.jit(tg.grad(loss)), (p, x0, v0)
    if workload == "pendulum_while":
        p, x0, v0 = make_data(workload)

        def loss(p, x0, v0):
            k, c = p[0], p[1]

            def running(state):
                i, x, v = state
                energy = np.sum(0.5 * v * v + k * (1 - np.cos(x)))
                return (energy > E_STOP) & (i < MAX_STEPS)

            def body(state):
                i, x, v = state
                a = -k * np.sin(x) - c * v
                return i + 1, x + DT * v, v + DT * a
            _, x, _ = tg.while_loop(running, body, (0, x0, v0))
            return np.sum((x - 0.5) ** 2)
        return tg.jit(tg.grad(loss)), (p, x0, v0)
    if workload == "dispatch":
        x = make_data(workload)
        return tg.jit(tg.grad(lambda x: np.sum(np.sin(x) * x))), (x,)
    raise ValueError(workload)


def tracegrad_mlp_step(workload):
    """The jitted SGD step (loss, gradient and update in one compiled function)."""
    import tracegrad as tg

    def loss(P, X, Y):
        W1, b1, W2, b2 = P
        if workload == "small_mlp":
            out = np.tanh(X @ W1 + b1) @ W2 + b2
            return np.mean((out - Y) ** 2)
        out = np.maximum(X @ W1 + b1, 0) @ W2 + b2
        z = out - tg.stop_gradient(np.max(out, axis=1, keepdims=True))
        logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return -np.mean(np.sum(Y * logp, axis=1))

    @tg.jit
    def step(P, X, Y):
        value, grads = tg.value_and_grad(loss)(P, X, Y)
        return [p - LR * g for p, g in zip(P, grads)], value
    return step


# ---------------------------------------------------------------- peers

def handnumba_impl(workload):
    import _handnumba as hn   # benchmarks/ is on sys.path when this file runs as a script

    d = make_data(workload)
    if workload in ("small_mlp", "mnist_mlp"):
        P, X, Y = d
        step = hn.small_mlp_step if workload == "small_mlp" else hn.mnist_mlp_step
        lr = np.float32(LR)
        return lambda: step(*P, X, Y, lr)
    if workload == "chain":
        return lambda: hn.chain_grad(d)
    if workload == "pendulum":
        p, x0, v0 = d
        return lambda: hn.pendulum_grad(p, x0, v0, STEPS, DT)
    if workload == "pendulum_while":
        p, x0, v0 = d
        return lambda: hn.pendulum_while_grad(p, x0, v0, DT, E_STOP, MAX_STEPS)
    if workload == "dispatch":
        return lambda: hn.dispatch_grad(d)
    raise ValueError(workload)


def jax_impl(workload):
    try:
        import jax
    except ImportError:
        raise NotAvailable("not installed") from None
    if workload in extra.WORKLOADS:
        return extra.jax_impl(workload)
    jf, args = jax_jitted(workload)
    if workload == "pendulum_while":
        try:
            jf(*args)
        except ValueError as e:      # JAX has no reverse mode through while_loop
            raise NotAvailable("n/a (no VJP of while_loop)") from e
    ready = jax.block_until_ready
    if len(args) == 1:
        (a,) = args
        return lambda: ready(jf(a))
    return lambda: ready(jf(*args))


def jax_jitted(workload):
    """(a jax.jit function, its arguments as JAX arrays) for one workload."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    if workload in extra.WORKLOADS:
        return extra.jax_jitted(workload)
    d = make_data(workload)
    if workload in ("small_mlp", "mnist_mlp"):
        P, X, Y = d

        def loss(P, X, Y):
            W1, b1, W2, b2 = P
            if workload == "small_mlp":
                return jnp.mean((jnp.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2)
            out = jax.nn.relu(X @ W1 + b1) @ W2 + b2
            return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(out, axis=1), axis=1))

        @jax.jit
        def step(P, X, Y):
            value, grads = jax.value_and_grad(loss)(P, X, Y)
            return [p - LR * g for p, g in zip(P, grads)], value
        return step, ([jnp.asarray(p) for p in P], jnp.asarray(X), jnp.asarray(Y))
    if workload == "chain":
        g = jax.jit(jax.grad(lambda x: jnp.sum(jnp.tanh(jnp.sin(x) * jnp.exp(-x * x)) + jnp.log1p(x * x))))
        return g, (jnp.asarray(d),)
    if workload == "pendulum":
        p, x0, v0 = (jnp.asarray(a) for a in d)

        def loss(p):
            k, c = p[0], p[1]

            def body(i, state):
                x, v = state
                return x + DT * v, v + DT * (-k * jnp.sin(x) - c * v)
            x, _ = jax.lax.fori_loop(0, STEPS, body, (x0, v0))
            return jnp.sum((x - 0.5) ** 2)
        return jax.jit(jax.grad(loss)), (p,)
    if workload == "pendulum_while":
        p, x0, v0 = (jnp.asarray(a) for a in d)

        def loss(p):
            k, c = p[0], p[1]

            def running(state):
                i, x, v = state
                return (jnp.sum(0.5 * v * v + k * (1 - jnp.cos(x))) > E_STOP) & (i < MAX_STEPS)

            def body(state):
                i, x, v = state
                return i + 1, x + DT * v, v + DT * (-k * jnp.sin(x) - c * v)
            _, x, _ = jax.lax.while_loop(running, body, (0, x0, v0))
            return jnp.sum((x - 0.5) ** 2)
        return jax.jit(jax.grad(loss)), (p,)
    if workload == "dispatch":
        return jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(x) * x))), (jnp.asarray(d),)
    raise ValueError(workload)


def torch_impl(workload):
    try:
        import torch
    except ImportError:
        raise NotAvailable("not installed") from None
    if workload in extra.WORKLOADS:
        return extra.torch_impl(workload)
    d = make_data(workload)
    if workload in ("small_mlp", "mnist_mlp"):
        P, X, Y = d
        P = [torch.tensor(p, requires_grad=True) for p in P]
        X, Y = torch.tensor(X), torch.tensor(Y)

        def step():
            W1, b1, W2, b2 = P
            if workload == "small_mlp":
                value = torch.mean((torch.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2)
            else:
                out = torch.relu(X @ W1 + b1) @ W2 + b2
                value = -torch.mean(torch.sum(Y * torch.log_softmax(out, dim=1), dim=1))
            grads = torch.autograd.grad(value, P)
            with torch.no_grad():
                return [p - LR * g for p, g in zip(P, grads)], value.detach()
        return step
    if workload == "chain":
        x = torch.tensor(d, requires_grad=True)

        def g():
            value = torch.sum(torch.tanh(torch.sin(x) * torch.exp(-x * x)) + torch.log1p(x * x))
            return torch.autograd.grad(value, x)[0]
        return g
    if workload == "pendulum":
        p, x0, v0 = d
        p, x0, v0 = torch.tensor(p, requires_grad=True), torch.tensor(x0), torch.tensor(v0)

        def g():                      # eager PyTorch has no fori_loop: a Python loop, as users write it
            k, c = p[0], p[1]
            x, v = x0, v0
            for _ in range(STEPS):
                x, v = x + DT * v, v + DT * (-k * torch.sin(x) - c * v)
            return torch.autograd.grad(torch.sum((x - 0.5) ** 2), p)[0]
        return g
    if workload == "pendulum_while":
        p, x0, v0 = d
        p, x0, v0 = torch.tensor(p, requires_grad=True), torch.tensor(x0), torch.tensor(v0)

        def g():
            k, c = p[0], p[1]
            x, v, i = x0, v0, 0
            while float(torch.sum(0.5 * v * v + k * (1 - torch.cos(x)))) > E_STOP and i < MAX_STEPS:
                x, v, i = x + DT * v, v + DT * (-k * torch.sin(x) - c * v), i + 1
            return torch.autograd.grad(torch.sum((x - 0.5) ** 2), p)[0]
        return g
    if workload == "dispatch":
        x = torch.tensor(d, requires_grad=True)
        return lambda: torch.autograd.grad(torch.sum(torch.sin(x) * x), x)[0]
    raise ValueError(workload)


def autograd_impl(workload):
    if workload in extra.WORKLOADS:
        return extra.autograd_impl(workload)
    raise NotAvailable("n/a")


IMPLS = {"tracegrad": tracegrad_impl, "handnumba": handnumba_impl, "jax": jax_impl, "torch": torch_impl,
         "autograd": autograd_impl}


# ---------------------------------------------------------------- timing

def _noop(x):
    return x


def time_alternating(fns, seconds, rounds, warmup, min_calls=3):
    """Per-call wall times of each callable in `fns` (name -> fn), interleaved over `rounds`.

    Every callable is warmed up, then each round times each callable for seconds/rounds (at least
    `min_calls` calls), rotating the order from round to round so that slow drifts of a shared
    machine hit all of them alike. Returns name -> sorted list of per-call seconds.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples = {name: [] for name in names}
    per_round = seconds / rounds
    clock = time.perf_counter
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, ts = fns[name], samples[name]
            n0, t_end = len(ts), clock() + per_round
            while clock() < t_end or len(ts) - n0 < min_calls:
                t0 = clock()
                fn()
                ts.append(clock() - t0)
    return {name: sorted(ts) for name, ts in samples.items()}


def summarise(ts):
    return {"median_us": statistics.median(ts) * 1e6, "min_us": ts[0] * 1e6, "n": len(ts)}


# ---------------------------------------------------------------- one in-process workload

def _build(rec, build, expected, dtype, fns, key):
    """Build one implementation, call it once (first call, result check); register it for timing."""
    try:
        fn = build()
        t0 = time.perf_counter()
        out = fn()
        rec["first_call_s"] = time.perf_counter() - t0
        rec["check"] = check(flat(out), expected, dtype)
        rec["status"] = "ok"
        fns[key] = fn
    except NotAvailable as e:
        rec["status"] = str(e)
    except Exception as e:       # a broken implementation must not hide the others' numbers
        rec["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def run_workload(workload, impl_names, opts):
    expected = reference(workload)
    dtype = workload_dtype(workload)
    records, fns = {}, {}          # key "impl" or "impl/variant" -> record, callable
    for name in impl_names:
        base = {"workload": workload, "impl": name}
        try:
            impl = IMPLS[name](workload)
        except NotAvailable as e:
            records[name] = dict(base, status=str(e))
            continue
        except Exception as e:
            records[name] = dict(base, status=f"error: {type(e).__name__}: "
                                              f"{str(e).splitlines()[0] if str(e) else ''}")
            continue
        if isinstance(impl, Variants):
            for label, build in impl.items():
                key = f"{name}/{label}"
                records[key] = dict(base, variant=label)
                _build(records[key], build, expected, dtype, fns, key)
        else:
            records[name] = dict(base)
            _build(records[name], lambda: impl, expected, dtype, fns, name)
    if workload == "dispatch":
        x = make_data("dispatch")
        fns["python_call"] = lambda: _noop(x)
    if opts.check_only:
        fns = {}
    samples = time_alternating(fns, opts.seconds, opts.rounds, opts.warmup) if fns else {}
    base = statistics.median(samples["python_call"]) * 1e6 if "python_call" in samples else 0.0
    for key, ts in samples.items():
        if key == "python_call":
            continue
        s = summarise(ts)
        if "python_call" in samples:   # dispatch: per-call time minus a plain Python call
            s = {"median_us": s["median_us"] - base, "min_us": s["min_us"] - base, "n": s["n"],
                 "raw_median_us": s["median_us"], "baseline_us": base}
        records[key].update(s)
    return list(records.values())


# ---------------------------------------------------------------- compile workload (subprocesses)

def _run_isolated(workload, peer, opts):
    """Measure one peer on one workload in a child process of this script; return its record."""
    out = tempfile.mktemp(suffix=".json", prefix="tg-bench-peer-")
    cmd = [sys.executable, os.path.abspath(__file__), "--only", workload, "--peers", peer, "--peers-only",
           "--json", out, "--seconds", str(opts.seconds), "--rounds", str(opts.rounds)]
    if opts.quick:
        cmd.append("--quick")
    if opts.check_only:
        cmd.append("--check-only")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        with open(out) as f:
            recs = json.load(f)["results"]
        os.unlink(out)
        for rec in recs:
            rec["process"] = "child"
        return recs
    except (OSError, ValueError, IndexError, KeyError):
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"workload": workload, "impl": peer, "status": f"error: child process: {err}"}]


def child_compile(framework):
    """Run inside a fresh interpreter: build the mnist_mlp step, print the wall clock at its result."""
    if framework == "jax" and os.environ.get("TG_BENCH_CACHE_DIR"):
        import jax
        jax.config.update("jax_compilation_cache_dir", os.environ["TG_BENCH_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    out = IMPLS[framework]("mnist_mlp")()
    flat(out)
    print(f"TG_BENCH_RESULT {time.time():.6f}", flush=True)


def run_compile(impl_names, opts):
    """Time from interpreter start to the first mnist_mlp step result: cold (empty caches), then warm."""
    records = []
    for name in impl_names:
        rec = {"workload": "compile", "impl": name}
        records.append(rec)
        if name in ("jax", "torch") and importlib.util.find_spec(name) is None:   # without importing it
            rec["status"] = "not installed"
            continue
        tmp = tempfile.mkdtemp(prefix=f"tg-bench-{name}-")
        env = dict(os.environ)
        env.update(TRACEGRAD_CACHE_DIR=os.path.join(tmp, "tracegrad"),
                   NUMBA_CACHE_DIR=os.path.join(tmp, "numba"),
                   TG_BENCH_CACHE_DIR=os.path.join(tmp, "peer"),
                   TG_BENCH_NUMBA_CACHE="1", PYTHONDONTWRITEBYTECODE="1")
        try:
            cold = [_time_child(name, env)]
            warm = [_time_child(name, env) for _ in range(opts.warm_repeats)]
            rec.update(status="ok", cold_s=cold[0], warm_s=statistics.median(warm), warm_all_s=warm)
        except Exception as e:
            rec["status"] = f"error: {e}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return records


def _time_child(name, env):
    t0 = time.time()
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-compile", name],
                       env=env, capture_output=True, text=True, timeout=900)
    for line in p.stdout.splitlines():
        if line.startswith("TG_BENCH_RESULT "):
            return float(line.split()[1]) - t0
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"child exited {p.returncode}: {tail}")


# ---------------------------------------------------------------- report

def machine_info(backend, load_start):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("tracegrad", "numba", "llvmlite", "jax", "jaxlib", "torch", "autograd"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except Exception:
        commit = None
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                          "NUMBA_NUM_THREADS", "XLA_FLAGS", "TRACEGRAD_COMPILE")
               if k in os.environ}
    return {"cpu": cpu, "cores": os.cpu_count(), "thread_env": threads,
            "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(), "versions": versions, "tracegrad_backend": backend,
            "git_commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def fmt_time(us):
    if us is None:
        return "—"
    if abs(us) >= 1e6:
        return f"{us / 1e6:.2f} s"
    if abs(us) >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.1f} µs"


def cell(rec):
    if rec is None:
        return "—"
    if rec.get("status") != "ok":
        st = rec.get("status", "")
        return "—" if st == "not installed" else (st if st.startswith("n/a") else "error")
    if "median_us" not in rec:         # --check-only
        return "ok" if rec.get("check", "ok") == "ok" else "(!)"
    return fmt_time(rec["median_us"]) + ("" if rec.get("check", "ok") == "ok" else " (!)")


def _value(rec):
    return rec.get("median_us") if rec is not None and rec.get("status") == "ok" else None


def row_label(workload, variant=None):
    label = {"dispatch": "dispatch (overhead)"}.get(workload, workload)
    return f"{label}: {variant}" if variant else label


def table_rows(section, results, impl_names):
    """(heading, rows) of one section's table; None when none of its workloads ran."""
    _, _, workloads, sec_peers, tg_head = section
    peers = [n for n in sec_peers if n in impl_names]
    head = ["workload", tg_head] + peers + [f"tg/{p}" for p in peers]
    rows = []
    for workload, recs in results:
        if workload not in workloads:
            continue
        by = {r["impl"]: r for r in recs if "variant" not in r}
        if workload == "compile":
            names = ["tracegrad"] + peers
            for phase in ("cold", "warm"):
                vals = {n: (by[n][f"{phase}_s"] * 1e6 if by.get(n, {}).get("status") == "ok" else None)
                        for n in names}
                row = [f"compile ({phase})"] + [fmt_time(vals[n]) if vals[n] is not None else cell(by.get(n))
                                                for n in names]
                rows.append(row + [_ratio(vals["tracegrad"], vals[p]) for p in peers])
            continue
        tg_recs = [r for r in recs if r["impl"] == "tracegrad"] or [None]
        for tg in tg_recs:
            row = [row_label(workload, tg and tg.get("variant")), cell(tg)] + [cell(by.get(p)) for p in peers]
            rows.append(row + [_ratio(_value(tg), _value(by.get(p))) for p in peers])
    return (head, rows) if rows else None


def print_table(results, impl_names, busy=0):
    for section in SECTIONS:
        table = table_rows(section, results, impl_names)
        if table is None:
            continue
        head, rows = table
        print(f"## {section[1]}" + (f" — busy: {busy} spinning process(es)" if busy else ""))
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)   # noqa: E731
                                   for i, (c, w) in enumerate(zip(r, widths)))
        print(line(head))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print(line(r))
        print()


def _ratio(a, b):
    if a is None or b is None or b <= 0:
        return "—"
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def print_notes(results, impl_names):
    """Problems, failed result checks, and the first-call times (trace + compile + first run)."""
    firsts = []
    for workload, recs in results:
        for r in recs:
            where = f"{workload}/{r['impl']}" + (f" [{r['variant']}]" if r.get("variant") else "")
            if r.get("status", "ok") not in ("ok", "not installed") and not r["status"].startswith("n/a"):
                print(f"  {where}: {r['status']}")
            if r.get("check", "ok") != "ok":
                print(f"  {where}: result check failed, {r['check']} (marked (!))")
        if any("first_call_s" in r for r in recs):
            by = {r["impl"]: r for r in recs if "variant" not in r}
            tg_recs = [r for r in recs if r["impl"] == "tracegrad"] or [{}]
            for tg in tg_recs:
                by["tracegrad"] = tg
                firsts.append([row_label(workload, tg.get("variant"))]
                              + [f"{by[n]['first_call_s']:.2f} s" if "first_call_s" in by.get(n, {}) else "—"
                                 for n in impl_names])
    if firsts:
        print("\nfirst call in this process (trace + compile + first run):")
        head = ["workload"] + list(impl_names)
        widths = [max(len(r[i]) for r in firsts + [head]) for i in range(len(head))]
        for r in [head] + firsts:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="tracegrad benchmarks with peers in the same run")
    p.add_argument("--quick", action="store_true", help="short timings (one round, 0.2 s per implementation)")
    p.add_argument("--only", default=None, help=f"comma-separated workloads out of {','.join(WORKLOADS)}")
    p.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"), help="where to write results")
    p.add_argument("--no-peers", action="store_true", help="measure tracegrad only")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated peers ({','.join(PEERS)})")
    p.add_argument("--seconds", type=float, default=None, help="timed seconds per implementation and workload")
    p.add_argument("--rounds", type=int, default=None, help="alternation rounds")
    p.add_argument("--same-process", action="store_true",
                   help="time JAX and PyTorch in this process too (by default each runs in a child "
                        "process: their idle thread pools spin and slow whatever runs next on 2 cores)")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="keep N spinning processes running while measuring (a loaded machine)")
    p.add_argument("--check-only", action="store_true",
                   help="call every implementation once and check its result; no timing")
    p.add_argument("--compile", default=None, choices=("sync", "background", "never"),
                   help="tracegrad's compile mode for tg.jit (sets TRACEGRAD_COMPILE; default: the "
                        "environment's, else sync, so that timed calls run native code)")
    p.add_argument("--peers-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-compile", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.seconds = a.seconds if a.seconds is not None else (0.2 if a.quick else 1.5)
    a.rounds = a.rounds if a.rounds is not None else (1 if a.quick else 5)
    a.warmup = 1 if a.quick else 3
    a.warm_repeats = 1 if a.quick else 2
    return a


def main(argv=None):
    opts = parse_args(argv)
    if opts.child_compile:
        child_compile(opts.child_compile)
        return 0
    if opts.compile:
        os.environ["TRACEGRAD_COMPILE"] = opts.compile
    else:        # time native code, not an interpreter tier running while native code is built
        os.environ.setdefault("TRACEGRAD_COMPILE", "sync")
    backend = "interpreter" if os.environ["TRACEGRAD_COMPILE"] == "never" else "numba"
    workloads = WORKLOADS if not opts.only else tuple(w.strip() for w in opts.only.split(",") if w.strip())
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    peers = [] if opts.no_peers else [p.strip() for p in opts.peers.split(",") if p.strip()]
    for p in peers:
        if p not in PEERS:
            raise SystemExit(f"unknown peer {p!r}; choose from {', '.join(PEERS)}")
    impl_names = ([] if opts.peers_only else ["tracegrad"]) + peers
    # Foreign runtimes keep thread pools that spin after each call; on a 2-core machine they steal the
    # cores from the next implementation timed in the same process (mnist_mlp measured 25x slower for
    # both Numba implementations with JAX loaded). So by default each runs in its own child process.
    isolated = [] if (opts.same_process or opts.peers_only) else [p for p in peers if p in ("jax", "torch")]
    local = [n for n in impl_names if n not in isolated]

    # a fresh on-disk cache, so that first_call_s is a real trace + compile
    load_start = os.getloadavg()[0]
    cache = tempfile.mkdtemp(prefix="tg-bench-cache-")
    os.environ["TRACEGRAD_CACHE_DIR"] = cache
    timing = "results only, no timing" if opts.check_only else \
        f"{opts.seconds:g} s per implementation in {opts.rounds} round(s)"
    print(f"tracegrad backend: {backend}, compile mode {os.environ['TRACEGRAD_COMPILE']}; "
          f"peers: {', '.join(peers) or 'none'}; {timing}; busy: {opts.busy}; "
          f"load average {load_start:.2f}", flush=True)
    if load_start > (os.cpu_count() or 1) * 0.5:
        print(f"note: load average {load_start:.1f} on {os.cpu_count()} cores; other work is running, "
              f"expect noisy timings (multi-threaded BLAS/Numba regions suffer most)", flush=True)
    results = []
    spinners = Spinners(opts.busy)
    try:
        with spinners:
            if opts.busy:
                print(f"busy: {opts.busy} spinning process(es), pids {' '.join(map(str, spinners.pids()))}",
                      flush=True)
            for w in workloads:
                t0 = time.perf_counter()
                mine = [n for n in impl_names if n == "tracegrad" or n in section_of(w)[3]]
                if w == "compile" and opts.check_only:
                    recs = [{"workload": w, "impl": n, "status": "n/a (--check-only)"} for n in mine]
                elif w == "compile":
                    recs = run_compile(mine, opts)
                else:
                    recs = run_workload(w, [n for n in local if n in mine], opts)
                    for p in isolated:
                        if p in mine:
                            recs += _run_isolated(w, p, opts)
                    recs.sort(key=lambda r: impl_names.index(r["impl"]))
                results.append((w, recs))
                print(f"  {w}: done in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    load_end = os.getloadavg()[0]
    if not opts.peers_only:    # a child measuring peers only reports through its JSON
        print(f"\nload average {load_start:.2f} at start, {load_end:.2f} at end"
              + (f"; busy: {opts.busy} spinning process(es) during the measurement" if opts.busy else "")
              + "\n")
        print_table(results, impl_names, opts.busy)
        print_notes(results, impl_names)
    doc = {"machine": machine_info(backend, load_start),
           "settings": {"quick": opts.quick, "seconds": opts.seconds, "rounds": opts.rounds,
                        "warmup": opts.warmup, "peers": peers, "workloads": list(workloads),
                        "busy": opts.busy, "check_only": opts.check_only,
                        "compile_mode": os.environ["TRACEGRAD_COMPILE"]},
           "busy": spinners.info(),
           "results": [r for _, recs in results for r in recs]}
    write_json(opts.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
