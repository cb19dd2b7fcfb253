"""VOC and COCO mAP against pycocotools (COCO) and hand-worked rankings (VOC's all-point and 11-point AP)."""

import contextlib
import io

import numpy as np
import pytest

from cnngraph.detection.evaluate import coco_map, voc_ap, voc_map


def scene(seed: int, images: int = 12, classes: int = 3, crowd: bool = True):
    """Truths and detections that hit, miss, duplicate and mislocate them at varied IoUs and scores."""
    rng = np.random.default_rng(seed)
    truths, detections = [], []
    for _ in range(images):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 80, (m, 2))
        gt = np.concatenate([xy, xy + rng.uniform(4, 40, (m, 2))], axis=1)
        labels = rng.integers(0, classes, m)
        ignore = (rng.random(m) < 0.15) if crowd else np.zeros(m, bool)
        truths.append((gt, labels, ignore))
        keep = rng.random(m) < 0.8
        size = np.tile(gt[:, 2:] - gt[:, :2], 2)
        jitter = gt[keep] + rng.normal(0, 0.06, (keep.sum(), 4)) * size[keep]
        dup = gt[:2] + rng.normal(0, 0.2, (min(m, 2), 4)) * size[:2]
        fxy = rng.uniform(0, 80, (int(rng.integers(0, 4)), 2))
        false = np.concatenate([fxy, fxy + rng.uniform(4, 40, fxy.shape)], axis=1)
        boxes = np.concatenate([jitter, dup, false])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels_d = np.concatenate([labels[keep], labels[:2], rng.integers(0, classes, len(false))])
        flip = rng.random(len(labels_d)) < 0.1  # some right boxes with the wrong class
        labels_d = np.where(flip, (labels_d + 1) % classes, labels_d)
        scores = np.concatenate([rng.uniform(0.4, 1, len(jitter)), rng.uniform(0, 0.8, len(dup)),
                                 rng.uniform(0, 0.6, len(false))])
        detections.append((boxes, scores, labels_d))
    return detections, truths


def pycocotools_stats(detections, truths, classes: int):
    """COCOeval's summary (AP@[.5:.95], AP@.5, ...) and per-class AP@[.5:.95] on the same data."""
    coco_mod = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    images, annotations, results = [], [], []
    for i, ((gt, labels, ignore), (boxes, scores, dlabels)) in enumerate(zip(truths, detections), start=1):
        images.append({"id": i, "width": 200, "height": 200})
        for b, y, crowd in zip(gt, labels, ignore):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(y) + 1,
                                "bbox": [float(b[0]), float(b[1]), float(w), float(h)], "area": float(w * h),
                                "iscrowd": int(crowd)})
        for b, s, y in zip(boxes, scores, dlabels):
            results.append({"image_id": i, "category_id": int(y) + 1, "score": float(s),
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    gt = coco_mod.COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = cocoeval.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, 2]  # (T, R, K) at area "all", 100 detections
    per_class = np.array([precision[:, :, k][precision[:, :, k] > -1].mean() if (precision[:, :, k] > -1).any()
                          else np.nan for k in range(classes)])
    return ev.stats, per_class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_equals_pycocotools(seed):
    detections, truths = scene(seed)
    stats, per_class = pycocotools_stats(detections, truths, 3)
    ours = coco_map(detections, truths, 3)
    assert ours.mean == pytest.approx(stats[0], abs=1e-12)
    np.testing.assert_allclose(ours.per_class, per_class, atol=1e-12)
    assert coco_map(detections, truths, 3, thresholds=[0.5]).mean == pytest.approx(stats[1], abs=1e-12)
    assert coco_map(detections, truths, 3, thresholds=[0.75]).mean == pytest.approx(stats[2], abs=1e-12)
    assert 0.2 < stats[0] < 0.9  # the scene is neither trivial nor hopeless, so agreement means something


def test_coco_map_caps_detections_per_image_like_pycocotools():
    detections, truths = scene(3, crowd=False)
    crowded = [(np.repeat(b, 40, axis=0), np.tile(s, 40) * np.repeat(np.linspace(1, 0.5, 40), len(s)),
                np.tile(y, 40)) for b, s, y in detections]
    stats, _ = pycocotools_stats(crowded, truths, 3)
    assert coco_map(crowded, truths, 3).mean == pytest.approx(stats[0], abs=1e-12)


def test_voc_ap_by_hand():
    # Ranked hits T F T F, 3 positives: recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2.
    recall = np.array([1, 1, 2, 2]) / 3
    precision = np.array([1, 1 / 2, 2 / 3, 1 / 2])
    assert voc_ap(recall, precision) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    # 11 points: t = 0, .1, .2, .3 -> 1; t = .4, .5, .6 -> 2/3; t >= .7 -> 0.
    assert voc_ap(recall, precision, eleven_point=True) == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)


def test_voc_map_counts_duplicates_and_ignores_difficult():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50.]])
    truths = [(gt, np.array([0, 0, 0]), np.array([False, False, True]))]
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [40, 40, 50, 50], [60, 60, 70, 70], [20, 21, 30, 30.]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    # hits by score: TP, FP (duplicate), ignored (difficult), FP, TP -> precision 1, 1/2, 1/3, 2/4 at recall 1/2, 1/2, 1/2, 1
    result = voc_map([(boxes, scores, np.zeros(5, int))], truths, num_classes=2)
    assert result.per_class[0] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    assert np.isnan(result.per_class[1]) and result.mean == pytest.approx(0.75)
    # IoU must exceed 0.5: a box with IoU exactly 0.5 ([0, 0, 10, 5] on [0, 0, 10, 10]) misses.
    half = voc_map([(np.array([[0, 0, 10, 5.]]), np.array([1.0]), np.array([0]))], [(gt[:1], [0], [False])], 1)
    assert half.mean == 0.0


def test_mismatched_image_counts_are_refused():
    with pytest.raises(ValueError, match="2 images of detections for 1"):
        coco_map([(np.zeros((0, 4)), np.zeros(0), np.zeros(0))] * 2, [(np.zeros((0, 4)), [], [])], 1)


def test_a_class_without_detections_scores_zero_like_pycocotools():
    detections, truths = scene(4, crowd=False)
    detections = [(b[y != 1], s[y != 1], y[y != 1]) for b, s, y in detections]
    stats, per_class = pycocotools_stats(detections, truths, 3)
    ours = coco_map(detections, truths, 3)
    assert ours.per_class[1] == per_class[1] == 0.0 and ours.mean == pytest.approx(stats[0], abs=1e-12)
    assert voc_map(detections, truths, 3).per_class[1] == 0.0
