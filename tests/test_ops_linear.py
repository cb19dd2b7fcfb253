"""Linear against ONNX Gemm(transB=1): torch's (out, in) weight is Gemm's transposed B."""

import json

import numpy as np
import pytest

from cnngraph.errors import AttrError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.ops import Window, get_op
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


@pytest.mark.parametrize("batch,features,out,bias", [
    (1, 12, 5, True),
    (3, 12, 5, False),
    (4, 1, 7, True),
    (2, 64, 1, True),
])
def test_linear_matches_gemm(batch, features, out, bias):
    x, w, b = random((batch, features), 1), random((out, features), 2), random((out,), 3)
    params = {"weight": w, **({"bias": b} if bias else {})}
    got = cnngraph_op("Linear", [x], dict(out_features=out, bias=bias), params)
    want = onnx_reference("Gemm", [x], dict(transB=1), {"w": w, **({"b": b} if bias else {})})
    inferred = dsl.linear(dsl.input("x", (features,)), out, bias=bias).shape
    assert got.shape == want.shape == (batch, *inferred[1:])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_parameters_use_torch_layout_and_default_init():
    x = dsl.input("x", (20,))
    graph = dsl.Model(x, dsl.linear(x, 6, name="fc"))
    weight, bias = graph.params["fc.weight"], graph.params["fc.bias"]
    assert weight.shape == (6, 20) and bias.shape == (6,)
    assert np.abs(weight).max() <= 1 / np.sqrt(20) and np.abs(bias).max() <= 1 / np.sqrt(20)
    specs = get_op("Linear").param_specs(graph.node("fc").attrs, [x.type])
    assert [(s.role, s.fan_in, s.fan_out, s.init) for s in specs] == [
        ("weight", 20, 6, "torch"), ("bias", 20, 6, "torch_bias")
    ]


def test_macs_window_and_attributes_survive_json():
    x = dsl.input("x", (20,))
    fc = dsl.linear(x, 6, bias=False, init="glorot")
    op = get_op("Linear")
    assert op.macs(fc.attrs, [x.type], fc.type) == 120
    assert op.window(fc.attrs, [x.type]) == Window(global_=True)
    assert op.normalize("fc", json.loads(json.dumps(fc.attrs)), [x.type]) == fc.attrs


def test_kernel_leaves_input_alone():
    x = random((3, 8), 4)
    before = x.copy()
    cnngraph_op("Linear", [x], dict(out_features=2))
    np.testing.assert_array_equal(x, before)


def test_image_input_asks_for_flatten():
    with pytest.raises(ShapeError, match=r"layer 'op' \(Linear\): expects a 2-D \(N, features\) input, "
                                         r"got shape \(N, 8, 2, 2\); flatten it first"):
        cnngraph_op("Linear", [random((1, 8, 2, 2))], dict(out_features=3))


@pytest.mark.parametrize("attrs,match", [
    (dict(out_features=0), "out_features must be >= 1"),
    (dict(out_features=3, weight_init="bilinear"), "weight_init must be one of"),
])
def test_bad_attributes_name_the_layer(attrs, match):
    with pytest.raises(AttrError, match=r"layer 'op' \(Linear\): " + match):
        cnngraph_op("Linear", [random((1, 8))], attrs)
