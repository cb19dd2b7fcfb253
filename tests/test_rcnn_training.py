"""Training the R-CNN family through its recipes: region sampling, every loss falling on the recipe's own
targets, detections decoded by hand-worked examples, and `cnngraph train/eval/run --boxes` on a small run."""

import csv
import numpy as np
import pytest
from PIL import Image

import cnngraph
from cnngraph import models
from cnngraph.detection.boxes import encode, iou_matrix
from cnngraph.detection.predict import Postprocess
from cnngraph.detection.regions import jittered, sample, sampled_labels, sliding_windows
from cnngraph.detection.targets import IGNORE, RCNN_VARIANCES
from cnngraph.errors import CnnGraphError
from cnngraph.train import TrainConfig
from cnngraph.train.data import detection_digits
from cnngraph.train.detection_recipes import FasterRcnn, Regions, RegionSettings, recipe_for
from cnngraph.train.detection_train import DetectionTrainer
from cnngraph.train.optim import Adam
from tests.test_detection_cli import cli, few_canvases  # noqa: F401 - a fixture


def digit_canvases(train: int = 8, test: int = 4, size: int = 64):
    data = detection_digits.load(size=(size, size), n_train=train, n_test=test)
    data.train.images, data.test.images = (np.repeat(d.images, 3, axis=1) for d in (data.train, data.test))
    return data


def test_sampling_keeps_the_foreground_fraction_and_never_an_ignored_row():
    rng = np.random.default_rng(0)
    labels = np.array([3] * 40 + [0] * 100 + [IGNORE] * 30)
    chosen = sample(labels, 64, 0.25, rng)
    assert len(chosen) == 64 and len(set(chosen)) == 64
    assert (labels[chosen] > 0).sum() == 16 and (labels[chosen] == 0).sum() == 48
    few = np.array([1, 0, 0, IGNORE])  # fewer objects than the fraction allows: the rest is background
    np.testing.assert_array_equal(sample(few, 8, 0.5, rng), [0, 1, 2])
    kept = sampled_labels(labels, 20, 0.5, rng)
    assert (kept != IGNORE).sum() == 20 and (kept > 0).sum() == 10 and set(kept[kept != IGNORE]) <= {0, 3}


def test_sliding_windows_cover_the_image_at_every_size_and_jitter_stays_near_the_truth():
    windows = sliding_windows((64, 64), (16, 32), 16)
    assert windows.shape == (4 * 4 * 2, 4) and windows.min() >= 0 and windows.max() <= 64
    np.testing.assert_allclose(windows[0], [0, 0, 16, 16])  # the first cell's small window, at (8, 8)
    truth = np.array([[10.0, 20, 30, 44]])
    copies = jittered(truth, 50, 0.1, (64, 64), np.random.default_rng(0))
    assert len(copies) == 50 and iou_matrix(copies, truth).min() > 0.3 and iou_matrix(copies, truth).mean() > 0.6


def test_recipes_are_chosen_from_the_outputs():
    assert type(recipe_for(models.build("fast_rcnn_small"))) is Regions
    assert type(recipe_for(models.build("rcnn_small"))) is Regions
    faster = recipe_for(models.build("faster_rcnn_small"))
    assert type(faster) is FasterRcnn and faster.class_count == 10
    assert faster.anchors.shape == (models.build("faster_rcnn_small").type_of("rpn_logits").shape[2], 4)
    with pytest.raises(CnnGraphError, match="not a detector: .* outputs .*; fast_rcnn: bbox_pred, cls_score; "
                                            "faster_rcnn: bbox_pred, cls_score, rpn_deltas, rpn_logits"):
        recipe_for(models.build("lenet5"))


def test_region_detections_decode_class_specific_boxes_by_hand():
    """Two regions of one image: the first scores class 2 (data label 1) and regresses onto a known box,
    the second is background; decoding gives exactly that box, label and softmax score."""
    recipe = recipe_for(models.build("fast_rcnn_small"))
    rois = np.array([[0, 8, 8, 40, 40], [0, 30, 30, 60, 60]], np.float32)
    truth = np.array([10.0, 6, 36, 44])
    scores = np.full((2, 11), -5.0)
    scores[0, 2], scores[1, 0] = 5.0, 5.0
    deltas = np.zeros((2, 11, 4))
    deltas[0, 2] = encode(truth[None], rois[:1, 1:].astype(float), RCNN_VARIANCES)[0]
    outputs = {"cls_score": scores, "bbox_pred": deltas.reshape(2, 44)}
    (boxes, found_scores, labels), = recipe.decode(outputs, {"image": np.zeros((1, 3, 64, 64)), "rois": rois},
                                                   Postprocess(score_threshold=0.5))
    np.testing.assert_allclose(boxes, [truth], atol=1e-4)
    np.testing.assert_array_equal(labels, [1])
    assert found_scores[0] == pytest.approx(np.exp(5) / (np.exp(5) + 10 * np.exp(-5)))


