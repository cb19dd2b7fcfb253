"""Detection runs checkpoint every epoch and resume exactly: N epochs straight equal K epochs, a stop and a
resume to N (parameters and metrics.csv, bar the wall-clock column), for a two-stage model with dropout in
Python and a one-stage one from the CLI; foreign or edited checkpoints and changed options are refused."""

import csv
import json
from functools import partial

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import cnngraph
from cnngraph import models
from cnngraph.cli import main
from cnngraph.errors import TrainingError
from cnngraph.train import TrainConfig
from cnngraph.train.data import detection_digits
from cnngraph.train.data.detection_augment import BoxAugment
from cnngraph.train.detection_recipes import RegionSettings
from cnngraph.train.detection_train import DetectionTrainer
from tests.test_detection_cli import few_canvases  # noqa: F401 - a fixture
from tests.test_rcnn_training import digit_canvases


def metrics(run) -> list[dict]:
    """metrics.csv without its wall-clock column, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((run / "metrics.csv").open())]


def assert_same_model(a, b) -> None:
    first, second = cnngraph.io.load(a / "model.cng"), cnngraph.io.load(b / "model.cng")
    assert first.params.keys() == second.params.keys()
    for key in first.params:
        np.testing.assert_array_equal(first.params[key], second.params[key], err_msg=key)


def test_a_stopped_and_resumed_fast_rcnn_equals_the_straight_run(tmp_path):
    """Dropout 0.5 in fc6/fc7 and a cosine schedule over 3 epochs: stopping after the first (the time budget
    runs out) and resuming replays the same batches, regions, dropout masks and updates. The run's zoom and
    region sampling are not the defaults: the resumed trainer takes them from the checkpoint."""
    data = digit_canvases(train=4, test=2)
    graph = models.build("fast_rcnn", width=0.125, input_size=64, num_classes=11, dropout=0.5, seed=3)
    config = TrainConfig(epochs=3, batch=2, optimizer="adam", lr=1e-3, seed=5)
    run = partial(DetectionTrainer, graph, data, config, augment=BoxAugment(scale=(0.9, 1.1)),
                  settings=RegionSettings(rois_per_image=24, foreground=0.4))
    run(tmp_path / "straight").fit()
    run(tmp_path / "stopped").fit(time_budget=0)
    assert len(metrics(tmp_path / "stopped")) == 1
    resumed = DetectionTrainer.resume(tmp_path / "stopped", splits=data)
    assert (resumed.epoch, resumed.step) == (1, 2)
    assert resumed.augment.scale == (0.9, 1.1) and resumed.recipe.settings.rois_per_image == 24
    resumed.fit()
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "stopped")
    assert_same_model(tmp_path / "straight", tmp_path / "stopped")


def train(*argv) -> int:
    return main(["train", *map(str, argv)])


def test_cli_resume_of_a_faster_rcnn_equals_the_straight_run(tmp_path, few_canvases, capsys):
    """Two epochs straight against one epoch, then --resume --epochs 2 (constant learning rate, so extending
    the run does not re-plan it); the RPN's proposals are drawn from the model at every step of both."""
    common = ["--batch", "8", "--optimizer", "adam", "--schedule", "constant", "--seed", "1"]
    assert train("faster_rcnn_small", "--epochs", "2", *common, "--out", tmp_path / "straight") == 0
    assert train("faster_rcnn_small", "--epochs", "1", *common, "--out", tmp_path / "resumed") == 0
    assert train("--resume", tmp_path / "resumed", "--epochs", "2") == 0
    assert f"resuming {tmp_path / 'resumed'} at epoch 2, step 2" in capsys.readouterr().out
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "resumed")
    assert_same_model(tmp_path / "straight", tmp_path / "resumed")


@pytest.fixture(scope="module")
def ssd_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ssd") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detection_digits, "load", partial(detection_digits.load, n_train=8, n_test=4))
        assert train("ssd_small", "--input-size", "32", "--epochs", "1", "--batch", "8", "--out", run) == 0
    return run


def one_line_error(capsys, *argv) -> str:
    assert train(*argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_resume_refuses_changed_options_and_a_new_run_in_a_used_folder(capsys, ssd_run, few_canvases):
    err = one_line_error(capsys, "--resume", ssd_run, "--batch", "4", "--lr", "0.5")
    assert "--batch 4 (saved: 8)" in err and "--lr 0.5 (saved: 0.003)" in err
    err = one_line_error(capsys, "ssd_small", "--input-size", "32", "--out", ssd_run)
    assert f"--resume {ssd_run}" in err


def edited(run, tmp_path, change) -> str:
    """A copy of the run whose checkpoint state went through ``change``."""
    target = tmp_path / "edited"
    target.mkdir()
    path = run / "checkpoint.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "numpy") as f:
        meta = f.metadata()
    state = json.loads(meta["state"])
    change(state)
    save_file(load_file(str(path)), str(target / "checkpoint.safetensors"),
              metadata={**meta, "state": json.dumps(state)})
    return target


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(rng={"bit_generator": "MT19937"}), "field 'rng' must be a PCG64 generator state"),
    (lambda s: s.update(recipe="faster_rcnn"), "field 'recipe' must be 'ssd'"),
    (lambda s: s.update(history=[]), "field 'history' must be a list of 1 per-epoch objects"),
    (lambda s: s["dropout"].pop("draws"), "field 'dropout.draws' is missing"),
    (lambda s: s.pop("kind"), "not a detection run's checkpoint"),
    (lambda s: s["augment"].update(scale="big"),
     r"field 'augment.scale' must be like BoxAugment's default \(1.0, 1.0\)"),
    (lambda s: s["regions"].update(windows=3), "field 'regions.windows' is not one of RegionSettings's fields"),
    (lambda s: s["regions"].update(rois_per_image=-2), "field 'regions.rois_per_image' must be like"),
])
def test_an_edited_checkpoint_is_refused_naming_the_field(ssd_run, tmp_path, few_canvases, change, message):
    with pytest.raises(TrainingError, match=message):
        DetectionTrainer.resume(edited(ssd_run, tmp_path, change))


def test_a_classifier_and_a_detector_refuse_each_others_checkpoints(capsys, ssd_run, tmp_path):
    from cnngraph.train import Trainer

    with pytest.raises(TrainingError, match="a detection run's checkpoint"):
        Trainer.resume(ssd_run)
    classifier = tmp_path / "lenet"
    assert train("lenet5", "--epochs", "1", "--out", classifier) == 0
    with pytest.raises(TrainingError, match="not a detection run's checkpoint"):
        DetectionTrainer.resume(classifier)
