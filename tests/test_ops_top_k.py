"""TopK (indices) and GatherElements: against onnx.reference and onnxruntime on their export, equal values in
index order, ONNX's two-output TopK imported back (values by GatherElements), and GatherElements' gradient
against finite differences."""

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import cnngraph
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.errors import ShapeError
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from tests.gradcheck import check_gradients
from tests.onnx_models import node_model, onnxruntime_run
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


@pytest.mark.parametrize("largest", [True, False])
def test_top_k_indices_match_onnx_with_ties_in_index_order(largest):
    x = np.array([[[3.0, 1.0, 3.0, 7.0, 1.0, 0.5]], [[2.0, 2.0, 2.0, -1.0, 5.0, 2.0]]])
    got = cnngraph_op("TopK", [x], {"k": 4, "axis": 2, "largest": largest})
    assert got.dtype == np.int64
    want = {True: [[[3, 0, 2, 1]], [[4, 0, 1, 2]]], False: [[[5, 1, 4, 0]], [[3, 0, 1, 2]]]}[largest]
    np.testing.assert_array_equal(got, want)
    values = onnx_reference("TopK", [x], {"axis": 2, "largest": int(largest)}, {"k": np.array([4], np.int64)})
    np.testing.assert_array_equal(np.take_along_axis(x, got, axis=2), values)
    graph = dsl.Model(t := dsl.input("x", (1, 6)), dsl.layer("TopK", [t], k=4, axis=2, largest=largest, name="op"))
    np.testing.assert_array_equal(onnxruntime_run(to_onnx(graph), {"x": x.astype(np.float32)})[0], want)


def test_two_output_top_k_imports_as_indices_and_gathered_values():
    model = node_model("TopK", [(5, 7)], {"axis": 1}, {"k": np.array([3], np.int64)}, outputs=2)
    graph = from_model(model)
    assert sorted(n.op for n in graph.nodes) == ["GatherElements", "TopK"]
    x = random((2, 5, 7), 1).astype(np.float32)
    got = cnngraph.compile(graph).run({"x0": x}, to_host=True)
    for name, want in zip(graph.outputs, ReferenceEvaluator(model).run(None, {"x0": x})):
        np.testing.assert_array_equal(got[name], want)


def test_gather_elements_matches_onnx_and_its_gradient_finite_differences():
    data = random((2, 4, 3), 0)
    indices = np.array([[[3, 0, 1], [3, 3, -1]], [[0, 2, 2], [1, 1, 0]]], np.int64)  # repeats, a negative
    want = onnx_reference("GatherElements", [data], {"axis": 1}, {"idx": indices})
    np.testing.assert_array_equal(cnngraph_op("GatherElements", [data, indices.astype(np.float64)], {"axis": 1}),
                                  want)
    x, idx = dsl.input("x", (4, 3)), dsl.input("idx", (2, 3), dtype="int64")
    graph = dsl.Model([x, idx], dsl.layer("GatherElements", [x, idx], axis=1, name="op"))
    feeds = {"x": data, "idx": indices}
    np.testing.assert_array_equal(onnxruntime_run(to_onnx(graph), {"x": data.astype(np.float32), "idx": indices})[0],
                                  want.astype(np.float32))
    best = dsl.layer("TopK", [x], k=2, axis=1)  # indices made in the file: the importer takes no int64 input
    chain = dsl.Model(x, dsl.layer("GatherElements", [x, best], axis=1, name="best"))
    back = from_model(to_onnx(chain))
    assert sorted(n.op for n in back.nodes) == ["GatherElements", "TopK"]
    np.testing.assert_array_equal(cnngraph.compile(back).run({"x": data}, to_host=True)["best"],
                                  -np.sort(-data.astype(np.float32), axis=1)[:, :2])
    check_gradients(graph, feeds, wrt=("x",))


def test_shapes_are_checked():
    x = dsl.input("x", (4, 3))
    with pytest.raises(ShapeError, match=r"cannot take the top 5 along axis 1 of \(N, 4, 3\)"):
        dsl.layer("TopK", [x], k=5, axis=1)
    with pytest.raises(ShapeError, match=r"expects indices of the data's shape except along axis 1"):
        dsl.layer("GatherElements", [x, dsl.input("idx", (2, 2), dtype="int64")], axis=1)
