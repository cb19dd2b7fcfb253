"""The training executor: gradient sums at shared values, what forward keeps, freezing, evaluation
semantics, train_step's protocol, and errors that name the layer."""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.kernels import GENERIC, implementations
from cnngraph.backends.training import TrainingExecutor
from cnngraph.errors import CnnGraphError
from cnngraph.frontends import dsl
from cnngraph.ops import all_ops
from tests.gradcheck import check_gradients
from tests.oracle import random


def test_every_op_of_the_ir_has_a_backward():
    """Fused ops are made by inference passes only (training compiles never fuse)."""
    fused = {name for name, op in all_ops().items() if type(op).__module__ == "cnngraph.ops.fused"}
    missing = [name for name in sorted(set(all_ops()) - fused) if not _has_backward(name)]
    assert not missing


def _has_backward(op: str) -> bool:
    return any(impl.backward is not None for impl in implementations(GENERIC, op))


def shared_values_graph():
    """``a`` has five users (one reads it twice), ``b`` is a graph output that is also read inside."""
    x = dsl.input("x", (2, 5, 5))
    a = dsl.tanh(dsl.conv2d(x, 3, 3, padding=1, name="conv"), name="a")
    b = dsl.conv2d(a, 3, 1, name="b")
    s = dsl.add(a, b, dsl.sigmoid(a), name="s")
    m = dsl.mul(a, a, name="m")
    y = dsl.concat([s, m, b], name="y")
    return dsl.Model(x, [y, b], seed=4)


def test_gradients_sum_where_a_value_has_several_users():
    check_gradients(shared_values_graph(), {"x": random((2, 2, 5, 5), 1)})


def test_gradient_of_an_input_read_twice_by_one_node_and_by_two_branches():
    x = dsl.input("x", (3, 4, 4))
    y = dsl.add(x, x, dsl.relu(x))
    z = dsl.concat([y, x, dsl.conv2d(x, 2, 3, padding=1, name="c")])
    check_gradients(dsl.Model(x, z), {"x": random((2, 3, 4, 4), 2)})


def test_max_unpooling_sends_gradients_back_through_the_pooled_positions():
    """SegNet's pattern: the indices are integers and get no gradient; the values carry it."""
    x = dsl.input("x", (2, 6, 6))
    y = dsl.conv2d(x, 3, 3, padding=1, name="conv")
    pooled = dsl.max_pool2d(y, 2)
    where = dsl.layer("MaxPool2dIndices", [y], kernel_size=2)
    up = dsl.layer("MaxUnpool2d", [dsl.tanh(pooled), where], kernel_size=2)
    check_gradients(dsl.Model(x, dsl.conv2d(up, 2, 1, name="head")), {"x": random((2, 2, 6, 6), 4)})


def chain(p=0.0):
    x = dsl.input("x", (3, 8, 8))
    y = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv"), name="relu")
    y = dsl.batch_norm(dsl.max_pool2d(y, 2, name="pool"), name="bn")
    y = dsl.dropout(dsl.flatten(y, name="flat"), p, name="drop")
    return dsl.Model(x, dsl.linear(y, 3, name="fc"), seed=5)


def test_forward_keeps_only_what_backward_needs():
    model = cnngraph.compile(chain(0.5), train=True)
    model.forward(random((2, 3, 8, 8)))
    assert model.kept() == {
        "conv": ["inputs"], "relu": ["output"], "pool": ["argmax"], "bn": ["inputs", "inv_std", "mean"],
        "flat": [], "drop": ["keep"], "fc": ["inputs"],
    }
    model.backward({"fc": np.ones((2, 3), np.float32)})
    assert model.kept() == {}
    with pytest.raises(CnnGraphError, match="backward needs a forward first"):
        model.backward({"fc": np.ones((2, 3), np.float32)})


def test_frozen_layers_keep_nothing_and_get_no_gradient():
    model = cnngraph.compile(chain(), dtype="float64", train=True)
    assert model.trainable == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"]
    model.freeze(["conv.weight", "conv.bias", "bn.weight", "bn.bias"])
    x = random((2, 3, 8, 8))
    model.forward(x)
    assert model.kept() == {"fc": ["inputs"]}
    model.backward({"fc": np.ones((2, 3))})
    assert sorted(model.grads) == ["fc.bias", "fc.weight"] and model.input_grads == {}
    frozen_fc_grad = model.grads["fc.weight"]

    model.unfreeze("bn.weight")
    model.forward(x)
    assert model.kept() == {"bn": ["inputs", "inv_std", "mean"], "flat": [], "drop": ["keep"], "fc": ["inputs"]}
    model.backward({"fc": np.ones((2, 3))})
    assert sorted(model.grads) == ["bn.weight", "fc.bias", "fc.weight"]
    # With bn.weight training again, BN is back on batch statistics (frozen, it ran on running ones).
    assert not np.allclose(model.grads["fc.weight"], frozen_fc_grad)


