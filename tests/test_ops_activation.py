"""Activations against onnx.reference, their overflow behaviour, and attribute validation."""

import json

import numpy as np
import pytest

from cnngraph.errors import AttrError
from cnngraph.ir import TensorType
from cnngraph.ops import get_op
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend




CASES = [
    # cnngraph op, attrs, ONNX op, ONNX attrs, ONNX initializers (min/max are inputs since opset 11)
    ("ReLU", {}, "Relu", {}, {}),
    # ONNX float attributes are float32: alphas here are exact in float32 so float64 results agree
    ("LeakyReLU", {"alpha": 0.25}, "LeakyRelu", {"alpha": 0.25}, {}),
    ("LeakyReLU", {"alpha": -0.5}, "LeakyRelu", {"alpha": -0.5}, {}),
    ("ELU", {}, "Elu", {"alpha": 1.0}, {}),
    ("ELU", {"alpha": 0.5}, "Elu", {"alpha": 0.5}, {}),
    ("Clip", {}, "Clip", {}, {"min": np.array(0.0), "max": np.array(6.0)}),
    ("Clip", {"min": -1.5, "max": 0.25}, "Clip", {}, {"min": np.array(-1.5), "max": np.array(0.25)}),
    ("Clip", {"min": 1, "max": 1}, "Clip", {}, {"min": np.array(1.0), "max": np.array(1.0)}),
    ("Sigmoid", {}, "Sigmoid", {}, {}),
    ("Tanh", {}, "Tanh", {}, {}),
    ("Softmax", {}, "Softmax", {"axis": 1}, {}),
    ("Softmax", {"axis": 2}, "Softmax", {"axis": 2}, {}),
    ("Softmax", {"axis": -1}, "Softmax", {"axis": -1}, {}),
    ("LogSoftmax", {}, "LogSoftmax", {"axis": 1}, {}),
    ("LogSoftmax", {"axis": -2}, "LogSoftmax", {"axis": -2}, {}),
]


@pytest.mark.parametrize("op,attrs,onnx_op,onnx_attrs,inits,shape", [
    (*case, shape) for case in CASES for shape in [(2, 5, 3, 4), (3, 7)] if abs(case[3].get("axis", 1)) < len(shape)
])
def test_matches_reference(op, attrs, onnx_op, onnx_attrs, inits, shape):
    x = 4 * random(shape, 1)
    got = cnngraph_op(op, [x], attrs)
    want = onnx_reference(onnx_op, [x], onnx_attrs, inits)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("op", ["Sigmoid", "ELU", "Softmax", "LogSoftmax", "Tanh"])
def test_no_overflow_for_large_inputs(op):
    x = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        got = cnngraph_op(op, [x])
    assert np.all(np.isfinite(got))
    if op == "Sigmoid":
        np.testing.assert_allclose(got, [[0.0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1.0]], rtol=1e-15)
    if op == "LogSoftmax":
        np.testing.assert_allclose(got[0, -1], 0.0, atol=1e-15)


@pytest.mark.parametrize("op,attrs", [(c[0], c[1]) for c in CASES])
def test_float32_stays_float32(op, attrs):
    assert cnngraph_op(op, [random((2, 3, 4, 5), dtype=np.float32)], attrs, dtype="float32").dtype == np.float32


def test_softmax_rows_sum_to_one():
    got = cnngraph_op("Softmax", [50 * random((2, 6, 3, 3))], {"axis": 1})
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,match", [(0, "axis=0 is the batch axis"), (-4, "axis=-4 is the batch axis"),
                                        (4, "axis=4 is out of range for a 4-D input"), (1.0, "axis must be an int")])
def test_softmax_axis_errors(op, axis, match):
    with pytest.raises(AttrError, match=rf"layer 'op' \({op}\): {match}"):
        cnngraph_op(op, [random((1, 2, 3, 3))], {"axis": axis})


@pytest.mark.parametrize("op,attrs,match", [
    ("LeakyReLU", {"alpha": "0.1"}, "alpha must be a finite number, got '0.1'"),
    ("ELU", {"alpha": float("nan")}, "alpha must be a finite number"),
    ("ELU", {"alpha": True}, "alpha must be a finite number"),
    ("Clip", {"min": 6.0, "max": 0.0}, r"min=6.0 is larger than max=0.0"),
    ("Clip", {"max": float("inf")}, "max must be a finite number"),
    ("ReLU", {"alpha": 0.1}, r"unknown attribute\(s\) \['alpha'\]"),
])
def test_attribute_errors(op, attrs, match):
    with pytest.raises(AttrError, match=match):
        cnngraph_op(op, [random((1, 2))], attrs)


@pytest.mark.parametrize("op,attrs,normal", [
    ("Softmax", {"axis": -1}, {"axis": 3}),
    ("Clip", {"min": -1, "max": 2}, {"min": -1.0, "max": 2.0}),
    ("LeakyReLU", {}, {"alpha": 0.01}),
    ("ELU", {"alpha": 2}, {"alpha": 2.0}),
])
def test_normalize_is_idempotent_through_json(op, attrs, normal):
    t = [TensorType(("N", 2, 3, 4))]
    once = get_op(op).normalize("op", attrs, t)
    assert once == normal
    assert get_op(op).normalize("op", json.loads(json.dumps(once)), t) == once


def test_describe_shows_only_non_defaults():
    assert get_op("LeakyReLU").describe({"alpha": 0.2}) == "alpha=0.2"
    assert get_op("Clip").describe({"min": 0.0, "max": 6.0}) == ""
    assert get_op("Softmax").describe({"axis": 2}) == "axis=2"
