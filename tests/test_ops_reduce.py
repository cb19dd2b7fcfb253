"""Reductions against onnx.reference (axes as attribute and as input), their gradients by finite
differences, the batch axis refused, and ONNX both ways, PyTorch's x.mean([2, 3]) included."""

import numpy as np
import pytest
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model

import cnngraph
from cnngraph.analysis import receptive_fields
from cnngraph.errors import AttrError, OnnxImportError
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

OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"]
AXES = [((2, 3), True), ((1,), False), ((-1, 1), True), ((1, 2, 3), False)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes,keepdims", AXES)
def test_matches_reference_with_axes_as_input(op, axes, keepdims):
    x = random((2, 3, 4, 5), 1)
    got = cnngraph_op(op, [x], {"axes": axes, "keepdims": keepdims})
    want = onnx_reference(op, [x], {"keepdims": int(keepdims)}, {"axes": np.array(axes, np.int64)}, opset=18)
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape,axes,keepdims", [((2, 3, 4), (1, 2), True), ((2, 3, 2, 2), (2,), False),
                                                 ((3, 5), (1,), False)])
def test_backward_matches_finite_differences(op, shape, axes, keepdims):
    check_gradients(*one_op_graph(op, [shape], {"axes": axes, "keepdims": keepdims}))


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_ties_share_the_gradient(op):
    graph, _ = one_op_graph(op, [(1, 4)], {"axes": (1,)})
    model = cnngraph.compile(graph, dtype="float64", train=True)
    model.forward({"in0": np.array([[2.0, 2.0, 2.0, 2.0]])}, input_grads=True)
    model.backward({"op": np.array([[1.0]])})
    np.testing.assert_allclose(cnngraph.arrays.to_numpy(model.input_grads["in0"]), [[0.25] * 4])


@pytest.mark.parametrize("axes,match", [((0, 2), "axes=0 is the batch axis"), ((-4,), "axes=-4 is the batch axis"),
                                        ((4,), "axes=4 is out of range for a 4-D input"),
                                        ((2, -2), r"axes \(2, -2\) name an axis twice"),
                                        ((), "axes must name at least one per-sample axis")])
def test_axis_errors_name_the_layer(axes, match):
    with pytest.raises(AttrError, match=rf"layer 'op' \(ReduceMean\): {match}"):
        cnngraph_op("ReduceMean", [random((1, 2, 3, 3))], {"axes": axes})


def test_spatial_reduction_is_global_for_the_receptive_field():
    x = dsl.input("x", (3, 8, 8))
    y = dsl.reduce_mean(dsl.conv2d(x, 4, 3, name="conv"), (2, 3), keepdims=False, name="pool")
    assert y.shape == ("N", 4)
    fields = receptive_fields(dsl.Model(x, [y, dsl.reduce_max(x, (1,), name="channels")]))
    assert fields["pool"].whole and not fields["channels"].whole


IMPORT_CASES = [
    ("ReduceMean", 11, dict(axes=[2, 3], keepdims=0), {}),
    ("ReduceMean", 18, {}, dict(a=np.array([-1], np.int64))),
    ("ReduceSum", 11, dict(axes=[1]), {}),
    ("ReduceSum", 13, dict(keepdims=0), dict(a=np.array([1, 3], np.int64))),
    ("ReduceMax", 13, dict(axes=[-2, -1]), {}),
    ("ReduceMin", 18, {}, dict(a=np.array([2], np.int64))),
    ("ReduceSum", 13, dict(noop_with_empty_axes=1), {}),
]


@pytest.mark.parametrize("op,opset,attrs,inits", IMPORT_CASES)
def test_onnx_nodes_import_and_match_onnxruntime(op, opset, attrs, inits):
    assert_import_matches(node_model(op, [(4, 7, 9)], attrs, inits, opset))


def test_reducing_every_axis_is_refused():
    with pytest.raises(OnnxImportError, match=r"\(ReduceMean\): no axes: it reduces every axis, the batch's too"):
        from_model(node_model("ReduceMean", [(4, 7, 9)], {}, {}, 13))


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_dsl_export_runs_in_onnxruntime_and_imports_back(opset):
    x = dsl.input("x", (4, 5, 6))
    y = dsl.conv2d(x, 6, 3, padding=1)
    z = dsl.add(dsl.reduce_mean(y, (2, 3)), dsl.reduce_max(y, (1,)), dsl.reduce_min(y, (-1,)),
                dsl.reduce_sum(y, (1, 2), keepdims=True))
    graph = dsl.Model(x, dsl.reduce_mean(z, (2, 3), keepdims=False), seed=0)
    assert_round_trips(graph, opset)


def test_pytorch_mean_pooling_and_reductions_import_and_match():
    torch = pytest.importorskip("torch")

    class Pools(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            y = self.conv(x)
            y = y + y.sum(1, keepdim=True) + y.amax((2, 3), keepdim=True) - y.amin(3, keepdim=True)
            return self.fc(y.mean([2, 3]))

    torch.manual_seed(0)
    module = Pools().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    assert_matches_torch(module, from_model(torch_export(module, x, opset_version=17)))
