"""Draws with traced parameters (`rng.normal(mu, sigma)` with traced `mu`, `rng.choice(x)` of a
traced array): a draw with static parameters from the same generator, plus traced arithmetic.

NumPy's samplers apply location and scale parameters to a standard variate in C, so the standard
draw consumes the generator's stream exactly as the original call would, and the arithmetic below
repeats NumPy's (in float64, as NumPy converts the parameters): the values are NumPy's, and
derivatives flow to the parameters (the reparameterisation trick).

  normal, laplace, gumbel, logistic (loc, scale)  loc + scale * method(0.0, 1.0, size)
  lognormal (mean, sigma)                         exp(mean + sigma * normal(0.0, 1.0, size))
  uniform (low, high)                             low + (high - low) * uniform(0.0, 1.0, size)
  exponential, rayleigh (scale)                   scale * method(1.0, size)
  gamma (scale; its shape static)                 scale * gamma(shape, 1.0, size)
  multivariate_normal (mean; cov static)          multivariate_normal(zeros, cov, size) + mean
  choice (a; p static)                            take(a, choice(len(a), size, replace, p), axis)
  permutation (x), permuted (x)                   x taken at the permutation of its indices
Integer arguments (a size, a count) that are traced but known (eager mode) are used as the integers
they are; any other traced argument (a gamma's shape, a binomial's p) is a TracerError naming it.
NumPy's checks of parameter values (a negative scale) are not made on traced values.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .draws import GENERATOR, draw, has_tracer, signature_of
from .errors import TracerError
from .trace import Tracer

_LOC_SCALE = {"normal": ("loc", "scale"), "laplace": ("loc", "scale"), "gumbel": ("loc", "scale"),
              "logistic": ("loc", "scale")}
_SCALE = {"exponential": "scale", "rayleigh": "scale"}
TRACEABLE = {**{m: p for m, p in _LOC_SCALE.items()}, **{m: (p,) for m, p in _SCALE.items()},
             "lognormal": ("mean", "sigma"), "uniform": ("low", "high"), "gamma": ("scale",),
             "multivariate_normal": ("mean",), "choice": ("a",), "permutation": ("x",),
             "permuted": ("x",)}
SUPPORTED = ("normal, laplace, gumbel, logistic and lognormal (location and scale), uniform (low, "
             "high), exponential, rayleigh and gamma (scale), multivariate_normal (mean), choice (a), "
             "permutation and permuted (x)")


def traced_draw(session, gen, kind, name, args, kwargs, src, where):
    sig = signature_of(kind, name)
    bound = sig.bind(gen, *args, **kwargs)
    allowed = TRACEABLE.get(name, ())
    for k, v in list(bound.arguments.items()):
        if k not in allowed and has_tracer(v):
            bound.arguments[k] = _static(v, k, where)
    call = lambda method_, *a, **kw: draw(session, gen, kind, method_, a, kw, src, where)  # noqa: E731
    if not any(has_tracer(bound.arguments.get(k)) for k in allowed):
        return call(name, *bound.args[1:], **bound.kwargs)
    params = {k: p.default for k, p in sig.parameters.items()}
    params.update(bound.arguments)
    return _RULES[name](call, params, kind, name, where)


def _static(v, name, where):
    """A traced argument that must be static: its integer value if known (eager mode)."""
    if isinstance(v, (list, tuple)):
        return type(v)(_static(e, name, where) for e in v)
    if isinstance(v, Tracer):
        if v.value is not None and v.dtype.kind in "biu":
            value = np.asarray(v.value)
            return value.item() if value.ndim == 0 else value
        raise TracerError(
            f"{where}: argument '{name}' is a traced value {v.aval}. Draws take traced values only "
            f"as the parameters of {SUPPORTED}; pass a constant here, or draw a standard variate and "
            f"transform it with traced arithmetic.")
    return v


def _f64(v):
    v = ops.as_operand(v)
    return ops.as_dtype(v, np.float64) if isinstance(v, Tracer) else np.asarray(v, np.float64)


def _shape(size, where, *params):
    """The result's shape: `size`, or the parameters' broadcast shape (NumPy's rule)."""
    shapes = [tuple(ops.shape_of(p)) for p in params]
    try:
        common = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"{where}: parameter shapes {shapes} cannot be broadcast together") from None
    if size is None:
        return common
    size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    try:
        ok = tuple(np.broadcast_shapes(size, common)) == size
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{where}: parameters of shapes {shapes} cannot be broadcast to size {size}")
    return size


