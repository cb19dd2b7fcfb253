"""transpose_sinking: layout Transposes move down through element-wise ops and cancel with their inverse,
checked in float64 against the unoptimised graph (check=True compares every pass at rtol 1e-4; the tests
compare the whole graph again at 1e-12, where a wrongly permuted constant is off by O(1))."""

import numpy as np
import pytest

import cnngraph
from cnngraph import optimize
from cnngraph.frontends import dsl

NHWC, NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def transpose(x, perm, name=None):
    return dsl.layer("Transpose", [x], name=name, perm=perm)


def channels_last_block(x, bias_shape=(4,)):
    """ConvNeXt's channels-last Linear as it imports: conv between Transposes, a bias, an activation, back."""
    y = transpose(dsl.conv2d(x, 4, 1, bias=False, name="pointwise"), NHWC, name="to_nhwc")
    y = dsl.add(y, dsl.constant(np.arange(np.prod(bias_shape), dtype=np.float32).reshape(bias_shape) / 7))
    return transpose(dsl.gelu(y, name="act"), NCHW, name="to_nchw")


def same_numbers(graph, opt):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    want = cnngraph.compile(graph, dtype="float64", passes="none")(x)
    got = cnngraph.compile(opt, dtype="float64", passes="none")(x)
    for g, w in zip(*(r if isinstance(r, (list, tuple)) else [r] for r in (got, want)), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias_shape", [(4,), (1, 1, 4), (1, 1, 1, 4), ()])
def test_transposes_cancel_and_the_bias_follows(bias_shape):
    x = dsl.input("x", (3, 5, 6))
    graph = dsl.Model(x, dsl.relu(channels_last_block(x, bias_shape), name="y"))
    opt, reports = optimize(graph, ["transpose_sinking"], check=True)
    assert "Transpose" not in {n.op for n in opt.nodes}
    same_numbers(graph, opt)
    assert opt.outputs == ["y"]


def test_the_default_pipeline_folds_the_bias_into_the_conv():
    x = dsl.input("x", (3, 5, 6))
    graph = dsl.Model(x, dsl.max_pool2d(channels_last_block(x), 2, name="y"))
    opt, _ = optimize(graph, "default", check=True)
    assert [(n.op, n.attrs.get("activation")) for n in opt.nodes] == [("FusedConv2d", "GELU"), ("MaxPool2d", None)]


def test_a_transpose_read_twice_stays():
    x = dsl.input("x", (3, 5, 6))
    nhwc = transpose(dsl.conv2d(x, 4, 1, name="c"), NHWC, name="to_nhwc")
    graph = dsl.Model(x, [transpose(dsl.relu(nhwc), NCHW, name="y"), dsl.sigmoid(nhwc, name="z")])
    opt, _ = optimize(graph, ["transpose_sinking"], check=True)
    assert sum(n.op == "Transpose" for n in opt.nodes) == 2
    same_numbers(graph, opt)


def test_an_output_keeps_its_layout():
    x = dsl.input("x", (3, 5, 6))
    graph = dsl.Model(x, dsl.relu(transpose(x, NHWC, name="t"), name="y"))
    opt, _ = optimize(graph, ["transpose_sinking"])
    assert [n.op for n in opt.nodes] == ["Transpose", "ReLU"] and opt.type_of("y").shape[1:] == (5, 6, 3)


def test_two_transposes_compose_into_one():
    x = dsl.input("x", (3, 5, 6))
    graph = dsl.Model(x, transpose(transpose(x, NHWC), (0, 2, 1, 3), name="y"))
    opt, _ = optimize(graph, ["transpose_sinking"], check=True)
    assert [(n.op, n.attrs["perm"]) for n in opt.nodes] == [("Transpose", (0, 3, 2, 1))]
    same_numbers(graph, opt)


def test_ops_with_parameters_or_two_runtime_inputs_stop_it():
    x = dsl.input("x", (3, 5, 6))
    nhwc = transpose(x, NHWC, name="t")
    graph = dsl.Model(x, transpose(dsl.add(nhwc, dsl.relu(nhwc)), NCHW, name="y"))
    opt, _ = optimize(graph, ["transpose_sinking"], check=True)
    assert sum(n.op == "Transpose" for n in opt.nodes) == 2


def test_a_transpose_of_the_leading_axis_stays_above_a_constant():
    """A constant lines up with the per-sample axes only: one that moves a region list's leading axis stays."""
    boxes = dsl.input("boxes", (3, 4), leading="R")
    by_class = transpose(boxes, (1, 0, 2), name="by_class")
    shifted = dsl.add(by_class, dsl.constant(np.arange(12, dtype=np.float32).reshape(3, 1, 4)), name="shifted")
    graph = dsl.Model(boxes, transpose(shifted, (1, 0, 2), name="y"))
    opt, _ = optimize(graph, ["transpose_sinking"])
    x = np.random.default_rng(0).standard_normal((5, 3, 4))
    np.testing.assert_array_equal(cnngraph.compile(opt, dtype="float64", passes="none")(x),
                                  cnngraph.compile(graph, dtype="float64", passes="none")(x))
