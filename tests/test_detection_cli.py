"""`cnngraph train ssd_small|yolo_v1_small --data digit-detection`, `cnngraph eval`, `cnngraph run --boxes`."""

import csv
from functools import partial

import numpy as np
import pytest
from PIL import Image

from cnngraph.cli import main
from cnngraph.train.data import detection_digits


@pytest.fixture
def few_canvases(monkeypatch):
    """The CLI's digit-detection set at 16 training and 8 test canvases, so a run takes seconds."""
    monkeypatch.setattr(detection_digits, "load", partial(detection_digits.load, n_train=16, n_test=8))


def cli(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One SSD run for the eval and run tests (the module's canvases are the fixture's small set)."""
    folder = tmp_path_factory.mktemp("ssd")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detection_digits, "load", partial(detection_digits.load, n_train=16, n_test=8))
        assert main(["train", "ssd_small", "--input-size", "32", "--data", "digit-detection", "--epochs", "2",
                     "--batch", "8", "--optimizer", "adam", "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_train_writes_metrics_and_a_model(trained):
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and 0 <= float(rows[-1]["test_map50"]) <= 1
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert (trained / "model.cng").is_file()


def test_train_yolo_from_the_cli(capsys, tmp_path, few_canvases, monkeypatch):
    code, out, err = cli(capsys, "train", "yolo_v1_small", "--input-size", "32", "--epochs", "1", "--batch", "8",
                         "--out", tmp_path / "yolo")
    assert code == 0, err
    assert "digit-detection (seed 0)" in out and "test mAP@0.5" in out
    monkeypatch.chdir(tmp_path)  # where run would write a segmentation mask
    canvas = detection_digits.load(size=(32, 32), n_train=1, n_test=1).test.images[0, 0]
    Image.fromarray((canvas * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    code, out, err = cli(capsys, "run", tmp_path / "yolo" / "model.cng", "--input", tmp_path / "photo.png",
                         "--boxes", tmp_path / "out.png", "--min-score", "0")
    assert code == 0 and (tmp_path / "out.png").exists(), err
    # YOLO's (N, S, S, C) classes are per cell, not a per-pixel segmentation: no mask file
    assert "wrote mask" not in out and not (tmp_path / "photo_mask.png").exists()


def test_eval_prints_per_class_ap_and_the_means(capsys, trained, few_canvases):
    code, out, err = cli(capsys, "eval", trained / "model.cng", "--data", "digit-detection")
    assert code == 0, err
    assert "AP@0.5 (VOC)" in out and "mean" in out and "mAP@0.5 " in out
    rows = [line.strip("│ ").split()[0] for line in out.splitlines() if line.startswith("│")]
    assert [r for r in rows if r.isdigit()] == [str(c) for c in range(10)]


def test_run_boxes_draws_on_a_photo(capsys, trained, tmp_path):
    canvas = detection_digits.load(size=(32, 32), n_train=1, n_test=1).test.images[0, 0]
    Image.fromarray((canvas * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    code, out, err = cli(capsys, "run", trained / "model.cng", "--input", tmp_path / "photo.png",
                         "--boxes", tmp_path / "out.png")
    assert code == 0, err
    with Image.open(tmp_path / "out.png") as picture:
        assert picture.size == (256, 256) and picture.mode == "RGB"
    assert "boxes scoring above 0.3" in out
    assert "weights: trained (digit-detection)" in out and "random" not in out  # the model.cng says what it is
    assert "sample 0: top" not in out  # the per-box and constant outputs are not classifier rows


def test_boxes_on_a_classifier_and_detection_data_for_a_classifier_are_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "lenet5", "--boxes", tmp_path / "x.png")
    assert code == 1 and "not a detector" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "eval", "lenet5")
    assert code == 1 and "not a detector" in err and len(err.strip().splitlines()) == 1


def test_a_detector_with_too_few_classes_for_the_data_is_one_line(capsys, few_canvases):
    code, _, err = cli(capsys, "train", "ssd_small", "--num-classes", "3", "--input-size", "32")
    assert code == 1 and "scores 3 classes, the data has 10" in err and "--num-classes 10" in err


def test_train_takes_the_models_defaults_where_options_are_left_out(capsys, tmp_path, few_canvases, monkeypatch):
    from cnngraph.train.detection_defaults import DEFAULTS, Defaults, detection_defaults
    from cnngraph.train.detection_train import DetectionTrainer

    seen = {}

    def fit(self, time_budget=None):  # the settings the run would train with, without training
        seen["config"], seen["augment"] = self.config, self.augment
        self.history = [{"test_map50": 0.0, "test_coco_map": 0.0}]
        return self.history

    monkeypatch.setattr(DetectionTrainer, "fit", fit)
    code, _, err = cli(capsys, "train", "ssd_small", "--input-size", "32", "--lr", "0.01", "--flip", "--out", tmp_path)
    assert code == 0, err
    recipe = DEFAULTS["ssd_small"]
    assert seen["config"].lr == 0.01 and seen["config"].optimizer == recipe.config["optimizer"] == "adam"
    assert seen["config"].warmup == recipe.config["warmup"] and seen["config"].data == "digit-detection"
    assert seen["augment"].scale == recipe.augment.scale and seen["augment"].flip
    assert detection_defaults("ssd") == Defaults()  # SSD300 keeps TrainConfig's defaults: these are ssd_small's


def test_mask_rcnn_trains_evaluates_and_draws_from_the_cli(capsys, tmp_path, few_canvases):
    """Five losses per step (the mask term from the canvases' instance masks), mask mAP beside box mAP after
    each epoch and in eval, and run --boxes through the mask branch."""
    run = tmp_path / "mask"
    code, out, err = cli(capsys, "train", "mask_rcnn_small", "--epochs", "1", "--out", run)
    assert code == 0, err
    assert ", mask " in out and "COCO mask mAP" in out
    header, row = (run / "metrics.csv").read_text().splitlines()[:2]
    fields = dict(zip(header.split(","), row.split(",")))
    assert {"rpn_classification", "rpn_box", "classification", "box", "mask", "test_mask_map"} <= set(fields)
    assert float(fields["mask"]) > 0 and 0 <= float(fields["test_mask_map"]) <= 1
    code, out, err = cli(capsys, "eval", run / "model.cng", "--data", "digit-detection")
    assert code == 0 and "COCO mask mAP@[.5:.95]" in out, err
    code, out, err = cli(capsys, "run", run / "model.cng", "--boxes", tmp_path / "boxes.png", "--min-score", "0")
    assert code == 0 and (tmp_path / "boxes.png").exists(), err
