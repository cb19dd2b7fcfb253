"""Transfer learning: a new classifier head, and freezing up to a layer or scope."""

import numpy as np
import pytest
from cnngraph.frontends import dsl

from cnngraph import models
from cnngraph.errors import GraphError
from cnngraph.train import frozen_keys, replace_head


def test_replace_head_swaps_only_the_last_linear():
    graph = models.build("lenet5")
    new = replace_head(graph, 4, seed=3)
    assert new.params["output.weight"].shape == (4, 84) and new.params["output.bias"].shape == (4,)
    assert str(new.type_of(new.outputs[0])) == "f32[N,4]"
    assert graph.params["output.weight"].shape == (10, 84)  # the original is untouched
    for key, value in graph.params.items():
        if not key.startswith("output."):
            assert np.array_equal(new.params[key], value), key
    sigma = 1 / np.sqrt(84)  # fresh from the layer's own initialiser, LeCun normal
    assert 0.8 * sigma < new.params["output.weight"].std() < 1.2 * sigma


def test_replace_head_needs_a_linear_layer():
    x = dsl.input("x", (1, 4, 4))
    with pytest.raises(GraphError, match="has no Linear layer"):
        replace_head(dsl.Model(x, dsl.conv2d(x, 2, 3), name="convs"), 3)


def test_frozen_keys_follow_dependencies_and_scopes():
    graph = models.build("lenet5")
    assert frozen_keys(graph, "s4") == ["c1.weight", "c1.bias", "c3.weight", "c3.bias"]
    resnet = models.build("resnet18", input_size=32)
    keys = frozen_keys(resnet, "layer1")  # a scope: up to its last layer
    assert keys[0] == "conv1.weight" and keys[-1] == "layer1.1.bn2.bias" and len(keys) == 15
    assert not any("running" in k for k in keys)
    with pytest.raises(GraphError, match="no layer named 'c33' in lenet5; did you mean c3"):
        frozen_keys(graph, "c33")
