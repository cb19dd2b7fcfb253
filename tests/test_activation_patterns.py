"""Decomposed activations recomposed: x * sigmoid(x) into SiLU, PyTorch's erf form of GELU into GELU,
then fused into the convolution before them (conv + SiLU, conv + GELU, conv + HardSwish)."""

import math

import numpy as np
import pytest

from cnngraph import optimize
from cnngraph.frontends import dsl
from cnngraph.passes import DEFAULT


def conv(x):
    return dsl.conv2d(x, 4, 3, padding=1, name="conv")


def silu_by_hand(y, name="y"):
    return dsl.mul(y, dsl.sigmoid(y), name=name)


def gelu_by_hand(y, name="y"):
    erf = dsl.erf(dsl.mul(y, dsl.constant(math.sqrt(0.5))))
    return dsl.mul(dsl.mul(y, dsl.add(erf, dsl.constant(1.0))), dsl.constant(0.5), name=name)


def hard_swish_by_hand(y, name="y"):
    return dsl.mul(y, dsl.hard_sigmoid(y, alpha=1 / 6), name=name)


@pytest.mark.parametrize("pattern,op", [(silu_by_hand, "SiLU"), (gelu_by_hand, "GELU"),
                                        (hard_swish_by_hand, "HardSwish"),
                                        (lambda y, name="y": dsl.hard_swish(y, name=name), "HardSwish")])
def test_pattern_becomes_the_activation_and_fuses_into_the_conv(pattern, op):
    x = dsl.input("x", (3, 6, 6))
    graph = dsl.Model(x, pattern(conv(x)))
    opt, reports = optimize(graph, DEFAULT, check=True)  # check: the same numbers before and after each pass
    assert [(n.op, n.attrs["activation"]) for n in opt.nodes] == [("FusedConv2d", op)]
    assert opt.outputs == ["y"]


def test_sigmoid_read_elsewhere_stays_a_sigmoid():
    x = dsl.input("x", (3, 6, 6))
    y = conv(x)
    gate = dsl.sigmoid(y, name="gate")
    graph = dsl.Model(x, [dsl.mul(y, gate, name="y"), gate])
    opt, reports = optimize(graph, ["activation_patterns"], check=True)
    assert {n.op for n in opt.nodes} == {"Conv2d", "Sigmoid", "Mul"}
    (report,) = [r for r in reports if r.name == "activation_patterns"]
    assert report.outcome.skipped == [("y", "SiLU pattern: 'gate' is a graph output")]


def test_other_constants_are_not_gelu():
    x = dsl.input("x", (3, 6, 6))
    y = conv(x)
    erf = dsl.erf(dsl.mul(y, dsl.constant(0.5)))
    graph = dsl.Model(x, dsl.mul(dsl.mul(y, dsl.add(erf, dsl.constant(1.0))), dsl.constant(0.5), name="y"))
    opt, _ = optimize(graph, ["activation_patterns"], check=True)
    assert "GELU" not in {n.op for n in opt.nodes}


def test_pytorch_gelu_silu_and_hardswish_exports_recompose():
    torch = pytest.importorskip("torch")
    from cnngraph.frontends.onnx_import import from_model
    from tests.test_onnx_import import torch_export

    nn = torch.nn
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Conv2d(4, 4, 3), nn.SiLU(), nn.Conv2d(4, 4, 1),
                           nn.Hardswish()).eval()
    graph = from_model(torch_export(module, np.zeros((1, 3, 8, 8), np.float32), opset_version=13))
    opt, _ = optimize(graph, DEFAULT, check=True)
    assert [n.attrs.get("activation") for n in opt.nodes] == ["GELU", "SiLU", "HardSwish"]


def test_gelu_of_a_sum_is_found_whichever_add_comes_first():
    """ConvNeXt's Linear + GELU: x is itself an Add (the bias), the first Add the product reads; the
    pattern must still take the other one as the gate."""
    x = dsl.input("x", (3, 6, 6))
    biased = dsl.add(conv(x), dsl.constant(np.full((4, 1, 1), 0.3, np.float32)))
    erf = dsl.erf(dsl.mul(biased, dsl.constant(math.sqrt(0.5))))
    graph = dsl.Model(x, dsl.mul(dsl.mul(biased, dsl.add(erf, dsl.constant(1.0))), dsl.constant(0.5), name="y"))
    opt, _ = optimize(graph, ["activation_patterns"], check=True)
    assert [n.op for n in opt.nodes if n.op not in ("Constant", "Conv2d")] == ["Add", "GELU"]
