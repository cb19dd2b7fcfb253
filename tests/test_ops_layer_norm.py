"""LayerNorm, GroupNorm and InstanceNorm against onnx.reference, their gradients by finite
differences, attribute errors, and ONNX both ways: every opset form, and PyTorch's exports of a
ConvNeXt-style channels-last LayerNorm, the channels-first one written out, GroupNorm, InstanceNorm."""

import numpy as np
import pytest
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model

from cnngraph.errors import AttrError
from tests.gradcheck import check_gradients
from tests.onnx_models import (
    assert_import_matches,
    assert_round_trips,
    node_model,
)
from tests.oracle import (
    cnngraph_op,
    onnx_reference,
    op_backend,  # noqa: F401 - each test runs on every backend
    random,
)
from tests.test_grad_ops import one_op_graph
from tests.test_onnx_import import assert_matches_torch, torch_export


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), -1), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((3, 6), 1)])
def test_layer_norm_matches_reference(shape, axis):
    x, w, b = random(shape, 1), random(shape[axis:], 2), random(shape[axis:], 3)
    got = cnngraph_op("LayerNorm", [x], {"axis": axis, "eps": 1e-3}, {"weight": w, "bias": b})
    want = onnx_reference("LayerNormalization", [x], {"axis": axis, "epsilon": 1e-3}, {"w": w, "b": b})
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # the reference computes in float32 in places


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 4), 3), ((2, 6, 3, 4), 1), ((2, 4, 5), 4)])
def test_group_norm_matches_reference(shape, groups):
    x, w, b = random(shape, 1), random(shape[1:2], 2), random(shape[1:2], 3)
    got = cnngraph_op("GroupNorm", [x], {"num_groups": groups}, {"weight": w, "bias": b})
    want = onnx_reference("GroupNormalization", [x], {"num_groups": groups}, {"w": w, "b": b}, opset=21)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_instance_norm_matches_reference():
    x, w, b = random((2, 3, 4, 5), 1), random((3,), 2), random((3,), 3)
    got = cnngraph_op("InstanceNorm", [x], {"eps": 1e-4}, {"weight": w, "bias": b})
    want = onnx_reference("InstanceNormalization", [x], {"epsilon": 1e-4}, {"w": w, "b": b})
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op,shape,attrs", [
    ("LayerNorm", (2, 3, 4), {}), ("LayerNorm", (2, 3, 2, 2), dict(axis=1, bias=False)),
    ("GroupNorm", (2, 4, 2, 2), dict(num_groups=2)), ("GroupNorm", (3, 4), dict(num_groups=4)),
    ("InstanceNorm", (2, 3, 2, 3), {}),
])
def test_backward_matches_finite_differences(op, shape, attrs):
    check_gradients(*one_op_graph(op, [shape], attrs), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("op,shape,attrs,match", [
    ("LayerNorm", (1, 3, 4), dict(axis=0), r"axis=0 is the batch axis"),
    ("LayerNorm", (1, 3, 4), dict(eps=0), r"eps must be positive"),
    ("GroupNorm", (1, 6, 4), dict(num_groups=4), r"num_groups=4 does not divide the 6 channels"),
])
def test_attribute_errors_name_the_layer(op, shape, attrs, match):
    with pytest.raises(AttrError, match=rf"layer 'op' \({op}\): {match}"):
        cnngraph_op(op, [random(shape)], attrs)


F32 = np.random.default_rng(5).standard_normal


@pytest.mark.parametrize("op,opset,shapes,attrs,inits", [
    ("LayerNormalization", 17, [(4, 7, 9)], dict(axis=-1), dict(w=F32(9).astype(np.float32),
                                                                 b=F32(9).astype(np.float32))),
    ("LayerNormalization", 17, [(4, 7, 9)], dict(axis=1, epsilon=1e-3), dict(w=F32((4, 7, 9)).astype(np.float32))),
    ("GroupNormalization", 18, [(4, 7, 9)], dict(num_groups=2), dict(w=F32(2).astype(np.float32),
                                                                     b=F32(2).astype(np.float32))),
    ("GroupNormalization", 21, [(4, 7, 9)], dict(num_groups=2), dict(w=F32(4).astype(np.float32),
                                                                     b=F32(4).astype(np.float32))),
    ("InstanceNormalization", 7, [(4, 7, 9)], dict(epsilon=1e-3), dict(w=F32(4).astype(np.float32),
                                                                       b=F32(4).astype(np.float32))),
])
def test_onnx_nodes_import_and_match_onnxruntime(op, opset, shapes, attrs, inits):
    assert_import_matches(node_model(op, shapes, attrs, inits, opset), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_dsl_export_runs_in_onnxruntime_and_imports_back(opset):
    x = dsl.input("x", (4, 5, 6))
    y = dsl.conv2d(x, 6, 3, padding=1)
    z = dsl.add(dsl.layer_norm(y), dsl.layer_norm(y, axis=1, bias=False), dsl.group_norm(y, 3), dsl.instance_norm(y))
    graph = dsl.Model(x, z, seed=0)
    for key, value in graph.params.items():
        graph.params[key] = np.random.default_rng(len(key)).standard_normal(value.shape).astype(np.float32)
    assert_round_trips(graph, opset, tol=1e-4)


def test_pytorch_norms_import_and_match():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class ChannelsFirstLayerNorm(nn.Module):
        """The original ConvNeXt code's LayerNorm over channels, written out."""

        def __init__(self, c):
            super().__init__()
            self.weight, self.bias = nn.Parameter(torch.randn(c)), nn.Parameter(torch.randn(c))

        def forward(self, x):
            u = x.mean(1, keepdim=True)
            s = (x - u).pow(2).mean(1, keepdim=True)
            return self.weight[:, None, None] * ((x - u) / torch.sqrt(s + 1e-6)) + self.bias[:, None, None]

    class Norms(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.ln = nn.LayerNorm(8, eps=1e-6)
            self.cf = ChannelsFirstLayerNorm(8)
            self.gn = nn.GroupNorm(4, 8)
            self.inorm = nn.InstanceNorm2d(8, affine=True)

        def forward(self, x):
            y = self.conv(x)
            last = self.ln(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # ConvNeXt's block norm
            return last + self.cf(y) + self.gn(y) + self.inorm(y)

    torch.manual_seed(0)
    module = Norms().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    graph = from_model(torch_export(module, x, opset_version=17))
    assert {"LayerNorm", "InstanceNorm"} <= {n.op for n in graph.nodes}  # GroupNorm: InstanceNorm of (N, G, -1)
    assert_matches_torch(module, graph)
