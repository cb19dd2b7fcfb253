"""Cast between floats and int64 indices: against onnx.reference, in and out of ONNX, and NMS's image
column turned into float region indices, as onnxruntime computes it."""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.errors import AttrError
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import onnxruntime_run
from tests.oracle import cnngraph_op, onnx_reference, op_backend  # noqa: F401 - each test runs on every backend


def test_float_to_int64_truncates_toward_zero_as_the_reference():
    x = np.array([[-2.7, -0.5, 0.0, 0.5, 1.99, 7.0]])
    got = cnngraph_op("Cast", [x], {"to": "int64"})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, onnx_reference("Cast", [x], {"to": 7}))
    np.testing.assert_array_equal(got, [[-2, 0, 0, 0, 1, 7]])


def test_to_float_follows_the_executor():
    x = dsl.input("x", (3,), dtype="int64")
    graph = dsl.Model(x, dsl.cast(x, "float32", name="y"))
    assert graph.type_of("y").dtype == "float32"
    for dtype in ("float32", "float64"):
        out = cnngraph.compile(graph, dtype=dtype).run({"x": np.array([[1, -4, 9]])}, to_host=True)["y"]
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, [[1.0, -4.0, 9.0]])


def test_unknown_target_is_refused():
    with pytest.raises(AttrError, match=r"layer 'op' \(Cast\): to must be one of float32, int64, got 'int8'"):
        cnngraph_op("Cast", [np.zeros((1, 2))], {"to": "int8"})


def test_nms_rows_to_float_and_back_match_onnxruntime_and_import_back():
    """Both directions in one graph: the kept rows' image column as floats, and a float score rounded down."""
    boxes, scores = dsl.input("boxes", (6, 4)), dsl.input("scores", (1, 6))
    kept = dsl.nms(boxes, scores, 3, iou_threshold=0.5, name="nms")
    image = dsl.cast(dsl.layer("Slice", [kept], axes=(1,), starts=(0,), ends=(1,)), "float32", name="image")
    floored = dsl.cast(dsl.layer("Mul", [scores, dsl.constant(10.0)]), "int64", name="floored")
    graph = dsl.Model([boxes, scores], [image, floored])
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 20, (2, 6, 2))
    feeds = {"boxes": np.concatenate([corners, corners + 8], axis=-1).astype(np.float32),
             "scores": rng.random((2, 1, 6)).astype(np.float32)}
    want = onnxruntime_run(to_onnx(graph), feeds)
    for g in (graph, from_model(to_onnx(graph))):
        got = cnngraph.compile(g).run(feeds, to_host=True)
        assert [got[k].dtype for k in g.outputs] == [np.float32, np.int64]
        for name, w in zip(g.outputs, want):
            np.testing.assert_array_equal(got[name], w)
    assert sorted(set(want[0].ravel())) == [0.0, 1.0]
