"""Rules of the primitives behind custom derivatives and opaque Python: `custom_vjp_call`,
`custom_jvp_call` and `callback`.

`custom_vjp_call` and `custom_jvp_call` are *call* primitives: the `call` param holds a traced,
closed, constant-free sub-IR whose inputs are the equation's inputs (the function's flattened
arguments, then the tracers it or its rules closed over, then the arrays it closed over) and whose
outputs are the equation's outputs. Their impl evaluates the sub-IR; their
derivative rules ask the user's rule, held in the `rule` param (a `tracegrad.custom` object compared
by identity). Since every derivative is taken while tracing, a finished IR never needs the user's
rule again, so `tracegrad.passes.inline_calls` replaces these equations by their sub-IR's equations
before compilation: they are marked `inline_before_compile` and have no compiler lowering.

`callback` runs arbitrary Python on concrete arrays (`tg.pure_callback`). It has no derivative:
asking for one raises, pointing at `tg.custom_vjp` (never a silent zero). The compiler lowers it to
a call through Numba's object mode.
"""
from __future__ import annotations

from .. import ops
from ..autodiff import backward_pass, jvp_pass
from ..errors import user_source
from ..ir import Lit, Var
from ..primitives import callback_p, custom_jvp_call_p, custom_vjp_call_p
from ..config import anomaly_enabled
from ..interpret import runner
from ..childtrace import eval_eqns
from ..trace import _source, no_trace
from .common import defimpl, defjvp, defshape, defvjp


# ---------------------------------------------------------------- call primitives: impl, shape

def _call_impl(*args, call, **_):
    with no_trace():
        return runner(call, anomaly_enabled())(*args)


def _call_shape(*avals, call, **_):
    if tuple(avals) != tuple(call.in_avals):
        got = ", ".join(map(str, avals))
        want = ", ".join(map(str, call.in_avals))
        raise TypeError(f"operands ({got}) do not match the traced function's inputs ({want})")
    return tuple(call.out_avals)


for _p in (custom_vjp_call_p, custom_jvp_call_p):
    defimpl(_p, _call_impl)
    defshape(_p, _call_shape)


# ---------------------------------------------------------------- helpers shared by the rules

def replay(call, ins) -> dict:
    """Evaluate the sub-IR's equations in the current builder on `ins`; returns the Var env."""
    env = dict(zip(call.inputs, ins))
    env.update(call.consts)
    eval_eqns(call.eqns, env)
    return env


def _seed(pairs) -> dict:
    """{Var: cotangent} from (output atom, cotangent) pairs, summing repeated outputs."""
    seeds: dict = {}
    for v, c in pairs:
        if isinstance(v, Lit) or c is None or not v.aval.is_float:
            continue
        seeds[v] = c if v not in seeds else ops.add(seeds[v], c)
    return seeds


def _add_into(result, idx, cts):
    for i, c in zip(idx, cts):
        if c is not None:
            result[i] = c if result[i] is None else ops.add(result[i], c)


def materialize(cts, like):
    """Cotangents (or tangents) with None replaced by zeros shaped like `like`."""
    return [ops.zeros_like(o) if c is None else c for c, o in zip(cts, like)]


class _Replay:
    """The sub-IR evaluated in the current builder, at most once per rule application."""

    def __init__(self, call, ins):
        self.call, self.ins, self._env = call, ins, None

    def backward(self, pairs, wanted_idx, result):
        """Ordinary reverse mode through the sub-IR (for what the user's rule does not cover):
        cotangents seeded at (output atom, ct) `pairs` are added into `result[wanted_idx]`."""
        seeds = _seed(pairs)
        if not wanted_idx or not seeds:
            return
        if self._env is None:
            self._env = replay(self.call, self.ins)
        got = backward_pass(self.call.eqns, self._env, seeds,
                            [self.call.inputs[i] for i in wanted_idx])
        _add_into(result, wanted_idx, got)


# ---------------------------------------------------------------- custom_vjp_call

