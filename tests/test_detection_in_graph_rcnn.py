"""The R-CNN family with its post-processing inside the graph. Two oracles: the host path (``propose`` on the
RPN's outputs, the heads run on those proposals, decoding and per-image, per-class NMS in float64, written
here) gives the same proposals, boxes, scores and detections; and onnxruntime on the exported file selects
the same rows, with boxes within 1e-4.

The heads' output layers are scaled up so that scores differ between regions, and the test regions (and
Faster R-CNN's proposals, suppressed at IoU 0.3) cover distinct cells of the feature map: RoI max pooling
gives regions over the same cells equal features, hence equal scores, and NMS's choice between equal scores
is left open by ONNX (float32 rounding decides it).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import cnngraph
from cnngraph import models
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.detection.boxes import decode, nms
from cnngraph.detection.in_graph_rcnn import ProposalSettings, with_nms
from cnngraph.detection.proposals import propose
from cnngraph.detection.targets import RCNN_VARIANCES
from cnngraph.errors import GraphError
from cnngraph.frontends.onnx_import import from_model
from cnngraph.io import save
from cnngraph.models.faster_rcnn import anchors
from tests.onnx_models import onnxruntime_run
from tests.test_cli import run_cli

SIZE = 64
CLASSES = 3  # background and two objects
SIZES, RATIOS = (24, 40), (1, 2)
# 16 pixels drops about a third of these proposals (the clipped ones at the border)
# and NMS sees only the 30 best of 64 anchors
PROPOSALS = ProposalSettings(pre_nms=30, post_nms=20, iou_threshold=0.3, min_size=16, anchor_sizes=SIZES,
                             anchor_ratios=RATIOS)
NMS = dict(iou_threshold=0.2, score_threshold=0.25, max_per_class=100)
SPREAD = {"rpn.cls_logits.weight": 40, "rpn.bbox_pred.weight": 3, "cls_score.weight": 100, "bbox_pred.weight": 10}
BUILDS = {
    "faster_rcnn": dict(width=0.125, anchor_sizes=SIZES, anchor_ratios=RATIOS),
    "fast_rcnn": dict(width=0.125),
    "rcnn": dict(crop=67),
}


def build(name: str):
    graph = models.build(name, input_size=SIZE, num_classes=CLASSES, **BUILDS[name])
    for key, factor in SPREAD.items():
        if key in graph.params:
            graph.params[key] = graph.params[key] * factor
    return graph


def images(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, SIZE, SIZE)).astype(np.float32)


def regions(batch: int, seed: int = 0) -> np.ndarray:
    """(R, 5) boxes over distinct 16-pixel cell rectangles, jittered, overlapping, spread over the images."""
    rng = np.random.default_rng(seed)
    cells = [(x, y, w, h) for x in range(3) for y in range(3) for w in (1, 2) for h in (1, 2)
             if x + w <= 4 and y + h <= 4]
    picked = np.array(cells)[rng.choice(len(cells), 8, replace=False)] * 16.0
    corners = np.concatenate([picked[:, :2], picked[:, :2] + picked[:, 2:]], axis=1) + rng.uniform(-3, 3, (8, 4))
    return np.concatenate([np.arange(8)[:, None] % batch, np.clip(corners, 0, SIZE)], axis=1).astype(np.float32)


def host_detections(rois: np.ndarray, cls_score: np.ndarray, bbox_pred: np.ndarray) -> tuple:
    """(boxes (R, C, 4), scores (R, C), rows (image, class, region)) in float64, NMS per image and class."""
    deltas = bbox_pred.astype(np.float64).reshape(len(rois), CLASSES, 4)[:, 1:]
    boxes = decode(deltas, np.broadcast_to(rois[:, None, 1:].astype(np.float64), deltas.shape), RCNN_VARIANCES)
    boxes = np.clip(boxes, 0, SIZE)
    shifted = np.exp(cls_score - cls_score.max(axis=1, keepdims=True)).astype(np.float64)
    scores = (shifted / shifted.sum(axis=1, keepdims=True))[:, 1:]
    rows = []
    for image in np.unique(rois[:, 0]).astype(int):
        mine = np.nonzero(rois[:, 0] == image)[0]
        for c in range(CLASSES - 1):
            kept = mine[nms(boxes[mine, c], scores[mine, c], NMS["iou_threshold"], NMS["score_threshold"],
                            NMS["max_per_class"])]
            rows += [(image, c, r) for r in kept]
    return boxes, scores, np.array(rows, np.int64).reshape(-1, 3)


def host_path(graph, x: np.ndarray, rois: np.ndarray | None = None) -> dict:
    """Faster R-CNN: ``propose``; the others: the given regions. Then the heads on the regions and :func:`host_detections`."""
    model = cnngraph.compile(graph)
    if rois is None:
        grid = anchors(graph, SIZES, RATIOS)
        raw = model.run({"image": x, "rois": np.zeros((1, 5), np.float32)}, to_host=True)
        rois = propose(raw["rpn_logits"], raw["rpn_deltas"], grid, (SIZE, SIZE), pre_nms=PROPOSALS.pre_nms,
                       post_nms=PROPOSALS.post_nms, iou_threshold=PROPOSALS.iou_threshold,
                       min_size=PROPOSALS.min_size)
    head = model.run({"image": x, "rois": rois.astype(np.float32)}, to_host=True)
    boxes, scores, rows = host_detections(rois, head["cls_score"], head["bbox_pred"])
    return {"rois": rois, "boxes": boxes, "scores": scores, "selected": rows}


def by_row(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


@pytest.fixture(scope="module", params=sorted(BUILDS))
def detector(request):
    graph = build(request.param)
    return graph, with_nms(graph, proposals=PROPOSALS, **NMS)


def feeds(graph, batch: int, seed: int) -> dict:
    x = images(batch, seed)
    return {"image": x} if "rois" not in graph.inputs else {"image": x, "rois": regions(batch, seed)}


@pytest.mark.parametrize("batch", [1, 2])
def test_detections_are_the_host_paths(detector, batch):
    graph, in_graph = detector
    given = feeds(in_graph, batch, seed=batch)
    got = cnngraph.compile(in_graph).run(given, to_host=True)
    want = host_path(graph, given["image"], given.get("rois"))
    if "rois" in got:  # Faster R-CNN's proposals, in the same order
        assert len(got["rois"]) > 4 * batch and set(got["rois"][:, 0]) == set(range(batch))
        np.testing.assert_allclose(got["rois"], want["rois"], rtol=1e-5, atol=1e-4)
        assert (got["rois"][:, 3:] - got["rois"][:, 1:3]).min() >= PROPOSALS.min_size
    np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(by_row(got["selected"]), by_row(want["selected"]))
    above = int((want["scores"] > NMS["score_threshold"]).sum())
    assert 0 < len(want["selected"]) < above  # the threshold kept some, and NMS suppressed some of those


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_selects_the_same_rows(detector, batch):
    _, in_graph = detector
    given = feeds(in_graph, batch, seed=10 + batch)
    got = cnngraph.compile(in_graph).run(given, to_host=True)
    want = dict(zip(in_graph.outputs, onnxruntime_run(to_onnx(in_graph), given)))
    assert len(got["selected"]) > 0
    np.testing.assert_array_equal(got["selected"], want["selected"])
    for name in {"boxes", "rois"} & set(got):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)


def test_named_dims_reach_the_onnx_file_and_come_back():
    """The regions' count is the proposal NMS's, the detections' the final NMS's: dim_params in the file, and
    the imported file names them again and detects the same."""
    graph = with_nms(build("faster_rcnn"), proposals=PROPOSALS, **NMS)
    model = to_onnx(graph)
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert dims == {"boxes": ["selected_proposals", CLASSES - 1, 4], "scores": ["selected_proposals", CLASSES - 1],
                    "selected": ["selected_post_nms", 3], "rois": ["selected_proposals", 5]}
    assert [i.name for i in model.graph.input] == ["image"]
    back = from_model(model)
    assert {name: back.type_of(name).shape for name in back.outputs} == {k: tuple(v) for k, v in dims.items()}
    x = images(2, seed=4)
    got, want = (cnngraph.compile(g).run(x, to_host=True) for g in (back, graph))
    np.testing.assert_array_equal(got["selected"], want["selected"])
    np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-5, atol=1e-4)


def test_other_per_region_outputs_follow_the_in_graph_proposals():
    """What a mask head would be: an output computed on the regions stays, counted by the proposal NMS."""
    graph = build("faster_rcnn")
    graph.outputs.append("roi_pool")
    in_graph = with_nms(graph, proposals=PROPOSALS, **NMS)
    assert in_graph.outputs == ["boxes", "scores", "selected", "rois", "roi_pool"]
    assert in_graph.type_of("roi_pool").shape[0] == "selected_proposals"
    out = cnngraph.compile(in_graph).run(images(2), to_host=True)
    pooled = cnngraph.compile(graph).run({"image": images(2), "rois": out["rois"]}, to_host=True)["roi_pool"]
    np.testing.assert_array_equal(out["roi_pool"], pooled)


def test_only_the_rcnn_family_gets_it():
    with pytest.raises(GraphError, match="built for the R-CNN family"):
        with_nms(models.build("ssd_small", input_size=32))


def test_anchors_must_be_the_models():
    with pytest.raises(GraphError, match=r"scores 64 anchors, but anchor sizes \(128, 256, 512\) and ratios "
                                         r"\(0.5, 1.0, 2.0\) make 144"):
        with_nms(build("faster_rcnn"))


@pytest.mark.parametrize("name", ["faster_rcnn", "fast_rcnn"])
def test_export_nms_from_the_cli(tmp_path, capsys, name):
    code, out, err = run_cli(capsys, "export", name, "--width", "0.125", "--input-size", str(SIZE), "--num-classes",
                             str(CLASSES), "--nms", "-o", str(tmp_path / "detector.onnx"), "--verify")
    assert code == 0, err
    assert f"{name}_vgg16_nms" in out and "'selected' at batch 3: max abs 0.00e+00" in out


def test_export_takes_the_anchors_a_saved_model_was_built_with(tmp_path, capsys):
    """A model file does not record its anchor sizes: the count catches these, and the flags supply them."""
    path = tmp_path / "frcnn.cng"
    save(build("faster_rcnn"), path)
    code, _, err = run_cli(capsys, "export", str(path), "--nms", "-o", str(tmp_path / "a.onnx"))
    assert code != 0 and "scores 64 anchors, but anchor sizes (128, 256, 512)" in err and "--anchor-sizes" in err
    code, _, err = run_cli(capsys, "export", str(path), "--nms", "--anchor-sizes", "24", "40", "--anchor-ratios",
                           "1", "2", "-o", str(tmp_path / "b.onnx"))
    assert code == 0, err
    constant = next(n for n in onnx.load(tmp_path / "b.onnx").graph.node if n.output[0] == "proposals.anchors")
    np.testing.assert_array_equal(numpy_helper.to_array(constant.attribute[0].t),
                                  anchors(build("faster_rcnn"), SIZES, RATIOS).astype(np.float32))


def test_an_option_the_model_lacks_is_one_line(capsys):
    code, _, err = run_cli(capsys, "export", "lenet5", "--width", "0.5", "-o", "unused.onnx")
    assert code != 0 and "model 'lenet5' has no option width; it takes num_classes, input_size" in err
    assert "Traceback" not in err
