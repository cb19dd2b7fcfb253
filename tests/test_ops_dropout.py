"""Dropout: the identity at inference (as ONNX), inverted dropout in training, seeded masks."""

import numpy as np
import pytest

import cnngraph
from cnngraph.errors import AttrError
from cnngraph.frontends import dsl
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


def _compiled(p, shape, seed=0, dtype="float64"):
    x = dsl.input("x", shape)
    return cnngraph.compile(dsl.Model(x, dsl.dropout(x, p, name="drop")), dtype=dtype, train=True, seed=seed)


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9])
def test_inference_is_identity_like_onnx(p):
    x = random((2, 3, 4, 5))
    got = cnngraph_op("Dropout", [x], {"p": p})
    np.testing.assert_array_equal(got, onnx_reference("Dropout", [x]))
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
def test_training_zeroes_fraction_p_and_preserves_mean(p):
    x = np.ones((4, 8, 32, 32))
    before = x.copy()
    model = _compiled(p, x.shape[1:])
    out = model.forward({"x": x})["drop"]
    assert out.shape == model.graph.node("drop").type.concrete(len(x))
    np.testing.assert_array_equal(x, before)
    zeros = out == 0
    assert abs(zeros.mean() - p) < 0.02
    np.testing.assert_allclose(out[~zeros], 1 / (1 - p), rtol=1e-15)
    assert abs(out.mean() - 1) < 0.05


def test_same_seed_same_mask_and_masks_change_between_runs():
    x = random((2, 4, 8, 8)) + 10  # never 0, so zeros are exactly the dropped elements
    first, again, other = (_compiled(0.5, x.shape[1:], seed) for seed in (3, 3, 4))
    a, b, c = (m.forward({"x": x})["drop"] == 0 for m in (first, again, other))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert (first.forward({"x": x})["drop"] == 0).tolist() != a.tolist()  # the generator moves on


def test_training_keeps_float32():
    out = _compiled(0.5, (3, 4), dtype="float32").forward({"x": np.ones((2, 3, 4), np.float32)})["drop"]
    assert out.dtype == np.float32


@pytest.mark.parametrize("p", [1.0, -0.1, "0.5", True, float("nan")])
def test_p_must_be_a_probability_below_one(p):
    with pytest.raises(AttrError, match=r"layer 'op' \(Dropout\): p must be in \[0, 1\)"):
        cnngraph_op("Dropout", [random((1, 3))], {"p": p})
