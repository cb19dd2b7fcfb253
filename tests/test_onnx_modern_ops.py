"""The new activations and math ops through ONNX: a DSL graph exported at every opset (decompositions
where the opset lacks the op) runs in onnxruntime with the executor's numbers and imports back; a
PyTorch export of a module using them imports and matches PyTorch (skipped without torch)."""

import numpy as np
import pytest
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model

import cnngraph
from tests.onnx_models import assert_round_trips
from tests.test_onnx_import import assert_matches_torch, torch_export


def modern_graph():
    """Every new op once, on values where each is defined (Log and Sqrt of positive ones)."""
    x = dsl.input("x", (4, 5, 6))
    y = dsl.conv2d(x, 6, 3, padding=1, name="conv")
    acts = [dsl.hard_sigmoid(y, alpha=0.25, beta=0.4), dsl.hard_swish(y), dsl.silu(y), dsl.gelu(y),
            dsl.gelu(y, approximate="tanh"), dsl.mish(y), dsl.selu(y), dsl.softplus(y), dsl.softsign(y),
            dsl.prelu(y, 6), dsl.prelu(y), dsl.neg(y), dsl.erf(y), dsl.exp(dsl.tanh(y))]
    positive = dsl.add(dsl.abs(y), dsl.constant(0.5))
    acts += [dsl.log(positive), dsl.sqrt(positive), dsl.reciprocal(positive),
             dsl.pow(positive, dsl.constant(np.full((6, 1, 1), 1.5))), dsl.maximum(y, dsl.neg(y), dsl.tanh(y)),
             dsl.minimum(y, dsl.constant(0.1))]
    return dsl.Model(x, dsl.add(*acts), seed=0)


@pytest.mark.parametrize("opset", [13, 17, 20, 21])
def test_export_runs_in_onnxruntime_and_imports_back(opset):
    model = assert_round_trips(modern_graph(), opset)
    types = {n.op_type for n in model.graph.node}
    assert ("Gelu" in types) == (opset >= 20) and ("HardSwish" in types) == (opset >= 14)


def test_pytorch_export_of_the_new_activations_imports_and_matches():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Modern(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.acts = nn.ModuleList([nn.Hardswish(), nn.Hardsigmoid(), nn.SiLU(), nn.GELU(),
                                       nn.GELU(approximate="tanh"), nn.Mish(), nn.SELU(), nn.Softplus(),
                                       nn.Softsign(), nn.PReLU(8), nn.PReLU()])

        def forward(self, x):
            y = self.conv(x)
            out = sum(act(y) for act in self.acts)
            positive = y * y + 1
            out = out + torch.exp(-y.abs()) + torch.sqrt(positive) + torch.log(positive) + torch.reciprocal(positive)
            return out + torch.maximum(y, -y) + torch.minimum(y, 0.5 * y) + y.pow(2) + torch.erf(y)

    torch.manual_seed(0)
    module = Modern().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    graph = from_model(torch_export(module, x, opset_version=17))
    assert {"HardSwish", "HardSigmoid", "PReLU", "Selu", "Softplus", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Abs",
            "Neg", "Max", "Min", "Pow"} <= {n.op for n in graph.nodes}  # opset 17: GELU, Mish, SiLU as their parts
    assert_matches_torch(module, graph)


def test_pytorch_mobilenet_v3_and_convnext_style_blocks_import_fuse_and_match():
    """Conv-BN-Hardswish, squeeze-and-excitation gated by hardsigmoid, a ConvNeXt block (depthwise conv,
    channels-last LayerNorm, GELU, layer scale, residual) and mean pooling. The ConvNeXt Linears are 1x1
    convolutions here, so the fusions show; test_onnx_channels_last_linear imports them as nn.Linear."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Blocks(nn.Module):
        def __init__(self, dim=16):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.Hardswish())
            self.squeeze, self.excite = nn.Conv2d(dim, 4, 1), nn.Conv2d(4, dim, 1)
            self.dw, self.norm = nn.Conv2d(dim, dim, 7, padding=3, groups=dim), nn.LayerNorm(dim, eps=1e-6)
            self.fc1, self.act, self.fc2 = nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1)
            self.gamma = nn.Parameter(torch.full((dim, 1, 1), 0.5))
            self.head = nn.Linear(dim, 5)

        def forward(self, x):
            y = self.stem(x)
            gate = nn.functional.hardsigmoid(self.excite(torch.relu(self.squeeze(y.mean((2, 3), keepdim=True)))))
            y = y * gate
            z = self.norm(self.dw(y).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            y = y + self.gamma * self.fc2(self.act(self.fc1(z)))
            return self.head(y.mean([2, 3]))

    torch.manual_seed(0)
    module = Blocks().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    for opset in (13, 17):
        model = cnngraph.compile(from_model(torch_export(module, x, opset_version=opset)))
        fused = [n.attrs.get("activation") for n in model.graph.nodes if n.op == "FusedConv2d"]
        assert fused[:1] == ["HardSwish"] and "GELU" in fused and "HardSigmoid" in fused
        np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-5)
