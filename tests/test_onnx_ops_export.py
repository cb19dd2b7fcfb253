"""Every IR op exported to ONNX, checked by onnx.checker and run in onnxruntime against the NumPy
executor, attribute combinations included; then imported back and run again (the round trip)."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.backends.onnx_export import check, to_onnx
from cnngraph.backends.onnx_verify import verify
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from cnngraph.ops import all_ops
from cnngraph.ops.onnx_mapping import export_spec
from tests.onnx_models import BATCHES, onnxruntime_run

IMG = (4, 7, 9)
CASES = [
    # op, per-sample input shapes, attributes
    ("Conv2d", [IMG], dict(out_channels=6, kernel_size=3, padding=1)),
    ("Conv2d", [IMG], dict(out_channels=4, kernel_size=(3, 2), stride=2, padding=(0, 1, 2, 1), bias=False)),
    ("Conv2d", [IMG], dict(out_channels=6, kernel_size=3, dilation=2, groups=2, padding=2)),
    ("Conv2d", [IMG], dict(out_channels=8, kernel_size=3, groups=4, stride=2, padding="same")),
    ("ConvTranspose2d", [IMG], dict(out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1)),
    ("ConvTranspose2d", [IMG], dict(out_channels=6, kernel_size=(2, 3), dilation=2, groups=2, bias=False)),
    ("ConvTranspose2d", [IMG], dict(out_channels=2, kernel_size=4, stride=(2, 3), padding=(0, 1, 1, 0))),
    ("Linear", [(12,)], dict(out_features=5)),
    ("Linear", [(12,)], dict(out_features=3, bias=False)),
    ("BatchNorm2d", [IMG], dict(eps=1e-3, momentum=0.2)),
    ("BatchNorm2d", [(6,)], {}),
    ("LRN", [IMG], dict(size=3, alpha=1e-2, beta=0.5, k=2.0)),
    ("ReLU", [IMG], {}),
    ("LeakyReLU", [IMG], dict(alpha=0.2)),
    ("ELU", [IMG], dict(alpha=0.5)),
    ("Clip", [IMG], {}),
    ("Clip", [IMG], dict(min=-0.5, max=0.25)),
    ("Sigmoid", [IMG], {}),
    ("Tanh", [IMG], {}),
    ("Softmax", [(10,)], {}),
    ("Softmax", [IMG], dict(axis=-1)),
    ("LogSoftmax", [IMG], dict(axis=1)),
    ("MaxPool2d", [IMG], dict(kernel_size=3, stride=2, padding=1)),
    ("MaxPool2d", [IMG], dict(kernel_size=(3, 2), stride=2, padding=(1, 0, 0, 1), ceil_mode=True)),
    ("MaxPool2d", [IMG], dict(kernel_size=2, dilation=2, stride=1)),
    ("AvgPool2d", [IMG], dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", [IMG], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("AvgPool2d", [IMG], dict(kernel_size=2, ceil_mode=True, count_include_pad=False)),
    ("GlobalAvgPool", [IMG], {}),
    ("AdaptiveAvgPool2d", [IMG], dict(output_size=1)),
    ("AdaptiveAvgPool2d", [(4, 8, 9)], dict(output_size=(4, 3))),  # equal cells: an AveragePool
    ("AdaptiveAvgPool2d", [(4, 10, 13)], dict(output_size=(7, 7))),  # overlapping cells: averaging matrices
    ("AdaptiveAvgPool2d", [(4, 5, 6)], dict(output_size=(5, 9))),  # only W pooled (more cells than pixels)
    ("Upsample", [IMG], dict(scale_factor=2)),
    ("Upsample", [IMG], dict(scale_factor=(1.5, 0.5))),
    ("Upsample", [IMG], dict(size=(10, 13))),
    ("Upsample", [IMG], dict(scale_factor=2, mode="bilinear")),
    ("Upsample", [IMG], dict(size=(5, 12), mode="bilinear")),
    ("Upsample", [IMG], dict(size=(13, 4), mode="bilinear", align_corners=True)),
    ("Flatten", [IMG], {}),
    ("Reshape", [IMG], dict(shape=(2, -1, 9))),
    ("Concat", [IMG, (2, 7, 9)], dict(axis=1)),
    ("Concat", [IMG, (4, 7, 2), (4, 7, 1)], dict(axis=-1)),
    ("Slice", [IMG], dict(axes=(1, 3), starts=(1, -5), ends=(3, 100), steps=(1, 2))),
    ("Pad", [IMG], dict(padding=(1, 0, 2, 3), value=1.5)),
    ("Pad", [IMG], dict(padding=2, mode="reflect")),
    ("Pad", [IMG], dict(padding=(0, 1, 2, 0), mode="edge")),
    ("Identity", [IMG], {}),
    ("Add", [IMG, IMG], {}),
    ("Add", [IMG, (4, 1, 1), IMG], {}),  # three summands: a Sum
    ("Mul", [IMG, (4, 1, 1)], {}),
    ("Dropout", [IMG], dict(p=0.3)),
    ("Transpose", [IMG], dict(perm=(0, 2, 3, 1))),
    ("Constant", [], dict(shape=(1, 4, 1, 1))),
    ("FusedConv2d", [IMG], dict(out_channels=4, kernel_size=3, padding=1, activation="ReLU")),
    ("FusedConv2d", [IMG, (4, 4, 5)], dict(out_channels=4, kernel_size=3, stride=2, padding=1, residual=True,
                                           activation="LeakyReLU", activation_attrs={"alpha": 0.2})),
    ("FusedConv2d", [IMG], dict(out_channels=6, kernel_size=1, bias=False, activation="Clip")),
    ("FusedLinear", [(12,)], dict(out_features=5, activation="Sigmoid")),
    ("FusedLinear", [(12,), (5,)], dict(out_features=5, residual=True)),
]
OPSETS = (13, 17, 21)


def one_op_graph(op, shapes, attrs, seed=0):
    """The op on graph inputs (a Constant is added to one), with random parameters and statistics."""
    xs = [dsl.input(f"x{i}", s) for i, s in enumerate(shapes)]
    y = dsl.layer(op, xs, name="op", **attrs)
    if op == "Constant":
        xs = [dsl.input("x0", IMG)]
        y = dsl.add(xs[0], y)
    graph = dsl.Model(xs, y, seed=seed)
    rng = np.random.default_rng(seed)
    for key, value in graph.params.items():
        graph.params[key] = (rng.uniform(0.5, 2, value.shape) if key.endswith("var")
                             else rng.standard_normal(value.shape)).astype(np.float32)
    return graph


def run_both(graph, model):
    """onnxruntime on ``model`` and the NumPy executor on ``graph``, at each test batch size."""
    executor = cnngraph.compile(graph)
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        feeds = {k: rng.standard_normal(t.concrete(batch)).astype(np.float32) for k, t in graph.inputs.items()}
        yield onnxruntime_run(model, feeds)[0], executor(*feeds.values()), feeds


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op,shapes,attrs", CASES)
def test_export_matches_onnxruntime_and_imports_back(op, shapes, attrs, opset):
    graph = one_op_graph(op, shapes, attrs)
    data = to_onnx(graph, opset).SerializeToString()
    check(data)
    back = cnngraph.compile(from_model(to_onnx(graph, opset)))
    for got, want, feeds in run_both(graph, data):
        assert got.shape == want.shape
        # float32 Winograd convolutions are ~1e-5 of the output's largest magnitude from exact (README)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5 * max(1.0, float(np.abs(want).max())))
        np.testing.assert_allclose(back(*feeds.values()), want, rtol=1e-6, atol=1e-6)


COVERED = {  # the ops of issues 2 to 4; ops added since test their mappings beside their own op tests
    "Conv2d", "ConvTranspose2d", "Linear", "BatchNorm2d", "LRN", "ReLU", "LeakyReLU", "ELU", "Clip", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "AdaptiveAvgPool2d", "Upsample",
    "Flatten", "Reshape", "Concat", "Slice", "Pad", "Identity", "Add", "Mul", "Dropout", "Transpose", "Constant",
    "FusedConv2d", "FusedLinear",
}


def test_every_covered_op_is_mapped_and_has_an_export_case():
    assert {name for name in COVERED if export_spec(name) is not None} == COVERED <= set(all_ops())
    assert {op for op, _, _ in CASES} == COVERED


def test_an_optimised_graph_exports_its_fused_ops_as_standard_onnx():
    """BN folded into the convs, conv + add + relu fused: the file has only standard ops and still matches."""
    optimised = cnngraph.compile(models.build("resnet18", input_size=32)).graph
    assert {"FusedConv2d"} <= {n.op for n in optimised.nodes}
    model = to_onnx(optimised)
    check(model)
    assert {n.op_type for n in model.graph.node} == {"Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Flatten",
                                                     "Gemm"}
    assert verify(optimised, model, batches=(1, 2)).ok


@pytest.mark.parametrize("opset", OPSETS)
def test_training_export_keeps_batch_norm_statistics_and_dropout_mode(opset):
    x = dsl.input("x", IMG)
    graph = dsl.Model(x, dsl.dropout(dsl.batch_norm(dsl.conv2d(x, 3, 3), name="bn"), p=0.25, name="drop"))
    model = to_onnx(graph, max(opset, 14), training=True)
    check(model)
    nodes = {n.op_type: n for n in model.graph.node}
    assert [a.i for a in nodes["BatchNormalization"].attribute if a.name == "training_mode"] == [1]
    assert len(nodes["BatchNormalization"].output) == 3
    assert nodes["Dropout"].input[2] == "drop/training_mode"
    back = from_model(model)
    assert back.training and back.node("drop").attrs["p"] == 0.25
