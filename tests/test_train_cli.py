"""`cnngraph train`: a run folder from a tiny model and dataset, --resume, fine-tuning a .cng, backends and
float16, one-line errors."""

import csv

import numpy as np
import pytest

from cnngraph.backends.devices import get_backend
from cnngraph.cli import main
from cnngraph.train import checkpoint

MODEL = '''
from cnngraph.frontends import dsl

def tiny(num_classes=3):
    x = dsl.input("image", (1, 8, 8))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 4, 3, padding=1, bias=False, name="conv"), name="bn"))
    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.max_pool2d(y, 2)), num_classes, name="fc"), name="tiny")
'''


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    x = rng.integers(0, 80, (40, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c:2 * c + 2] = 255  # class c: bright rows 2c, 2c+1
    np.savez(tmp_path / "three.npz", x=x[y < 3], y=y[y < 3])
    np.savez(tmp_path / "four.npz", x=x, y=y)
    (tmp_path / "net.py").write_text(MODEL)
    return tmp_path


def train(capsys, *argv):
    code = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def rows(rundir):
    with open(rundir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_a_run_folder_and_resume_extends_it(files, capsys):
    run = files / "run"
    code, out, err = train(capsys, f"{files}/net.py:tiny", "--data", files / "three.npz", "--epochs", 1,
                           "--batch", 8, "--out", run)
    assert code == 0, err
    assert "test accuracy" in out and "epoch 1/1" in out
    assert {p.name for p in run.iterdir()} == {"checkpoint.safetensors", "metrics.csv", "curves.png", "model.cng"}
    assert [r["epoch"] for r in rows(run)] == ["1"]
    config = checkpoint.load(run / "checkpoint.safetensors").state["config"]
    assert (config["batch"], config["epochs"], config["data"], config["optimizer"]) == (8, 1, str(files / "three.npz"), "sgd")
    code, out, err = train(capsys, "--resume", run, "--epochs", 2)
    assert code == 0, err
    assert "resuming" in out and [r["epoch"] for r in rows(run)] == ["1", "2"]


def test_resume_refuses_options_that_differ_and_lists_them(files, capsys):
    run = files / "run"
    assert train(capsys, f"{files}/net.py:tiny", "--data", files / "three.npz", "--epochs", 1, "--batch", 8,
                 "--out", run)[0] == 0
    code, _, err = train(capsys, "--resume", run, "--epochs", 2, "--batch", 16, "--lr", 0.1, "--flip",
                         "--out", files / "other")
    assert code == 1 and err.count("\n") == 1
    assert ("these options differ: --batch 16 (saved: 8), --lr 0.1 (saved: None), --flip True (saved: False), "
            "--out. Drop them") in err
    assert [r["epoch"] for r in rows(run)] == ["1"]  # nothing trained
    code, out, err = train(capsys, "--resume", run, "--epochs", 2, "--batch", 8)  # the saved value is no change
    assert code == 0, err
    assert [r["epoch"] for r in rows(run)] == ["1", "2"]


def test_backend_dtype_clipping_and_prefetch_are_saved_and_resume_keeps_them(files, capsys):
    run = files / "run"
    code, _, err = train(capsys, f"{files}/net.py:tiny", "--data", files / "three.npz", "--epochs", 1, "--batch", 8,
                         "--backend", "strict", "--dtype", "float16", "--clip-grad-norm", 2, "--prefetch", 2,
                         "--out", run)
    assert code == 0, err
    state = checkpoint.load(run / "checkpoint.safetensors").state
    config = state["config"]
    assert (config["backend"], config["dtype"], config["clip_grad_norm"], config["prefetch"]) == ("strict", "float16", 2.0, 2)
    assert state["scaler"]["scale"] > 0  # float16 trains with a loss scale, saved for --resume
    code, out, err = train(capsys, "--resume", run, "--epochs", 2)
    assert code == 0, err
    assert [r["epoch"] for r in rows(run)] == ["1", "2"]
    assert checkpoint.load(run / "checkpoint.safetensors").state["config"]["backend"] == "strict"


def test_fine_tune_a_trained_model_with_a_new_head_and_frozen_features(files, capsys):
    first = files / "first"
    assert train(capsys, f"{files}/net.py:tiny", "--data", files / "three.npz", "--epochs", 1, "--out", first)[0] == 0
    code, _, err = train(capsys, first / "model.cng", "--num-classes", 4, "--data", files / "four.npz",
                           "--freeze-upto", "bn", "--epochs", 1, "--out", files / "second")
    assert code == 0, err
    assert 0.0 <= float(rows(files / "second")[0]["test_acc"]) <= 1.0


@pytest.mark.parametrize("argv,message", [
    (["--resume", "{tmp}/nowhere"], "nowhere/checkpoint.safetensors: no such file"),
    ([], "give MODEL to train, or --resume RUNDIR"),
    (["{tmp}/net.py:tiny", "--resume", "{tmp}/x"], "give RUNDIR only, not MODEL"),
    (["{tmp}/net.py:tiny", "--data", "{tmp}/missing"], "--data {tmp}/missing: no such file or folder"),
    (["{tmp}/net.py:tiny", "--data", "{tmp}/four.npz"], "has 4 classes: pass --num-classes 4"),
    (["{tmp}/net.py:tiny", "--data", "{tmp}/three.npz", "--optimizer", "adam", "--momentum", "0.5"],
     "optimizer adam takes no momentum"),
    (["{tmp}/net.py:tiny", "--data", "{tmp}/three.npz", "--freeze-upto", "cnv"], "no layer named 'cnv' in tiny; did you mean conv?"),
    pytest.param(["{tmp}/net.py:tiny", "--data", "{tmp}/three.npz", "--backend", "cupy"], "backend 'cupy' cannot run here",
                 marks=pytest.mark.skipif(get_backend("cupy").unavailable() is None, reason="cupy runs here")),
])
def test_errors_are_one_line(files, capsys, argv, message):
    code, _, err = train(capsys, *[a.format(tmp=files) for a in argv], "--out", files / "out")
    assert code == 1 and err.count("\n") == 1 and message.format(tmp=files) in err


def test_out_folder_holding_a_run_is_not_overwritten(files, capsys):
    args = (f"{files}/net.py:tiny", "--data", files / "three.npz", "--epochs", 1, "--out", files / "run")
    assert train(capsys, *args)[0] == 0
    code, _, err = train(capsys, *args)
    assert code == 1 and "already holds a run: continue it with --resume" in err


def test_out_naming_a_file_is_one_typed_line(files, capsys):
    (files / "taken").write_text("not a folder")
    code, _, err = train(capsys, f"{files}/net.py:tiny", "--data", files / "three.npz", "--out", files / "taken")
    assert code == 1 and err.count("\n") == 1 and "is a file; a run needs a folder" in err


def test_bad_numbers_are_argparse_errors(files, capsys):
    with pytest.raises(SystemExit) as e:
        train(capsys, "lenet5", "--crop", "-1")
    assert e.value.code == 2 and "must be a number >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        train(capsys, "lenet5", "--clip-grad-norm", "0")
    assert e.value.code == 2 and "must be a number > 0, got 0" in capsys.readouterr().err
