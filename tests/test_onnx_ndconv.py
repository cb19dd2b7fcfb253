"""1-D and 3-D networks through ONNX: PyTorch's exports of Conv1d/Conv3d models imported and matched
against PyTorch, hand-written files with ONNX's defaults and auto_pad against onnx.reference, and the
exporter's 3-D/5-D files (every opset it writes) against onnxruntime."""

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import cnngraph
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import node_model, onnxruntime_run
from tests.test_onnx_import import torch_export


def torch_nets(torch):
    nn = torch.nn
    torch.manual_seed(0)
    volume = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(2, ceil_mode=True),
        nn.Conv3d(4, 4, (1, 3, 3), stride=(1, 2, 1), padding=(0, 1, 1), groups=2), nn.ReLU(),
        nn.ConvTranspose3d(4, 3, 2, stride=2), nn.Upsample(scale_factor=2, mode="trilinear"),
        nn.AvgPool3d(3, stride=2, padding=1, count_include_pad=False), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        nn.Linear(3, 5),
    )
    sequence = nn.Sequential(
        nn.Conv1d(3, 8, 5, padding=2, dilation=1), nn.BatchNorm1d(8), nn.ReLU(), nn.AvgPool1d(3, stride=2),
        nn.Conv1d(8, 8, 3, dilation=2, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Upsample(scale_factor=2, mode="linear"), nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1),
        nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(4, 3),
    )
    for m in (*volume.modules(), *sequence.modules()):  # statistics away from 0 and 1, so folding shows
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    return {"volume": (volume, (2, 6, 8, 7)), "sequence": (sequence, (3, 20))}


@pytest.mark.parametrize("name", ["volume", "sequence"])
@pytest.mark.parametrize("folding", [True, False])
def test_pytorch_exports_import_and_match_pytorch(name, folding):
    torch = pytest.importorskip("torch")
    model, shape = torch_nets(torch)[name]
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    graph = from_model(torch_export(model, x, do_constant_folding=folding, opset_version=17))
    for batch in (1, 4):
        xb = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(xb)).numpy()
        np.testing.assert_allclose(cnngraph.compile(graph)(xb), want, rtol=1e-4, atol=1e-5)
        optimised = cnngraph.compile(graph, passes="default")(xb)  # BN folding and fusion on 1-D/3-D
        np.testing.assert_allclose(optimised, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op,shape,attrs,weight", [
    ("Conv", (2, 5, 6, 7), dict(auto_pad="SAME_LOWER", strides=[2, 1, 2], kernel_shape=[2, 3, 2]), (3, 2, 2, 3, 2)),
    ("Conv", (2, 9), dict(auto_pad="SAME_UPPER", strides=[2]), (3, 2, 4)),
    ("Conv", (2, 4, 4, 4), {}, (3, 2, 3, 3, 3)),  # no strides, pads or dilations: ONNX's defaults
    ("MaxPool", (2, 5, 6, 7), dict(kernel_shape=[3, 2, 2]), None),  # strides default to 1, not to the kernel
    ("AveragePool", (2, 9), dict(kernel_shape=[3], auto_pad="SAME_UPPER"), None),
    ("ConvTranspose", (2, 3, 3, 2), dict(strides=[2, 1, 2], output_shape=[6, 3, 4], auto_pad="SAME_UPPER"),
     (2, 3, 2, 3, 2)),
    ("GlobalMaxPool", (2, 3, 4, 5), {}, None),
])
def test_hand_written_nodes_import_as_onnx_reference_runs_them(op, shape, attrs, weight):
    inits = {"w": np.random.default_rng(1).standard_normal(weight).astype(np.float32)} if weight else {}
    model = node_model(op, [shape], attrs, inits)
    x = np.random.default_rng(2).standard_normal((2, *shape)).astype(np.float32)
    if op == "GlobalMaxPool":  # onnx.reference keeps a wrong axis for 3-D inputs: onnxruntime is the oracle
        want = onnxruntime_run(model, {"x0": x})[0]
    else:
        want = ReferenceEvaluator(model).run(None, {"x0": x})[0]
    got = cnngraph.compile(from_model(model))(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def nd_graph(axes):
    mode = {1: "linear", 3: "trilinear"}[axes]
    conv = {1: dsl.conv1d, 3: dsl.conv3d}[axes]
    x = dsl.input("x", (2, *(6,) * axes))
    y = dsl.relu(dsl.batch_norm(conv(x, 4, 3, padding="same", bias=False)))
    y = {1: dsl.max_pool1d, 3: dsl.max_pool3d}[axes](y, 2)
    y = dsl.upsample(y, size=(6,) * axes, mode=mode, align_corners=True)
    y = dsl.upsample(y, scale_factor=1.5, mode="nearest")
    gate = dsl.sigmoid(dsl.global_max_pool(y) + dsl.global_avg_pool(y))  # (N, 4, 1[, 1, 1]) over the map
    return dsl.Model(x, dsl.concat([y * gate, y]), seed=4)


@pytest.mark.parametrize("axes", [1, 3])
@pytest.mark.parametrize("opset", [13, 17, 18])
def test_exported_nd_graphs_run_in_onnxruntime_and_import_back(axes, opset):
    ort = pytest.importorskip("onnxruntime")
    graph = nd_graph(axes)
    model = to_onnx(graph, opset=opset)
    x = np.random.default_rng(3).standard_normal((3, 2, *(6,) * axes)).astype(np.float32)
    want = cnngraph.compile(graph)(x)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-5)
    again = from_model(model)
    assert [n.op for n in again.nodes] == [n.op for n in graph.nodes]
    np.testing.assert_allclose(cnngraph.compile(again)(x), want, rtol=1e-6, atol=1e-6)
