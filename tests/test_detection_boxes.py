"""Box math against independent oracles: IoU by counting pixels, the encoding by a per-box loop of the
paper's formulas, NMS against onnxruntime's (and onnx.reference's) NonMaxSuppression, and default boxes
against SSD300's published count of 8732 and a brute-force loop."""

import math

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from cnngraph.detection import anchors, boxes


def random_boxes(rng, count, size=20, integer=False):
    xy = rng.uniform(0, size, (count, 2))
    wh = rng.uniform(1, size / 2, (count, 2))
    b = np.concatenate([xy, xy + wh], axis=1)
    return np.floor(b) if integer else b


def pixel_iou(a, b, size=40):
    """IoU of integer boxes by painting them on a grid."""
    masks = []
    for x1, y1, x2, y2 in (a, b):
        m = np.zeros((size, size), bool)
        m[int(y1):int(y2), int(x1):int(x2)] = True
        masks.append(m)
    union = (masks[0] | masks[1]).sum()
    return (masks[0] & masks[1]).sum() / union if union else 0.0


def test_iou_matrix_counts_pixels():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 7, integer=True), random_boxes(rng, 5, integer=True)
    a[0] = b[0]  # identical boxes: IoU 1
    a[1] = [3, 3, 3, 9]  # empty box: IoU 0
    want = np.array([[pixel_iou(p, q) for q in b] for p in a])
    got = boxes.iou_matrix(a, b)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[0, 0] == 1.0 and not got[1].any()


def test_encode_matches_the_rcnn_formulas_and_decode_inverts_it():
    rng = np.random.default_rng(1)
    gt, anc = random_boxes(rng, 9), random_boxes(rng, 9)
    var = (0.1, 0.1, 0.2, 0.2)
    got = boxes.encode(gt, anc, var)
    for (x1, y1, x2, y2), (a1, b1, a2, b2), row in zip(gt, anc, got):
        wa, ha = a2 - a1, b2 - b1
        want = [((x1 + x2) / 2 - (a1 + a2) / 2) / wa / 0.1, ((y1 + y2) / 2 - (b1 + b2) / 2) / ha / 0.1,
                math.log((x2 - x1) / wa) / 0.2, math.log((y2 - y1) / ha) / 0.2]
        np.testing.assert_allclose(row, want, rtol=1e-12)
    np.testing.assert_allclose(boxes.decode(got, anc, var), gt, rtol=1e-12, atol=1e-12)


def test_decode_clips_the_log_scale_so_exp_stays_finite():
    anchor = np.array([[0.0, 0.0, 16.0, 16.0]])
    out = boxes.decode(np.array([[0.0, 0.0, 1e4, 1e4]]), anchor)
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 1000.0)


def test_bad_shapes_and_variances_are_named():
    with pytest.raises(ValueError, match="4 coordinates"):
        boxes.iou_matrix(np.zeros((3, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="variances"):
        boxes.encode(np.ones((1, 4)), np.ones((1, 4)), (0.1, 0, 0.2, 0.2))


def onnx_nms(runner, b, s, max_out, iou, score):
    model = helper.make_model(helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou", "score"], ["sel"])], "nms",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, b.shape),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, s.shape)],
        [helper.make_tensor_value_info("sel", TensorProto.INT64, None)],
        initializer=[helper.make_tensor("max", TensorProto.INT64, [1], [max_out]),
                     helper.make_tensor("iou", TensorProto.FLOAT, [1], [iou]),
                     helper.make_tensor("score", TensorProto.FLOAT, [1], [score])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if runner == "onnxruntime":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"boxes": b, "scores": s})[0]
    return ReferenceEvaluator(model).run(None, {"boxes": b, "scores": s})[0]


@pytest.mark.parametrize("runner", ["onnxruntime", "reference"])
@pytest.mark.parametrize("max_out, iou, score", [(100, 0.5, 0.0), (3, 0.3, 0.4), (5, 0.7, 0.2), (0, 0.5, 0.0)])
def test_batched_nms_selects_what_onnx_selects(runner, max_out, iou, score):
    rng = np.random.default_rng(2)
    # Clustered boxes so suppression happens; distinct scores so the order is defined.
    centres = rng.uniform(0, 30, (3, 1, 2))
    xy = (centres + rng.normal(0, 2, (3, 12, 2))).reshape(2, 18, 2)
    b = np.concatenate([xy, xy + rng.uniform(4, 8, (2, 18, 2))], axis=-1).astype(np.float32)
    s = rng.permutation(2 * 3 * 18).reshape(2, 3, 18).astype(np.float32) / (2 * 3 * 18)
    # ONNX's default box layout is (y1, x1, y2, x2): IoU is symmetric in x and y, so the same numbers do.
    want = onnx_nms(runner, b, s, max_out, iou, score)
    got = boxes.batched_nms(b, s, iou, score, max_out)
    np.testing.assert_array_equal(got, want)
    assert max_out == 0 or len(got) > 0


def test_nms_keeps_the_best_of_a_cluster_and_suppresses_only_above_the_threshold():
    b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], float)
    s = np.array([0.5, 0.9, 0.3])
    np.testing.assert_array_equal(boxes.nms(b, s, 0.5), [1, 2])
    iou = boxes.iou_matrix(b[:1], b[1:2])[0, 0]
    np.testing.assert_array_equal(boxes.nms(b, s, float(iou)), [1, 0, 2])  # equal to the threshold: kept


def test_ssd300_has_its_published_8732_default_boxes():
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    small, large = [1, 2, 0.5], [1, 2, 0.5, 3, 1 / 3]
    ratios = [small, large, large, large, small, small]
    got = anchors.ssd_default_boxes(sizes, ratios)
    assert got.shape == (8732, 4)
    assert [anchors.ssd_boxes_per_cell(r) for r in ratios] == [4, 6, 6, 6, 4, 4]
    assert got.min() >= 0 and got.max() <= 1


def test_ssd_default_boxes_match_a_loop_over_the_paper():
    sizes, ratios = [(3, 2), (1, 1)], [[1, 2], [1, 0.5, 3]]
    scales = anchors.ssd_scales(2, 0.3, 0.8)
    assert scales == pytest.approx([0.3, 0.8, 1.3])
    want = []
    for k, ((h, w), rs) in enumerate(zip(sizes, ratios)):
        for i in range(h):
            for j in range(w):
                cx, cy = (j + 0.5) / w, (i + 0.5) / h
                whs = [(scales[k] * math.sqrt(a), scales[k] / math.sqrt(a)) for a in rs]
                whs.append((math.sqrt(scales[k] * scales[k + 1]),) * 2)
                want += [[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2] for bw, bh in whs]
    np.testing.assert_allclose(anchors.ssd_default_boxes(sizes, ratios, scales, clip=False), want, rtol=1e-12)


def test_rpn_anchors_have_the_papers_areas_and_ratios_at_each_cell():
    got = anchors.rpn_anchors((2, 3), 16)
    assert got.shape == (2 * 3 * 9, 4)
    w, h = got[:, 2] - got[:, 0], got[:, 3] - got[:, 1]
    np.testing.assert_allclose(w * h, np.tile(np.repeat([128.0 ** 2, 256.0 ** 2, 512.0 ** 2], 3), 6))
    np.testing.assert_allclose(h / w, np.tile([0.5, 1, 2], 18))
    centres = (got[:, :2] + got[:, 2:]) / 2
    np.testing.assert_allclose(centres[9 * 4], [8 + 16, 8 + 16])  # row 1, column 1
    with pytest.raises(ValueError, match="sizes"):
        anchors.rpn_anchors((2, 2), 16, sizes=(0,))
