"""NonMaxSuppression, GatherND and BoxDecode: each against onnxruntime (through its ONNX export or a one-node
model), gradients against finite differences, and a small detector, image -> heads -> decode -> NMS ->
gathered boxes and scores, whose three outputs onnxruntime reproduces at two batch sizes."""

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import cnngraph
from cnngraph.arrays import to_numpy
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.detection.anchors import rpn_anchors
from cnngraph.errors import ShapeError
from cnngraph.frontends import dsl, onnx_import
from tests.gradcheck import check_gradients
from tests.oracle import current_backend, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


def ort_session(model):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(graph, feeds, dtype="float32"):
    model = cnngraph.compile(graph, backend=current_backend(), dtype=dtype)
    return {k: to_numpy(v) for k, v in model.run(feeds).items()}


def clustered(rng, batch, count, classes):
    centres = rng.uniform(0, 40, (batch, 3, 1, 2))
    xy = (centres + rng.normal(0, 2, (batch, 3, count // 3, 2))).reshape(batch, count, 2)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 9, (batch, count, 2))], axis=-1).astype(np.float32)
    scores = rng.permutation(batch * classes * count).reshape(batch, classes, count) / (batch * classes * count)
    return boxes, scores.astype(np.float32)


def nms_graph(count, classes, **attrs):
    boxes = dsl.input("boxes", (count, 4))
    scores = dsl.input("scores", (classes, count))
    return dsl.Model([boxes, scores], dsl.nms(boxes, scores, name="nms", **attrs))


@pytest.mark.parametrize("attrs", [
    {"max_output_boxes_per_class": 4, "iou_threshold": 0.4, "score_threshold": 0.3},
    {"max_output_boxes_per_class": 100, "iou_threshold": 0.6},
    {"max_output_boxes_per_class": 3, "iou_threshold": 0.5, "center_point_box": 1},
])
def test_nms_op_matches_onnxruntime_after_export(attrs):
    graph = nms_graph(12, 2, **attrs)
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    session = ort_session(model)
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        boxes, scores = clustered(rng, batch, 12, 2)
        if attrs.get("center_point_box"):
            boxes[..., 2:] -= boxes[..., :2]  # (x, y, w, h) with the corner as centre: any boxes will do
        feeds = {"boxes": boxes, "scores": scores}
        want = session.run(None, feeds)[0]
        got = run(graph, feeds)["nms"]
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.int64 and len(got) > batch


def test_nms_imports_from_onnx_and_matches_onnxruntime(tmp_path):
    path = tmp_path / "nms.onnx"
    graph = nms_graph(9, 3, max_output_boxes_per_class=2, iou_threshold=0.3, score_threshold=0.1)
    onnx.save(to_onnx(graph), path)
    again = onnx_import.load(path)
    node = next(n for n in again.nodes if n.op == "NonMaxSuppression")
    assert node.attrs["max_output_boxes_per_class"] == 2 and node.attrs["iou_threshold"] == pytest.approx(0.3)
    session = ort_session(onnx.load(path))
    for batch in (1, 2):
        boxes, scores = clustered(np.random.default_rng(batch), batch, 9, 3)
        feeds = {"boxes": boxes, "scores": scores}
        np.testing.assert_array_equal(run(again, feeds)[again.outputs[0]], session.run(None, feeds)[0])


def test_gather_nd_matches_onnx_and_its_gradient_finite_differences():
    """Indices are a runtime int64 input; the gradient w.r.t. data by hand (finite differences over data only)."""
    data = random((3, 4, 5), 0)
    indices = np.array([[2, 1], [0, 3], [2, 1], [-1, 0]], np.int64)  # a repeated row, a negative index
    x = dsl.input("x", (4, 5))
    idx = dsl.input("idx", (2,), dtype="int64", leading="M")  # integer rows of their own count M
    graph = dsl.Model([x, idx], dsl.gather_nd(x, idx, name="op"))
    exported = to_onnx(graph)
    want = ReferenceEvaluator(exported).run(None, {"x": data.astype(np.float32), "idx": indices})[0]
    np.testing.assert_array_equal(ort_session(exported).run(None, {"x": data.astype(np.float32), "idx": indices})[0],
                                  want)
    np.testing.assert_array_equal(run(graph, {"x": data, "idx": indices})["op"], want)
    check_gradients(graph, {"x": data, "idx": indices}, wrt=("x",))
    constant = dsl.Model(x, dsl.gather_nd(x, dsl.constant(indices[:, :1], name="rows"), name="op"))
    constant.params[constant.node("rows").params["value"]] = indices[:, :1].astype(np.float32)
    exported = to_onnx(constant)  # whole numbers in a float constant: cast to int64 on export
    np.testing.assert_array_equal(ort_session(exported).run(None, {"x": data.astype(np.float32)})[0],
                                  run(constant, {"x": data})["op"])
    with pytest.raises(ShapeError, match=r"expects indices \(..., q\) with 1 <= q <= 3"):
        dsl.gather_nd(x, dsl.input("wide", (4,), dtype="int64"))


def test_box_decode_gradient_matches_finite_differences():
    anchors = rpn_anchors((2, 2), 8, sizes=(8, 16), ratios=(0.5, 2.0))
    deltas = dsl.input("deltas", (16, 4))
    graph = dsl.Model(deltas, dsl.box_decode(deltas, dsl.constant(anchors, name="anchors"), (0.1, 0.1, 0.2, 0.2)))
    graph.params[graph.node("anchors").params["value"]] = anchors
    values = random((2, 16, 4), 3)
    values[0, 0, 2] = 30.0  # past the log-scale clip: no gradient
    check_gradients(graph, {"deltas": values}, rtol=1e-5, atol=1e-7)


def tiny_detector(classes=3, size=8, stride=4):
    """Two 3x3 convolutions as box and class heads on a size x size map, one anchor per cell."""
    image = dsl.input("image", (3, size * stride, size * stride))
    features = dsl.relu(dsl.conv2d(image, 8, stride, stride=stride, name="stem"))
    cells = size * size
    deltas = dsl.layer("Transpose", [dsl.reshape(dsl.conv2d(features, 4, 3, padding=1, name="box_head"), (4, cells))],
                       perm=(0, 2, 1))
    scores = dsl.reshape(dsl.softmax(dsl.conv2d(features, classes, 3, padding=1, name="class_head"), axis=1),
                         (classes, cells), name="scores")
    anchors = rpn_anchors((size, size), stride, sizes=(3 * stride,), ratios=(1.0,))
    boxes = dsl.box_decode(deltas, dsl.constant(anchors, name="anchors"), (0.1, 0.1, 0.2, 0.2), name="boxes")
    selected = dsl.nms(boxes, scores, 5, 0.3, 0.34, name="nms")
    return image, boxes, scores, selected, anchors


def test_a_detector_with_nms_exports_and_onnxruntime_gives_its_detections():
    image, boxes, scores, selected, anchors = tiny_detector()
    kept_scores = dsl.gather_nd(scores, selected, name="kept_scores")
    graph = dsl.Model(image, [selected, boxes, kept_scores], name="tiny_detector", seed=3)
    graph.params[graph.node("anchors").params["value"]] = anchors
    assert [str(graph.type_of(v)) for v in graph.outputs] == \
        ["i64[selected_nms,3]", "f32[N,64,4]", "f32[selected_nms]"]
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    session = ort_session(model)
    for batch in (1, 2):
        x = random((batch, 3, 32, 32), batch, np.float32)
        want = dict(zip(graph.outputs, session.run(None, {"image": x})))
        got = run(graph, {"image": x})
        np.testing.assert_array_equal(got["nms"], want["nms"])
        assert len(got["nms"]) > 0
        np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(got["kept_scores"], want["kept_scores"], rtol=1e-5, atol=1e-6)
