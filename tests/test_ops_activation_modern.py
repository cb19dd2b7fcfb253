"""The activations of modern CNNs and the element-wise math ops against onnx.reference, their
overflow behaviour, their gradients by finite differences, and attribute validation."""

import numpy as np
import pytest

from cnngraph.errors import AttrError, ShapeError
from tests.gradcheck import check_gradients
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend
from tests.test_grad_ops import one_op_graph

UNARY_CASES = [
    # cnngraph op, attrs, ONNX op, ONNX attrs, opset
    ("HardSigmoid", {}, "HardSigmoid", {}, 17),
    ("HardSigmoid", {"alpha": 0.125, "beta": 0.25}, "HardSigmoid", {"alpha": 0.125, "beta": 0.25}, 17),
    ("HardSwish", {}, "HardSwish", {}, 17),
    ("SiLU", {}, "Swish", {}, 24),
    ("GELU", {}, "Gelu", {}, 20),
    ("GELU", {"approximate": "tanh"}, "Gelu", {"approximate": "tanh"}, 20),
    ("Mish", {}, "Mish", {}, 18),
    ("Selu", {}, "Selu", {}, 17),
    ("Selu", {"alpha": 1.5, "gamma": 0.5}, "Selu", {"alpha": 1.5, "gamma": 0.5}, 17),
    ("Softplus", {}, "Softplus", {}, 17),
    ("Softsign", {}, "Softsign", {}, 17),
    ("Exp", {}, "Exp", {}, 17),
    ("Neg", {}, "Neg", {}, 17),
    ("Abs", {}, "Abs", {}, 17),
    ("Reciprocal", {}, "Reciprocal", {}, 17),
    ("Erf", {}, "Erf", {}, 17),
]
FLOAT32_REFERENCE = {"HardSwish", "GELU", "Erf"}
POSITIVE = [("Log", {}, "Log", {}, 17), ("Sqrt", {}, "Sqrt", {}, 17)]


@pytest.mark.parametrize("op,attrs,onnx_op,onnx_attrs,opset", UNARY_CASES + POSITIVE)
def test_unary_matches_reference(op, attrs, onnx_op, onnx_attrs, opset):
    x = 4 * random((2, 5, 3, 4), 1)
    if (op, attrs, onnx_op, onnx_attrs, opset) in POSITIVE:
        x = np.abs(x) + 0.1
    got = cnngraph_op(op, [x], attrs)
    want = onnx_reference(onnx_op, [x], onnx_attrs, opset=opset)
    loose = op in FLOAT32_REFERENCE or (op == "HardSigmoid" and not attrs)  # ONNX's default alpha: 0.2 in float32
    np.testing.assert_allclose(got, want, rtol=1e-5 if loose else 1e-12, atol=1e-6 if loose else 1e-14)


