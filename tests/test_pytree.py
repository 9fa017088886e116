"""Pytrees: tuple, list, dict, None and registered node types."""
import collections

import numpy as np
import pytest

import tracegrad as tg


def test_flatten_roundtrip_and_order():
    tree = {"b": [1, (2, None)], "a": 3}
    leaves, td = tg.tree_flatten(tree)
    assert leaves == [3, 1, 2]          # dict keys sorted
    assert tg.tree_unflatten(td, leaves) == tree
    assert tg.tree_leaves(tree) == leaves


def test_tree_map_multiple_trees_and_mismatch():
    a = {"x": 1, "y": [2, 3]}
    b = {"x": 10, "y": [20, 30]}
    assert tg.tree_map(lambda u, v: u + v, a, b) == {"x": 11, "y": [22, 33]}
    with pytest.raises(ValueError, match="structures differ"):
        tg.tree_map(lambda u, v: u, a, {"x": 1})


def test_none_is_an_empty_subtree():
    leaves, td = tg.tree_flatten((None, 1))
    assert leaves == [1] and tg.tree_unflatten(td, [5]) == (None, 5)


def test_register_pytree_node_conventions():
    Point = collections.namedtuple("Point", "x y")
    tg.register_pytree_node(Point, lambda p: ([p.x, p.y], "aux"), lambda aux, c: Point(*c))
    leaves, td = tg.tree_flatten(Point(1, [2, 3]))
    assert leaves == [1, 2, 3]
    assert tg.tree_unflatten(td, [4, 5, 6]) == Point(4, [5, 6])
    with pytest.raises(ValueError, match="already registered"):
        tg.register_pytree_node(Point, lambda p: ([], None), lambda a, c: None)


def test_unflatten_wrong_leaf_count():
    _, td = tg.tree_flatten([1, 2])
    with pytest.raises(ValueError):
        tg.tree_unflatten(td, [1, 2, 3])


def test_gradients_mirror_argument_structure():
    params = {"layers": [(np.ones(2), np.zeros(1)), (np.ones(3), None)]}
    g = tg.grad(lambda p: np.sum(p["layers"][0][0] * 2) + np.sum(p["layers"][1][0] ** 2))(params)
    assert tg.tree_flatten(g)[1] == tg.tree_flatten(params)[1]
    np.testing.assert_allclose(g["layers"][0][0], [2, 2])
    np.testing.assert_allclose(g["layers"][0][1], [0])
    np.testing.assert_allclose(g["layers"][1][0], [2, 2, 2])