@pytest.mark.parametrize("keys", [["bn.running_mean"], ["nope.weight"], "fc"])
def test_only_trainable_parameters_can_be_frozen(keys):
    model = cnngraph.compile(chain(), train=True)
    with pytest.raises(CnnGraphError, match=r"not trainable parameters of .*running statistics never train"):
        model.freeze(keys)


def test_run_evaluates_with_running_statistics_and_no_dropout():
    model = cnngraph.compile(chain(0.5), dtype="float64", train=True)
    x = random((4, 3, 8, 8))
    train_out = model.forward(x)["fc"]
    stats = model.params["bn.running_mean"].copy()
    evaluated = model(x)
    np.testing.assert_array_equal(model.params["bn.running_mean"], stats)  # run() updates nothing
    assert model.kept() != {}  # and leaves the tape of the last forward alone
    np.testing.assert_array_equal(evaluated, model.forward(x, training=False)["fc"])
    assert not np.allclose(evaluated, train_out)
    graph = chain(0.5)
    graph.params.update({key: value.copy() for key, value in model.params.items()})
    np.testing.assert_allclose(evaluated, cnngraph.compile(graph, dtype="float64")(x), rtol=1e-12)


class HalfSquare:
    """L = sum((out - y)^2) / 2, gradient out - y: a test-only loss."""

    def __call__(self, out, y):
        return float(((out - y) ** 2).sum() / 2), out - y


class PlainSGD:
    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads):
        for key, grad in grads.items():
            params[key] -= self.lr * grad


def test_train_step_is_forward_loss_backward_step():
    x, y = random((4, 3, 8, 8), 1), random((4, 3), 2)
    stepped = cnngraph.compile(chain(), dtype="float64", train=True)
    manual = cnngraph.compile(chain(), dtype="float64", train=True)
    value = stepped.train_step(x, y, HalfSquare(), PlainSGD(0.01))

    out = manual.forward(x)["fc"]
    want_value, grad = HalfSquare()(out, y)
    grads = manual.backward({"fc": grad})
    assert value == want_value
    for key in manual.trainable:
        np.testing.assert_allclose(stepped.params[key], manual.params[key] - 0.01 * grads[key], rtol=1e-12)
    later = [stepped.train_step(x, y, HalfSquare(), PlainSGD(0.01)) for _ in range(3)]
    assert value > later[0] > later[1] > later[2]


def test_train_step_with_several_outputs_hands_the_loss_a_dict():
    x = random((2, 2, 5, 5), 3)
    model = cnngraph.compile(shared_values_graph(), dtype="float64", train=True)
    seen = {}

    def loss(outputs, target):
        seen.update(outputs)
        return 1.5, {"b": np.ones_like(outputs["b"])}  # "y" gets no gradient

    assert model.train_step(x, None, loss, PlainSGD(0.0)) == 1.5
    assert sorted(seen) == ["b", "y"]
    manual = cnngraph.compile(shared_values_graph(), dtype="float64", train=True)
    manual.forward(x)
    manual.backward({"b": np.ones_like(seen["b"])})
    for key in manual.trainable:
        np.testing.assert_array_equal(model.grads[key], manual.grads[key])


def test_float32_training_keeps_float32_gradients():
    model = cnngraph.compile(shared_values_graph(), train=True)
    outputs = model.forward(random((2, 2, 5, 5), dtype=np.float32), input_grads=True)
    model.backward({name: np.ones(out.shape) for name, out in outputs.items()})  # float64 seeds are cast
    assert {g.dtype for g in [*model.grads.values(), *model.input_grads.values()]} == {np.dtype("float32")}


def test_bad_output_gradients_name_the_output():
    model = cnngraph.compile(chain(), train=True)
    model.forward(random((2, 3, 8, 8)))
    with pytest.raises(CnnGraphError, match=r"gradient for output 'fc' has shape \(2, 4\), the output has \(2, 3\)"):
        model.backward({"fc": np.ones((2, 4))})
    model.forward(random((2, 3, 8, 8)))
    with pytest.raises(CnnGraphError, match=r"gradient given for 'relu', which is not an output"):
        model.backward({"relu": np.ones((2, 4, 8, 8))})


def test_forward_errors_name_the_layer():
    x = dsl.input("x", (3,))
    model = cnngraph.compile(dsl.Model(x, dsl.batch_norm(dsl.linear(x, 2), name="bn")), train=True)
    model.run(np.ones((1, 3)))  # running statistics: fine
    with pytest.raises(CnnGraphError, match=r"layer 'bn' \(BatchNorm2d\): .*more than one value per channel"):
        model.forward(np.ones((1, 3)))


def test_ops_without_a_backward_are_refused_naming_the_layer():
    x = dsl.input("x", (2, 4, 4))
    graph = dsl.Model(x, dsl.layer("FusedConv2d", [x], name="fused", out_channels=2, kernel_size=1,
                                   activation="ReLU"))
    with pytest.raises(CnnGraphError, match=r"layer 'fused' \(FusedConv2d\) cannot be trained"):
        TrainingExecutor(graph)