def test_gelu_matches_its_float64_definition():
    """The reference evaluator's Erf, Gelu and HardSwish compute in float32; this pins float64 accuracy."""
    from math import erf, sqrt, pi, tanh

    x = 4 * random((1, 40), 2)
    exact = [[0.5 * v * (1 + erf(v / sqrt(2))) for v in x[0]]]
    approx = [[0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v**3))) for v in x[0]]]
    np.testing.assert_allclose(cnngraph_op("GELU", [x]), exact, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(cnngraph_op("GELU", [x], {"approximate": "tanh"}), approx, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(cnngraph_op("HardSwish", [x]), x * np.clip(x / 6 + 0.5, 0, 1), rtol=1e-15)


BINARY_CASES = [
    ("Pow", [(2, 3, 4), (2, 3, 1)]),
    ("Max", [(2, 3, 4), (2, 1, 4), (2, 3, 1)]),
    ("Min", [(2, 3, 4), (2, 3, 4)]),
    ("Max", [(2, 3, 4)]),
]


@pytest.mark.parametrize("op,shapes", BINARY_CASES)
def test_broadcasting_math_matches_reference(op, shapes):
    xs = [random(s, i) for i, s in enumerate(shapes)]
    if op == "Pow":
        xs[0] = np.abs(xs[0]) + 0.1
    np.testing.assert_allclose(cnngraph_op(op, xs), onnx_reference(op, xs), rtol=1e-12)


@pytest.mark.parametrize("op", ["HardSwish", "SiLU", "GELU", "Mish", "Selu", "Softplus", "Softsign", "Erf",
                                "HardSigmoid"])
def test_no_overflow_for_large_inputs(op):
    x = np.array([[-1e300, -1000.0, -30.0, 0.0, 30.0, 1000.0, 1e300]])
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        got = cnngraph_op(op, [x])
    assert np.all(np.isfinite(got[:, 1:-1]))


def test_gelu_tanh_is_finite_far_out():
    x = np.array([[-1e300, 1e300]])
    with np.errstate(over="raise", invalid="raise", under="ignore"):
        np.testing.assert_array_equal(cnngraph_op("GELU", [x], {"approximate": "tanh"}), [[-0.0, 1e300]])


@pytest.mark.parametrize("x", [0.5, 2.9999, 3.0, 4.2, 5.9, 6.5, 27.0])
def test_erf_is_accurate_across_its_branches(x):
    from math import erf

    got = cnngraph_op("Erf", [np.array([[x, -x]])])
    np.testing.assert_allclose(got, [[erf(x), -erf(x)]], rtol=2e-15)


GRAD_CASES = [
    ("HardSigmoid", [(2, 3, 4)], dict(alpha=0.3, beta=0.4)),
    ("HardSwish", [(2, 3, 4)], {}),
    ("SiLU", [(2, 3, 4)], {}),
    ("GELU", [(2, 3, 4)], {}),
    ("GELU", [(2, 3, 4)], dict(approximate="tanh")),
    ("Mish", [(2, 3, 4)], {}),
    ("Selu", [(2, 3, 4)], {}),
    ("Softplus", [(2, 3, 4)], {}),
    ("Softsign", [(2, 3, 4)], {}),
    ("Exp", [(2, 3, 4)], {}),
    ("Neg", [(2, 3, 4)], {}),
    ("Abs", [(2, 3, 4)], {}),
    ("Reciprocal", [(2, 3, 4)], {}),
    ("Erf", [(2, 3, 4)], {}),
    ("Log", [(2, 3, 4)], {}),
    ("Sqrt", [(2, 3, 4)], {}),
    ("Pow", [(2, 3, 4), (2, 1, 4)], {}),
    ("Max", [(2, 3, 4), (2, 3, 1), (2, 1, 4)], {}),
    ("Min", [(2, 3, 4), (2, 3, 4)], {}),
]
NEEDS_POSITIVE = {"Log", "Sqrt", "Pow"}


@pytest.mark.parametrize("op,shapes,attrs", GRAD_CASES, ids=lambda v: str(v))
def test_backward_matches_finite_differences(op, shapes, attrs):
    graph, inputs = one_op_graph(op, shapes, attrs)
    if op in NEEDS_POSITIVE:
        inputs["in0"] = np.abs(inputs["in0"]) + 0.2
    check_gradients(graph, inputs)


@pytest.mark.parametrize("op,attrs,error,match", [
    ("GELU", {"approximate": "erf"}, AttrError, r"layer 'op' \(GELU\): approximate must be one of \('none', 'tanh'\)"),
    ("HardSigmoid", {"alpha": "x"}, AttrError, "alpha must be a finite number"),
    ("Selu", {"gamma": float("inf")}, AttrError, "gamma must be a finite number"),
])
def test_attribute_errors(op, attrs, error, match):
    with pytest.raises(error, match=match):
        cnngraph_op(op, [random((1, 2))], attrs)


def test_pow_shapes_that_do_not_broadcast_name_the_layer():
    with pytest.raises(ShapeError, match=r"layer 'op' \(Pow\): cannot raise to the power shapes \(N, 3\) and \(N, 4\)"):
        cnngraph_op("Pow", [random((1, 3)), random((1, 4))])


@pytest.mark.parametrize("shape,n", [((2, 4, 3, 5), 4), ((2, 4, 3, 5), 1), ((3, 6), 6)])
def test_prelu_matches_reference_with_the_slope_shaped_for_onnx(shape, n):
    x, slope = random(shape, 1), random((n,), 2)
    got = cnngraph_op("PReLU", [x], {"num_parameters": n}, {"weight": slope})
    onnx_slope = slope.reshape(-1, *[1] * (len(shape) - 2))
    np.testing.assert_allclose(got, onnx_reference("PRelu", [x], initializers={"slope": onnx_slope}), rtol=1e-15)


@pytest.mark.parametrize("shape,n", [((2, 3, 2, 2), 3), ((2, 3, 2), 1)])
def test_prelu_backward_matches_finite_differences(shape, n):
    check_gradients(*one_op_graph("PReLU", [shape], {"num_parameters": n}))


def test_prelu_starts_at_torchs_slope_and_checks_its_channels():
    from cnngraph.frontends import dsl

    x = dsl.input("x", (3, 4, 4))
    graph = dsl.Model(x, dsl.prelu(x, 3, name="act"))
    np.testing.assert_array_equal(graph.params["act.weight"], [0.25] * 3)
    with pytest.raises(AttrError, match=r"layer 'act' \(PReLU\): num_parameters=2 must be 1 or the 3 channels"):
        dsl.prelu(x, 2, name="act")