def _finish(out, size, *params):
    """NumPy returns a Python float when neither size nor an array parameter is given: weak."""
    if size is None and all(ops.shape_of(p) == () for p in params) and isinstance(out, Tracer):
        return Tracer(out.node, out.builder, out.value, True)
    return out


def _loc_scale(call, a, kind, name, where):
    lo, sc = _LOC_SCALE[name]
    loc, scale = _f64(a[lo]), _f64(a[sc])
    z = call(name, 0.0, 1.0, size=_shape(a["size"], where, loc, scale))
    return _finish(loc + scale * z, a["size"], loc, scale)


def _lognormal(call, a, kind, name, where):
    mean, sigma = _f64(a["mean"]), _f64(a["sigma"])
    z = call("normal", 0.0, 1.0, size=_shape(a["size"], where, mean, sigma))
    return _finish(np.exp(mean + sigma * z), a["size"], mean, sigma)


def _uniform(call, a, kind, name, where):
    low, high = _f64(a["low"]), _f64(a["high"])
    u = call("uniform", 0.0, 1.0, size=_shape(a["size"], where, low, high))
    return _finish(low + (high - low) * u, a["size"], low, high)


def _scale(call, a, kind, name, where):
    scale = _f64(a["scale"])
    z = call(name, 1.0, size=_shape(a["size"], where, scale))
    return _finish(scale * z, a["size"], scale)


def _gamma(call, a, kind, name, where):
    shape_param, scale = np.asarray(a["shape"], np.float64), _f64(a["scale"])
    z = call("gamma", a["shape"], 1.0, size=_shape(a["size"], where, shape_param, scale))
    return _finish(scale * z, a["size"], shape_param, scale)


def _multivariate_normal(call, a, kind, name, where):
    mean = _f64(a["mean"])
    if ops.ndim_of(mean) != 1:
        raise ValueError(f"{where}: mean must be 1 dimensional")
    extra = {k: a[k] for k in ("check_valid", "tol", "method") if k in a}
    z = call("multivariate_normal", np.zeros(ops.shape_of(mean)), a["cov"], size=a["size"], **extra)
    return z + mean


def _choice(call, a, kind, name, where):
    arr = ops.as_operand(a["a"])
    axis = a.get("axis", 0)
    if ops.ndim_of(arr) == 0:
        raise ValueError(f"{where}: a traced `a` must be an array to choose from (a population size "
                         f"must be a constant)")
    if kind is not GENERATOR and ops.ndim_of(arr) != 1:
        raise ValueError(f"{where}: a must be 1-dimensional")
    extra = {"shuffle": a["shuffle"]} if kind is GENERATOR else {}
    idx = call("choice", ops.shape_of(arr)[axis], size=a["size"], replace=a["replace"], p=a["p"],
               **extra)
    return np.take(arr, idx, axis=axis)


def _permutation(call, a, kind, name, where):
    x = ops.as_operand(a["x"])
    if ops.ndim_of(x) == 0:
        raise ValueError(f"{where}: a traced x must be an array (a permutation's length must be a "
                         f"constant)")
    axis = a.get("axis", 0)
    idx = call("permutation", ops.shape_of(x)[axis])
    return np.take(x, idx, axis=axis)


def _permuted(call, a, kind, name, where):
    x = ops.as_operand(a["x"])
    if a.get("out") is not None:
        raise TypeError(f"{where}: permuted(..., out=...) cannot write into a traced value")
    shape = tuple(ops.shape_of(x))
    idx = call("permuted", np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape),
               axis=a["axis"])
    return np.take(np.ravel(x), idx)


_RULES = {**{m: _loc_scale for m in _LOC_SCALE}, **{m: _scale for m in _SCALE},
          "lognormal": _lognormal, "uniform": _uniform, "gamma": _gamma,
          "multivariate_normal": _multivariate_normal, "choice": _choice,
          "permutation": _permutation, "permuted": _permuted}
