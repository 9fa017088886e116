"""The examples run, learn, and stay reproducible (interpreter tier, eager mode, and compiled)."""
import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import EagerFallbackWarning

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load_example(name):
    """A fresh module object for examples/NAME.py (fresh jit caches: no entry leaks between tests)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_example(args, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_train_mlp_few_epochs_interpret():
    res = load_example("train_mlp").main(epochs=3, verbose=False)
    assert res["test_acc"] >= 0.93, res
    losses = [h[0] for h in res["history"]]
    assert losses[0] > losses[1] > losses[2], losses


def test_train_mlp_default_reaches_95_percent_interpret(capsys):
    res = load_example("train_mlp").main()           # the README's command, default settings
    assert res["test_acc"] >= 0.95, res
    assert res["train_acc"] >= 0.98, res
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("final test accuracy: "), last


def test_train_mlp_is_reproducible():
    a = load_example("train_mlp").main(epochs=2, verbose=False)
    b = load_example("train_mlp").main(epochs=2, verbose=False)
    assert a["history"] == b["history"]


@pytest.mark.compiled
def test_train_mlp_compiled_matches_interpreter(monkeypatch):
    res = load_example("train_mlp").main(epochs=2, verbose=False)
    assert res["test_acc"] >= 0.93, res
    monkeypatch.setenv("TRACEGRAD_COMPILE", "never")
    ref = load_example("train_mlp").main(epochs=2, verbose=False)
    for (loss, train_acc, test_acc), (rloss, rtrain, rtest) in zip(res["history"], ref["history"]):
        assert abs(loss - rloss) <= 1e-4 * abs(rloss) + 1e-6
        assert abs(train_acc - rtrain) <= 2 / 1437 and abs(test_acc - rtest) <= 2 / 360


def test_train_mlp_eager_mode_cli():
    p = run_example(["examples/train_mlp.py", "--epochs", "1"], TRACEGRAD_EAGER="1")
    assert p.returncode == 0, p.stderr
    assert "tracegrad mode: eager" in p.stdout
    last = p.stdout.strip().splitlines()[-1]
    m = re.match(r"final test accuracy: ([0-9.]+)%", last)
    assert m, p.stdout
    assert float(m.group(1)) >= 90.0, last


def test_debug_nan_example_locates_the_anomalies():
    p = run_example(["examples/debug_nan.py"], TRACEGRAD_COMPILE="never")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.count("AnomalyError:") == 3, out
    assert "primitive      = 'log'" in out and "phase          = 'forward'" in out
    assert "phase          = 'backward'" in out
    assert re.search(r"forward_source = '.*debug_nan\.py:\d+'", out), out


def test_per_example_grads_match_a_loop_and_clip_interpret():
    ex = load_example("per_example_grads")
    res = ex.main(epochs=2, verbose=False)
    assert res["max_rel_diff"] < 1e-5, res["max_rel_diff"]      # vmap(grad) vs a loop of grad (float32)
    assert res["norms"].shape == (64,) and res["norms"].min() > 1.0      # clipping really bites
    assert res["test_acc"] >= 0.7, res["test_acc"]
    tl = load_example("train_mlp")
    x, labels = tl.load_digits()
    params = tl.init_params((64, 16, 10), 3)
    xb, yb = x[:8] / 16, tl.one_hot(labels[:8])
    mean, norms = ex.clipped_mean(ex.per_example_grads(params, xb, yb), 0.5)
    grad = tg.grad(ex.example_loss)
    want = {k: np.zeros_like(p) for k, p in params.items()}
    for i in range(8):                 # DP-SGD's clipping, one example at a time
        g = grad(params, xb[i], yb[i])
        n = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in g.values()))
        np.testing.assert_allclose(norms[i], n, rtol=1e-5)
        for k in want:
            want[k] += g[k] * min(1.0, 0.5 / n) / 8
    for k in want:
        np.testing.assert_allclose(mean[k], want[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["train_mlp", "debug_nan", "per_example_grads", "black_box_svi", "fluid_sim"])
def test_examples_do_not_import_sklearn(name):
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "sklearn" not in imported


def test_bundled_digits_are_complete():
    x, y = load_example("train_mlp").load_digits()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.min() == 0 and x.max() == 16 and sorted(set(y.tolist())) == list(range(10))
    assert (EXAMPLES / "data" / "digits.rst").exists() and (EXAMPLES / "data" / "README.md").exists()


# ---------------------------------------------------------------- black-box VI, fluid simulation

def test_black_box_svi_learns_the_mean_field_optimum_and_is_reproducible(recwarn):
    res = load_example("black_box_svi").main(steps=300, verbose=False)
    assert not [w for w in recwarn if issubclass(w.category, EagerFallbackWarning)]
    # a Gaussian posterior: the best diagonal Gaussian has its mean and std 1/sqrt(precision_ii)
    assert np.allclose(res["mean"], res["exact_mean"], atol=0.05), res
    assert np.allclose(res["std"], res["mean_field_std"], rtol=0.25), res
    losses = res["losses"]
    assert losses.shape == (300,) and losses[-50:].mean() < 0.75 * losses[:10].mean()
    again = load_example("black_box_svi").main(steps=300, verbose=False)
    np.testing.assert_array_equal(again["losses"], losses)


def test_black_box_svi_compiled_steps_draw_what_eager_steps_draw():
    import tracegrad as tg
    compiled = load_example("black_box_svi").main(steps=25, verbose=False)["losses"]
    with tg.eager():
        eager = load_example("black_box_svi").main(steps=25, verbose=False)["losses"]
    np.testing.assert_allclose(compiled, eager, rtol=1e-12)
    assert len(set(np.round(compiled, 9))) == 25     # a new estimate every step


def test_fluid_sim_optimises_the_flow_and_is_reproducible(recwarn):
    mod = load_example("fluid_sim")
    res = mod.main(grid=16, steps=6, iters=12, verbose=False)
    assert not [w for w in recwarn if issubclass(w.category, EagerFallbackWarning)]
    assert res["final"] < 0.4 * res["initial"], res["history"]
    assert res["history"] == sorted(res["history"], reverse=True)
    again = load_example("fluid_sim").main(grid=16, steps=6, iters=12, verbose=False)
    np.testing.assert_array_equal(again["x"], res["x"])


def test_fluid_sim_gradient_of_its_one_element_objective():
    import tracegrad as tg
    mod = load_example("fluid_sim")
    smoke, target = mod.make_problem(12)
    objective, _ = mod.make_objective(smoke, target, 4)
    x0 = mod.outward_flow(12, 0.4)
    assert objective(x0).shape == (1,)
    tg.check_grads(objective, (x0,), modes=["rev"], order=1, eps=1e-6)
    ir = str(tg.make_ir(tg.grad(objective))(x0))
    assert "gather" in ir and "floor" in ir


@pytest.mark.parametrize("name", ["black_box_svi", "fluid_sim"])
def test_new_examples_write_their_figure_when_matplotlib_is_installed(name, tmp_path, capsys):
    path = tmp_path / f"{name}.png"
    kwargs = dict(steps=5) if name == "black_box_svi" else dict(grid=8, steps=2, iters=2)
    load_example(name).main(verbose=True, figure=str(path), **kwargs)
    out = capsys.readouterr().out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out and not path.exists()
    else:
        assert path.exists() and path.stat().st_size > 10_000 and f"figure: {path}" in out
