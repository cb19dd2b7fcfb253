"""GreaterOrEqual as 1.0 / 0.0: against onnx.reference (its booleans as numbers), broadcast, exported
(GreaterOrEqual then Cast) for onnxruntime, and imported back."""

import numpy as np

import cnngraph
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import onnxruntime_run
from tests.oracle import cnngraph_op, onnx_reference, op_backend  # noqa: F401 - each test runs on every backend


def test_matches_the_reference_with_ties_counted_as_greater():
    a = np.array([[1.0, 2.0, -3.0, 0.0, 5.5]])
    b = np.array([[1.0, 2.5, -4.0, -0.0, 5.5]])
    got = cnngraph_op("GreaterOrEqual", [a, b])
    np.testing.assert_array_equal(got, onnx_reference("GreaterOrEqual", [a, b]).astype(np.float64))
    np.testing.assert_array_equal(got, [[1, 0, 1, 1, 1]])
    assert got.dtype == np.float64


def test_broadcast_export_runs_in_onnxruntime_and_imports_back():
    sizes = dsl.input("sizes", (2, 6))
    wide = dsl.layer("GreaterOrEqual", [sizes, dsl.constant(np.float32(16))], name="wide")
    graph = dsl.Model(sizes, dsl.layer("ReduceMin", [wide], axes=(1,), name="big"))
    x = np.random.default_rng(0).uniform(0, 32, (3, 2, 6)).astype(np.float32)
    x[0, :, 0] = 16  # a tie: kept
    want = ((x >= 16).min(axis=1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(onnxruntime_run(to_onnx(graph), {"sizes": x})[0], want)
    for g in (graph, from_model(to_onnx(graph))):
        np.testing.assert_array_equal(cnngraph.compile(g).run({"sizes": x}, to_host=True)[g.outputs[0]], want)
    assert want.min() == 0 and want.max() == 1 and want[0, 0, 0] == 1
