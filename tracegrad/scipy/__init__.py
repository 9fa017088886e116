"""`tracegrad.scipy`: SciPy's API on traced values, mirroring SciPy's signatures.

    special    gammaln, digamma, polygamma, erf/erfc/erfinv, expit/logit, xlogy, i0/i1, logsumexp, ...
    stats      norm, multivariate_normal, t, beta, gamma, poisson, bernoulli, dirichlet
    signal     convolve
    integrate  odeint (adaptive Dormand-Prince; gradients by the adjoint method)

Outside a trace each function returns what SciPy returns; on traced values it records IR, with
derivatives of every order. docs/scipy.md lists what is supported.
"""
from . import special  # noqa: F401  (also registers scipy.special's ufuncs for tracers)

_SUBMODULES = ("special", "stats", "signal", "integrate")


def __getattr__(name):
    # stats, signal and integrate are imported on first use, as SciPy's own subpackages are
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
