"""Tile against onnx.reference, its gradient, the batch refused, and ONNX both ways."""

import numpy as np
import pytest
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model

import cnngraph
from cnngraph.errors import AttrError, OnnxImportError
from tests.gradcheck import check_gradients
from tests.onnx_models import assert_round_trips, node_model
from tests.oracle import (
    cnngraph_op,
    onnx_reference,
    op_backend,  # noqa: F401 - each test runs on every backend
    random,
)
from tests.test_grad_ops import one_op_graph


@pytest.mark.parametrize("shape,repeats", [((2, 3, 4, 5), (1, 2, 3)), ((2, 3), (4,)), ((2, 2, 3), (3, 1))])
def test_matches_reference(shape, repeats):
    x = random(shape, 1)
    want = onnx_reference("Tile", [x], {}, {"r": np.array([1, *repeats], np.int64)})
    np.testing.assert_array_equal(cnngraph_op("Tile", [x], {"repeats": repeats}), want)


@pytest.mark.parametrize("shape,repeats", [((2, 3, 2, 2), (2, 1, 3)), ((2, 3), (2,))])
def test_backward_matches_finite_differences(shape, repeats):
    check_gradients(*one_op_graph("Tile", [shape], {"repeats": repeats}))


def test_repeats_are_checked():
    with pytest.raises(AttrError, match=r"layer 'op' \(Tile\): repeats must have 2 values, got 3"):
        cnngraph_op("Tile", [random((1, 2, 3))], {"repeats": (1, 2, 3)})
    with pytest.raises(OnnxImportError, match=r"\(Tile\): repeats \[2, 1, 1, 1\] repeat the batch"):
        from_model(node_model("Tile", [(4, 7, 9)], {}, {"r": np.array([2, 1, 1, 1], np.int64)}))


@pytest.mark.parametrize("opset", [13, 17])
def test_dsl_export_runs_in_onnxruntime_and_imports_back(opset):
    x = dsl.input("x", (4, 5, 6))
    graph = dsl.Model(x, dsl.tile(dsl.relu(x), (2, 1, 3)))
    assert_round_trips(graph, opset, tol=0)


def test_pytorch_repeat_imports():
    torch = pytest.importorskip("torch")
    from tests.test_onnx_import import torch_export

    class Repeat(torch.nn.Module):
        def forward(self, x):
            return x.repeat(1, 2, 1, 3) * 2

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    model = cnngraph.compile(from_model(torch_export(Repeat(), x, opset_version=17)))
    np.testing.assert_array_equal(model(x[:1]), np.tile(x[:1], (1, 2, 1, 3)) * 2)