def _custom_vjp_call_vjp(cts, *ins, out, call, rule, n_args, n_out, active=None):
    """Cotangents of (arguments, closed-over values).

    The equation computes (out, residuals) = fwd(args; closure). The user's bwd gives the
    cotangent of `args` from `out`'s cotangent. Residual cotangents (they appear when the bwd rule
    itself is differentiated, i.e. at higher order) and closed-over values are handled by ordinary
    reverse mode through the traced fwd (JAX's semantics), as the user's rule says nothing about
    them, except for residuals that are outputs themselves (see below).
    """
    n_in = len(ins)
    active = tuple(active) if active is not None else (True,) * n_in
    cts = list(cts)
    ct_out, ct_res = cts[:n_out], cts[n_out:]
    # A residual that IS an output (fwd saved its own result, PyTorch's usual pattern) has the
    # derivative the user's rule declares for that output: route its cotangent through bwd.
    for j, r in enumerate(call.outputs[n_out:]):
        k = next((k for k, o in enumerate(call.outputs[:n_out]) if o is r and isinstance(r, Var)), None)
        if k is not None and ct_res[j] is not None:
            ct_out[k] = ct_res[j] if ct_out[k] is None else ops.add(ct_out[k], ct_res[j])
            ct_res[j] = None
    result = [None] * n_in
    has_ct_out = any(c is not None for c in ct_out)
    if has_ct_out and any(active[:n_args]):
        if len(call.outputs) > n_out:
            res = rule.residuals(out[n_out:])
        else:   # recorded without residuals (a call of f inside its own fwd): recompute them now
            res = rule.recompute_residuals(ins[:n_args], ins[n_args:])
        result[:n_args] = rule.backward(res, materialize(ct_out, out[:n_out]), ins[:n_args],
                                        ins[n_args:])
    through = _Replay(call, ins)
    through.backward(zip(call.outputs[n_out:], ct_res), [i for i in range(n_in) if active[i]], result)
    through.backward(zip(call.outputs[:n_out], ct_out),
                     [i for i in range(n_args, n_in) if active[i]], result)
    return tuple(result)


def _custom_vjp_call_jvp(tangents, *ins, out, call, rule, n_args, n_out):
    if any(t is not None for t in tangents[:n_args]):
        src = (_source.get() or (user_source(),))[0]
        raise TypeError(
            f"forward-mode differentiation (jvp, jacfwd, hessian) of the custom_vjp function "
            f"'{rule.name}' (called at {src}) is not supported: a custom VJP rule only defines reverse "
            f"mode. Use reverse mode (grad, vjp, jacrev), or define the function with tg.custom_jvp.")
    # only closed-over values carry tangents: the user's rule does not cover them, autodiff does
    env = replay(call, ins)
    seeds = {call.inputs[i]: t for i, t in enumerate(tangents) if t is not None}
    tan = jvp_pass(call.eqns, env, seeds)
    return tuple(tan.get(v) if isinstance(v, Var) else None for v in call.outputs)


defvjp(custom_vjp_call_p, _custom_vjp_call_vjp)
defjvp(custom_vjp_call_p, _custom_vjp_call_jvp)


# ---------------------------------------------------------------- custom_jvp_call

def _custom_jvp_call_jvp(tangents, *ins, out, call, rule, n_args):
    n_outs = len(call.outputs)
    total = [None] * n_outs
    if any(t is not None for t in tangents[:n_args]):
        total = list(rule.jvp(ins[:n_args], tangents[:n_args], ins[n_args:]))
    if any(t is not None for t in tangents[n_args:]):
        # closed-over values: not covered by the user's rule, so ordinary forward mode
        env = replay(call, ins)
        seeds = {call.inputs[i]: t for i, t in enumerate(tangents) if i >= n_args and t is not None}
        tan = jvp_pass(call.eqns, env, seeds)
        _add_into(total, range(n_outs),
                  [tan.get(v) if isinstance(v, Var) else None for v in call.outputs])
    return tuple(total)


def _custom_jvp_call_vjp(cts, *ins, out, call, rule, n_args, active=None):
    """Reverse mode of a custom JVP rule: transpose the (linear) tangent map the rule defines."""
    n_in = len(ins)
    active = tuple(active) if active is not None else (True,) * n_in
    result = [None] * n_in
    if any(active[:n_args]):
        result[:n_args] = rule.transpose(ins[:n_args], list(cts), active[:n_args], ins[n_args:])
    _Replay(call, ins).backward(zip(call.outputs, cts),
                                [i for i in range(n_args, n_in) if active[i]], result)
    return tuple(result)


defvjp(custom_jvp_call_p, _custom_jvp_call_vjp)
defjvp(custom_jvp_call_p, _custom_jvp_call_jvp)


# ---------------------------------------------------------------- callback

def _callback_impl(*args, callback, result_avals):
    with no_trace():
        return callback(*args)


def _callback_shape(*avals, callback, result_avals):
    return tuple(result_avals)


def _no_derivative(mode):
    def rule(_cts_or_tangents, *args, out, callback, result_avals):
        src = (_source.get() or (user_source(),))[0]
        raise TypeError(
            f"tg.pure_callback({callback.name}) called at {src} has no derivative, but {mode} "
            f"differentiation reached it. Wrap the code that calls it in a function decorated with "
            f"tg.custom_vjp (or tg.custom_jvp) and give it a derivative rule; use tg.stop_gradient "
            f"on its inputs if no gradient is meant to flow through it.")
    return rule


defimpl(callback_p, _callback_impl)
defshape(callback_p, _callback_shape)
defvjp(callback_p, _no_derivative("reverse-mode"))
defjvp(callback_p, _no_derivative("forward-mode"))
