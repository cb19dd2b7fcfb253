"""nn.Linear on channels-last pixels (ConvNeXt's pointwise MLP): PyTorch exports a MatMul on a 4-D
value, imported as a 1x1 convolution between transposes; checked against PyTorch (skipped without)."""

import numpy as np
import pytest
from onnx import helper

from cnngraph.errors import OnnxImportError
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import model_of
from tests.test_onnx_import import assert_matches_torch, torch_export


def _modules(torch):
    nn = torch.nn

    class ChannelsLastLinear(nn.Module):
        def __init__(self, dim=6):
            super().__init__()
            self.fc = nn.Linear(dim, 10)

        def forward(self, x):
            return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    class ConvNeXtBlock(nn.Module):
        def __init__(self, dim=6):
            super().__init__()
            self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
            self.gamma = nn.Parameter(torch.full((dim,), 0.5))

        def forward(self, x):
            y = self.norm(self.dw(x).permute(0, 2, 3, 1))
            y = self.gamma * self.fc2(self.act(self.fc1(y)))
            return x + y.permute(0, 3, 1, 2)

    return ChannelsLastLinear, ConvNeXtBlock


@pytest.mark.parametrize("which", [0, 1], ids=["permute-linear-permute", "convnext-block"])
def test_pytorch_linear_on_channels_last_pixels_imports_and_matches(which):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = _modules(torch)[which]().eval()
    x = np.random.default_rng(0).standard_normal((2, 6, 9, 9)).astype(np.float32)
    graph = from_model(torch_export(module, x, opset_version=17))
    assert "Conv2d" in {n.op for n in graph.nodes}
    assert graph.type_of(graph.outputs[0]).shape[1:] == (6 if which else 10, 9, 9)
    assert_matches_torch(module, graph, atol=1e-5)


def test_matmul_on_a_3d_value_is_refused_naming_what_is_supported():
    model = model_of([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], {"x": (4, 6)}, ["y"],
                     initializers={"w": np.ones((6, 3), np.float32)})
    with pytest.raises(OnnxImportError, match=r"node 'mm' \(MatMul\): supported: .*a runtime \(N, H, W, K\) x"):
        from_model(model)
