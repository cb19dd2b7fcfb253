"""BatchNorm2d and LRN against ONNX BatchNormalization and LRN; training statistics against torch's formulas."""

import json

import numpy as np
import pytest

import cnngraph
from cnngraph.errors import AttrError, CnnGraphError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.ops import get_op
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


def f32(v: float) -> float:
    """ONNX stores float attributes as float32; give cnngraph the same value so float64 results agree."""
    return float(np.float32(v))


def bn_params(c: int) -> dict:
    return {
        "weight": random((c,), 1), "bias": random((c,), 2), "running_mean": random((c,), 3),
        "running_var": np.abs(random((c,), 4)) + 0.5,
    }


def onnx_bn_inputs(params: dict) -> dict:
    """BatchNormalization's inputs after X, in ONNX's order: scale, B, input_mean, input_var."""
    return {name: params[role] for name, role in
            zip(("scale", "b", "mean", "var"), ("weight", "bias", "running_mean", "running_var"))}


@pytest.mark.parametrize("shape,eps", [((2, 3, 5, 6), 1e-5), ((4, 7), 1e-3), ((1, 2, 1, 1), 0.5)])
def test_batch_norm_inference_matches_reference(shape, eps):
    x, params = random(shape, 5), bn_params(shape[1])
    got = cnngraph_op("BatchNorm2d", [x], dict(eps=f32(eps)), params)
    want = onnx_reference("BatchNormalization", [x], dict(epsilon=eps),
                          onnx_bn_inputs(params))
    assert got.shape == want.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 5)])
def test_batch_norm_training_uses_batch_stats_and_updates_running_ones(shape):
    x, params, momentum = random(shape, 6), bn_params(shape[1]), 0.25
    inp = dsl.input("x", shape[1:])
    graph = dsl.Model(inp, dsl.batch_norm(inp, momentum=momentum, name="bn"))
    graph.params.update({f"bn.{role}": value for role, value in params.items()})
    model = cnngraph.compile(graph, dtype="float64", train=True)
    before = x.copy()
    got = model.forward({"x": x})["bn"]
    np.testing.assert_array_equal(x, before)

    # ONNX's training-mode output normalises with the batch mean and biased variance, as torch does...
    want = onnx_reference("BatchNormalization", [x], dict(epsilon=1e-5, training_mode=1),
                          onnx_bn_inputs(params), opset=15)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # ...but ONNX moves running_var towards the biased variance; torch (and cnngraph) use the unbiased one.
    axes = (0, *range(2, x.ndim))
    mean, unbiased = x.mean(axis=axes), x.var(axis=axes, ddof=1)
    np.testing.assert_allclose(model.params["bn.running_mean"], 0.75 * params["running_mean"] + 0.25 * mean)
    np.testing.assert_allclose(model.params["bn.running_var"], 0.75 * params["running_var"] + 0.25 * unbiased)
    np.testing.assert_array_equal(graph.params["bn.running_mean"], params["running_mean"])  # compile copied


def test_batch_norm_buffers_are_not_trainable():
    inp = dsl.input("x", (3, 4, 4))
    graph = dsl.Model(inp, dsl.batch_norm(inp, name="bn"))
    assert graph.param_count() == 6 and graph.param_count(trainable_only=False) == 12
    assert sorted(graph.node("bn").params) == ["bias", "running_mean", "running_var", "weight"]
    np.testing.assert_array_equal(graph.params["bn.running_var"], np.ones(3))


def test_batch_norm_training_needs_two_values_per_channel():
    with pytest.raises(CnnGraphError, match=r"more than one value per channel, got input shape \(1, 3\)"):
        cnngraph_op("BatchNorm2d", [random((1, 3))], train=True)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("alpha,beta,k", [(1e-4, 0.75, 1.0), (0.5, 0.6, 2.0), (1.0, 1.0, 0.5)])
def test_lrn_matches_reference(size, alpha, beta, k):
    # onnx.reference's LRN loops `for c in range(x.shape[0])`, over the batch instead of the channels;
    # with N == C it visits every channel. onnxruntime is no way out: it rejects even sizes.
    x = random((6, 6, 4, 5), 7)
    attrs = dict(size=size, alpha=f32(alpha), beta=f32(beta), k=f32(k))
    got = cnngraph_op("LRN", [x], attrs)
    want = onnx_reference("LRN", [x], dict(size=size, alpha=alpha, beta=beta, bias=k))
    assert got.shape == want.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-7)  # the reference divides alpha by size in float32


def test_lrn_window_is_asymmetric_for_even_sizes():
    """size 4: channel c sums the squares of channels c-1 .. c+2, as ONNX says.

    torch's LocalResponseNorm pads the other way round (c-2 .. c+1), which would give [1/3, 1/4, 1/8].
    """
    x = np.array([1.0, 1.0, 1.0, 2.0, 0.0]).reshape(1, 5, 1, 1)
    got = cnngraph_op("LRN", [x], dict(size=4, alpha=4.0, beta=1.0, k=1.0))
    np.testing.assert_allclose(got.ravel()[:3], [1 / 4, 1 / 8, 1 / 7])


@pytest.mark.parametrize("op,attrs", [("BatchNorm2d", dict(eps=1e-3, momentum=0.01)), ("LRN", dict(size=5))])
def test_attributes_survive_json_and_renormalising(op, attrs):
    t = dsl.layer(op, [dsl.input("x", (3, 4, 4))], **attrs)
    assert get_op(op).normalize("op", json.loads(json.dumps(t.attrs)), [t.parents[0].type]) == t.attrs



def test_macs():
    x = dsl.input("x", (3, 4, 4))
    bn, lrn = dsl.batch_norm(x), dsl.lrn(x, 5)
    assert get_op("BatchNorm2d").macs(bn.attrs, [x.type], bn.type) == 48
    assert get_op("LRN").macs(lrn.attrs, [x.type], lrn.type) == 5 * 48


@pytest.mark.parametrize("op,shape,attrs,error,match", [
    ("BatchNorm2d", (1, 3, 2, 2, 2, 2), {}, ShapeError,
     r"expects an \(N, C\) to \(N, C, D, H, W\) input \(rank 2 to 5\), got shape \(N, 3, 2, 2, 2, 2\)"),
    ("BatchNorm2d", (1, 3), dict(momentum=1.5), AttrError, r"momentum must be in \[0, 1\], got 1.5"),
    ("BatchNorm2d", (1, 3), dict(eps=0), AttrError, "eps must be positive, got 0"),
    ("LRN", (1, 3), dict(size=3), ShapeError, r"expects a 4-D \(N, C, H, W\) input, got shape \(N, 3\)"),
    ("LRN", (1, 3, 2, 2), dict(size=0), AttrError, "size must be >= 1"),
    ("LRN", (1, 3, 2, 2), dict(size=3, beta="big"), AttrError, "beta must be a finite number, got 'big'"),
])
def test_errors_name_the_layer_and_shape(op, shape, attrs, error, match):
    with pytest.raises(error, match=rf"layer 'op' \({op}\): " + match):
        cnngraph_op(op, [random(shape)], attrs)
