"""The new activations and math ops through ONNX: a DSL graph exported at every opset (decompositions
where the opset lacks the op) runs in onnxruntime with the executor's numbers and imports back; a
PyTorch export of a module using them imports and matches PyTorch (skipped without torch)."""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.onnx_export import check, to_onnx
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import BATCHES, onnxruntime_run
from tests.test_onnx_import import torch_export


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
    graph = modern_graph()
    model = to_onnx(graph, opset)
    check(model)
    types = {n.op_type for n in model.graph.node}
    assert ("Gelu" in types) == (opset >= 20) and ("HardSwish" in types) == (opset >= 14)
    executor, back = cnngraph.compile(graph), cnngraph.compile(from_model(model))
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 4, 5, 6)).astype(np.float32)
        want = executor(x)
        np.testing.assert_allclose(onnxruntime_run(model, {"x": x})[0], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(back(x), want, rtol=1e-5, atol=1e-5)


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
    model = cnngraph.compile(graph)
    for batch in (1, 3):
        xb = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(xb)).numpy()
        np.testing.assert_allclose(model(xb), want, rtol=1e-4, atol=1e-4)
