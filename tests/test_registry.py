"""Every primitive has every rule its declaration calls for: a new op that forgets one fails here,
naming what is missing and the file to edit."""
from tracegrad import primitives as P
import tracegrad  # noqa: F401  (registers the rules)

_BATCH_FILE = {"unary": "elementwise.py", "predicate": "elementwise.py", "binary": "elementwise.py",
               "compare": "elementwise.py", "select": "elementwise.py", "reduction": "reductions.py",
               "structure": "structure.py", "indexing": "indexing.py", "cumulative": "indexing.py",
               "sort": "indexing.py", "linalg": "linalg.py", "control": "control.py",
               "call": "calls.py", "effect": "calls.py"}


def test_every_primitive_has_impl_shape_and_derivative_rules():
    missing = []
    for name, prim in P.all_primitives.items():
        if prim not in P.impl_rules:
            missing.append(f"{name}: impl")
        if prim not in P.shape_rules:
            missing.append(f"{name}: shape")
        if prim.differentiable and prim not in P.vjp_rules:
            missing.append(f"{name}: vjp (or declare it differentiable=False in tracegrad/primitives.py)")
        if prim.differentiable and prim not in P.jvp_rules:
            missing.append(f"{name}: jvp")
        if prim not in P.batch_rules:
            missing.append(f"{name}: batch (vmap; add it in tracegrad/rules/batching/{_BATCH_FILE[prim.family]})")
    assert not missing, "rules missing (add them in tracegrad/rules/): " + ", ".join(missing)


def test_nondifferentiable_primitives_have_no_derivative_rule_that_would_be_ignored():
    # a rule registered for a primitive declared non-differentiable would silently never run
    both = [p.name for p in P.all_primitives.values()
            if not p.differentiable and (p in P.vjp_rules or p in P.jvp_rules)]
    assert not both, both


def test_every_primitive_is_declared_in_the_registry():
    for table in (P.impl_rules, P.shape_rules, P.vjp_rules, P.jvp_rules, P.batch_rules):
        strays = [p for p in table if P.all_primitives.get(p.name) is not p]
        assert not strays, f"rules registered for primitives not declared in primitives.py: {strays}"


def test_unary_float_primitives_declare_their_domain():
    missing = [p.name for p in P.all_primitives.values()
               if p.family in ("unary", "predicate") and p.domain is None
               and p not in (P.integer_pow_p, P.convert_p, P.not_p)]
    assert not missing, f"declare domain= for {missing} in tracegrad/primitives.py"


def test_primitive_names_unique_and_suffix_convention():
    names = [p.name for p in P.all_primitives.values()]
    assert len(names) == len(set(names))
    for attr, value in vars(P).items():
        if isinstance(value, P.Primitive):
            assert attr == value.name + "_p", attr
