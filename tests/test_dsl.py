"""The DSL: names, scopes, seeding, and definition-time errors that name the layer and the shapes."""

import numpy as np
import pytest

from cnngraph.errors import CnnGraphError, GraphError, ShapeError
from cnngraph.frontends import dsl


def test_scopes_and_auto_names_are_hierarchical_and_unique():
    x = dsl.input("x", (3, 8, 8))
    with dsl.scope("layer1"), dsl.scope(0):
        a = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv1"))
        b = dsl.relu(dsl.conv2d(a, 4, 3, padding=1, name="conv2"))
    g = dsl.Model(x, b)
    assert [n.name for n in g.nodes] == ["layer1.0.conv1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.relu_1"]
    assert set(g.params) == {"layer1.0.conv1.weight", "layer1.0.conv1.bias", "layer1.0.conv2.weight",
                             "layer1.0.conv2.bias"}


def test_same_seed_same_weights_and_names_do_not_depend_on_build_count():
    def build(seed):
        x = dsl.input("x", (3, 8, 8))
        return dsl.Model(x, dsl.relu(dsl.conv2d(x, 4, 3)), seed=seed)

    g1, g2, g3 = build(0), build(0), build(1)
    assert [n.name for n in g1.nodes] == [n.name for n in g2.nodes]
    np.testing.assert_array_equal(g1.params["conv2d.weight"], g2.params["conv2d.weight"])
    assert not np.array_equal(g1.params["conv2d.weight"], g3.params["conv2d.weight"])


def test_he_initialisation_has_the_right_scale():
    x = dsl.input("x", (64, 8, 8))
    g = dsl.Model(x, dsl.conv2d(x, 256, 3, init="he"))
    w = g.params["conv2d.weight"]
    assert abs(w.std() - np.sqrt(2 / (64 * 9))) < 0.02 * np.sqrt(2 / (64 * 9))


def test_mismatched_residual_add_names_layer_and_shapes():
    x = dsl.input("x", (3, 32, 32))
    a = dsl.conv2d(x, 8, 3, padding=1)
    b = dsl.conv2d(x, 8, 3, stride=2, padding=1)
    with dsl.scope("block"), pytest.raises(ShapeError, match=r"block\.add.*\(N, 8, 32, 32\).*\(N, 8, 16, 16\)"):
        dsl.add(a, b)


def test_concat_of_different_spatial_sizes_names_shapes():
    x = dsl.input("x", (3, 32, 32))
    a = dsl.conv2d(x, 8, 3, padding=1)
    b = dsl.conv2d(x, 8, 3)
    with pytest.raises(ShapeError, match=r"\(N, 8, 32, 32\).*\(N, 8, 30, 30\)"):
        dsl.concat([a, b], name="join")


def test_model_rejects_unlisted_inputs_and_duplicate_names():
    x, y = dsl.input("x", (3, 8, 8)), dsl.input("y", (3, 8, 8))
    with pytest.raises(GraphError, match="input 'y'"):
        dsl.Model(x, dsl.add(x, y))
    a = dsl.relu(x, name="same")
    b = dsl.relu(a, name="same")
    with pytest.raises(GraphError, match="both named 'same'"):
        dsl.Model(x, b)


def test_crop_centres_on_the_target():
    x = dsl.input("x", (2, 10, 10))
    like = dsl.input("like", (2, 6, 6))
    g = dsl.Model([x, like], dsl.crop(x, like=like, name="crop"))
    assert g.type_of("crop").shape == ("N", 2, 6, 6)
    with pytest.raises(CnnGraphError, match="larger than the input"):
        dsl.crop(like, like=x)
