"""Constant: a fixed tensor as a value, broadcast like ONNX's initializers; a buffer, not a weight."""

import numpy as np
import pytest

import cnngraph
from cnngraph.errors import AttrError
from cnngraph.frontends import dsl
from cnngraph.ops import get_op
from tests.gradcheck import check_gradients
from tests.oracle import onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


def shifted(shape, value):
    x = dsl.input("x", (3, 4, 5))
    graph = dsl.Model(x, dsl.add(x, dsl.layer("Constant", [], name="c", shape=shape)))
    graph.params["c.value"] = value
    return graph


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (3, 1, 5), ()])
def test_constant_broadcasts_like_an_onnx_initializer(shape):
    x, c = random((2, 3, 4, 5)), random(shape, 1)
    got = cnngraph.compile(shifted(shape, c), dtype="float64")(x)
    np.testing.assert_array_equal(got, onnx_reference("Add", [x], {}, {"c": c}))


def test_constant_is_a_buffer_and_describes_every_dim():
    graph = shifted((1, 3, 1, 1), random((1, 3, 1, 1)))
    assert graph.param_count() == 0 and graph.param_count(trainable_only=False) == 3
    assert get_op("Constant").describe(graph.node("c").attrs) == "shape=1,3,1,1"
    assert str(graph.node("c").type) == "f32[1,3,1,1]"


def test_constant_shape_errors():
    with pytest.raises(AttrError, match=r"layer 'c' \(Constant\): shape must be >= 1"):
        dsl.layer("Constant", [], name="c", shape=(1, 0))


def test_constant_passes_gradients_to_the_other_summand_only():
    model = check_gradients(shifted((1, 3, 1, 1), random((1, 3, 1, 1))), {"x": random((2, 3, 4, 5))})
    assert "c.value" not in model.trainable
