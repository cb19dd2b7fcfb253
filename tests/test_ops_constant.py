"""Constant: a fixed tensor as a value, broadcast like ONNX's initializers; a buffer unless marked trainable
(an imported file's initializers: ConvNeXt's layer scale)."""

import numpy as np
import pytest

import cnngraph
from cnngraph.errors import AttrError
from cnngraph.frontends import dsl
from cnngraph.ops import get_op
from tests.gradcheck import check_gradients
from tests.oracle import onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


def shifted(shape, value, join=dsl.add, trainable=False):
    x = dsl.input("x", (3, 4, 5))
    graph = dsl.Model(x, join(x, dsl.layer("Constant", [], name="c", shape=shape, trainable=trainable)))
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


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (3, 1, 5), ()])
def test_trainable_constant_gets_the_gradient_its_broadcast_summed(shape):
    graph = shifted(shape, random(shape, 1), join=dsl.mul, trainable=True)
    assert graph.param_count() == int(np.prod(shape))
    assert get_op("Constant").describe(graph.node("c").attrs).endswith(", trainable")
    model = check_gradients(graph, {"x": random((2, 3, 4, 5))})
    assert model.trainable == ["c.value"]


@pytest.mark.parametrize("trainable", [False, True])
def test_onnx_round_trip_keeps_buffer_or_weight(trainable):
    """A buffer exports as an ONNX Constant node, a trainable constant as an initializer: the import
    (the same rule it applies to PyTorch's files) brings back which it was, and onnxruntime agrees."""
    from cnngraph.backends.onnx_export import to_onnx
    from cnngraph.frontends.onnx_import import from_model
    from tests.onnx_models import onnxruntime_run

    graph = shifted((1, 3, 1, 1), random((1, 3, 1, 1), 1), join=dsl.mul, trainable=trainable)
    model = to_onnx(graph)
    assert [n.op_type for n in model.graph.node].count("Constant") == (not trainable)
    back = from_model(model)
    assert back.param_count() == (3 if trainable else 0) and set(back.params) == {"c.value"}
    x = random((2, 3, 4, 5)).astype(np.float32)
    want = onnxruntime_run(model, {"x": x})[0]
    np.testing.assert_allclose(cnngraph.compile(back)(x), want, rtol=1e-6)
