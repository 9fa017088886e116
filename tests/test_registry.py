"""Every primitive has every rule: a new op that forgets one fails here, naming what is missing."""
import numpy as np

from tracegrad import primitives as P
import tracegrad  # noqa: F401  (registers the rules)


def test_every_primitive_has_impl_shape_and_derivative_rules():
    missing = []
    for name, prim in P.all_primitives.items():
        if prim not in P.impl_rules:
            missing.append(f"{name}: impl")
        if prim not in P.shape_rules:
            missing.append(f"{name}: shape")
        if prim not in P.vjp_rules and prim not in P.nondiff:
            missing.append(f"{name}: vjp (or list it in primitives.NONDIFF_NAMES)")
        if prim not in P.jvp_rules and prim not in P.nondiff:
            missing.append(f"{name}: jvp")
    assert not missing, "rules missing (add them in tracegrad/rules/): " + ", ".join(missing)


def test_nondiff_primitives_have_no_vjp_that_would_be_ignored():
    # a VJP registered for a primitive marked non-differentiable would silently never run
    both = [p.name for p in P.nondiff if p in P.vjp_rules]
    assert not both, both


def test_primitive_names_unique_and_suffix_convention():
    names = [p.name for p in P.all_primitives.values()]
    assert len(names) == len(set(names))
    for attr, value in vars(P).items():
        if isinstance(value, P.Primitive):
            assert attr == value.name + "_p" or attr.endswith("_p"), attr