@pytest.mark.parametrize("name, steps", [("fast_rcnn_small", 10), ("faster_rcnn_small", 20), ("rcnn_small", 5)])
def test_every_loss_falls_on_the_recipes_targets(name, steps):
    """Two digit canvases, their regions and targets drawn once by the recipe (sampled regions, the RPN's
    proposals and sampled anchors), then steps of Adam on them: every term of the loss falls by 5% at least
    (mean of the last three steps against the first three)."""
    data = digit_canvases(train=2)
    settings = RegionSettings(rois_per_image=8) if name == "rcnn_small" else None  # a whole AlexNet per region
    trainer = DetectionTrainer(models.build(name), data, TrainConfig(epochs=1, batch=2), settings=settings)
    x, truths = next(trainer.batches())
    feeds, goal = trainer.recipe.step(trainer.model, x, truths, trainer.rng)
    labels = goal["rcnn"]["labels"] if "rcnn" in goal else goal["labels"]
    assert (labels > 0).sum() >= len(x) and (labels == 0).sum() >= len(x)  # both kinds in every batch
    optimizer, history = Adam(lr=3e-4), []
    for _ in range(steps):
        trainer.model.train_step(feeds, goal, trainer.loss, optimizer)
        history.append(dict(trainer.loss.last))
    expected = {"classification", "box"} | ({"rpn_classification", "rpn_box"} if "rpn" in goal else set())
    assert set(history[0]) == expected
    for term in expected:
        first, last = (np.mean([h[term] for h in part]) for part in (history[:3], history[-3:]))
        assert last < 0.95 * first, (term, [round(h[term], 4) for h in history])


def test_detections_of_a_trained_faster_rcnn_have_the_evaluate_format():
    data = digit_canvases(train=8, test=3)
    trainer = DetectionTrainer(models.build("faster_rcnn_small"), data,
                               TrainConfig(epochs=1, batch=4, optimizer="adam", lr=1e-3))
    history = trainer.fit()
    assert {"rpn_classification", "rpn_box", "classification", "box"} <= set(history[0])
    model = cnngraph.compile(trainer.trained_graph())
    found = trainer.recipe.detect(model, data.test.images, Postprocess(score_threshold=0.0, max_detections=20))
    assert len(found) == 3
    for boxes, scores, labels in found:
        assert boxes.shape == (len(scores), 4) and labels.shape == scores.shape and 0 < len(scores) <= 20
        assert boxes.min() >= 0 and boxes.max() <= 64 and (boxes[:, 2:] >= boxes[:, :2]).all()
        assert set(labels) <= set(range(10)) and (np.diff(scores) <= 0).all()


def test_train_eval_and_draw_a_fast_rcnn_from_the_cli(capsys, tmp_path, few_canvases):
    run = tmp_path / "run"
    code, out, err = cli(capsys, "train", "fast_rcnn_small", "--epochs", "1", "--batch", "8", "--optimizer", "adam",
                         "--out", run)
    assert code == 0, err
    assert "classification" in out and "test mAP@0.5" in out
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1"] and {"classification", "box"} <= set(rows[0])
    assert (run / "checkpoint.safetensors").is_file() and (run / "model.cng").is_file()
    code, out, err = cli(capsys, "eval", run / "model.cng", "--data", "digit-detection")
    assert code == 0, err
    assert "AP@0.5 (VOC)" in out and "mAP@0.5 " in out
    canvas = detection_digits.load(size=(64, 64), n_train=1, n_test=1).test.images[0, 0]
    Image.fromarray((canvas * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    code, out, err = cli(capsys, "run", run / "model.cng", "--input", tmp_path / "photo.png", "--boxes",
                         tmp_path / "out.png", "--min-score", "0")
    assert code == 0, err
    assert "output 'cls_score': shape (512, 11)" in out  # the sliding windows of one image
    with Image.open(tmp_path / "out.png") as picture:
        assert picture.size == (256, 256)
    assert "boxes scoring above 0 on the first image" in out


def test_a_two_stage_detector_with_too_few_classes_says_how_many_it_needs(capsys, few_canvases):
    code, _, err = cli(capsys, "train", "fast_rcnn_small", "--num-classes", "5")
    assert code == 1 and "scores 4 classes, the data has 10" in err and "--num-classes 11" in err
    assert len(err.strip().splitlines()) == 1
