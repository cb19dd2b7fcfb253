"""`cnngraph bench` and `cnngraph profile`: what they measure and print, not how fast anything is."""

import json
import time

import numpy as np
import pytest

from cnngraph import models
from cnngraph.cli import main
from cnngraph.profile import profile, profile_training


def run_json(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_profile_layer_times_add_up_to_the_whole_run():
    result = profile(models.build("resnet18", input_size=64), batch=2, repeat=3)
    assert abs(result.layer_seconds - result.run_seconds) <= 0.1 * result.run_seconds
    assert [layer.name for layer in result.layers][:2] == ["conv1", "maxpool"]  # the optimised graph's nodes
    assert sum(op["count"] for op in result.ops.values()) == len(result.layers)
    assert sum(k["count"] for k in result.kernels.values()) == len(result.layers)
    # the 13 stride-1 3x3 convolutions ran the Winograd kernel, the 7x7 stem, stride-2 and 1x1 ones the
    # direct GEMM; at batch 2 the 4x4 and 2x2 maps of layer3 and layer4 (8 and 2 tile columns) went direct
    count = {key: entry["count"] for key, entry in result.kernels.items()}
    assert sum(n for key, n in count.items() if key.split(" ")[1] == "numpy/winograd") == 13
    assert sum(n for key, n in count.items() if "(direct at batch 2" in key) == 6
    assert sum(n for key, n in count.items() if key.endswith("Conv2d generic")) == 7
    assert result.planned_bytes > 0 and result.unplanned_bytes >= result.planned_bytes


def test_profile_json(capsys):
    result = run_json(capsys, "profile", "lenet5", "--repeat", "2", "--batch", "3")
    assert {"model", "backend", "dtype", "batch", "run_seconds", "layer_seconds", "layers", "ops", "planned_bytes",
            "unplanned_bytes"} <= set(result)
    convs = [layer for layer in result["layers"] if layer["op"] == "FusedConv2d"]
    assert len(convs) == 3 and all(layer["gflops"] > 0 and layer["macs"] > 0 for layer in convs)
    assert next(layer for layer in result["layers"] if layer["op"] == "Flatten")["gflops"] is None
    assert result["ops"]["FusedConv2d"]["count"] == 3


def test_profile_table(capsys):
    assert main(["profile", "lenet5", "--repeat", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "per op class" in out and "per op class and kernel" in out and "memory plan peak at batch 1" in out and "FusedConv2d" in out


def test_training_profile_times_forward_and_backward_of_every_layer():
    result = profile_training(models.build("resnet18", input_size=32), batch=2, repeat=2)
    # the watch hooks time back-to-back intervals: only the gradient seeding falls outside layers and optimizer
    assert 0.9 * result.step_seconds <= result.layer_seconds + result.optimizer_seconds <= result.step_seconds
    trained = [layer for layer in result.layers if layer.op in ("Conv2d", "BatchNorm2d", "Linear")]
    assert len(trained) == 20 + 20 + 1 and all(layer.backward_seconds > 0 for layer in trained)
    assert all(layer.forward_seconds > 0 for layer in result.layers)
    assert sum(entry["count"] for entry in result.ops.values()) == len(result.layers)
    conv = result.ops["Conv2d"]
    assert conv["seconds"] == pytest.approx(conv["forward"] + conv["backward"])
    assert result.ops["BatchNorm2d"]["count"] == 20  # training keeps BatchNorm: nothing folded


def test_profile_train_table_and_json(capsys):
    assert main(["profile", "lenet5", "--train", "--batch", "4", "--repeat", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "training step, batch 4" in out and "backward ms" in out and "optimizer (SGD, momentum)" in out
    result = run_json(capsys, "profile", "lenet5", "--train", "--batch", "4", "--repeat", "1")
    assert {"step_seconds", "optimizer_seconds", "layer_seconds", "layers", "ops"} <= set(result)
    assert result["ops"]["Conv2d"]["count"] == 3 and result["ops"]["Conv2d"]["backward"] > 0


def test_bench_json_compares_with_onnxruntime(capsys):
    pytest.importorskip("onnxruntime")
    result = run_json(capsys, "bench", "lenet5", "--repeat", "2", "--warmup", "0", "--batch", "2")
    assert set(result["sides"]) >= {"cnngraph", "onnxruntime"}
    assert len(result["sides"]["cnngraph"]["samples_s"]) == 2
    assert result["ratios"]["cnngraph/onnxruntime"] > 0
    assert result["max_rel_diff"] < 1e-4  # both ran the same computation


def test_bench_table(capsys):
    assert main(["bench", "lenet5", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "cnngraph/side" in out and "GFLOP/s" in out


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_errors_are_one_line_and_exit_codes(command, capsys):
    assert main([command, "no_such_model"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"cnngraph {command}: error:")
    with pytest.raises(SystemExit) as e:
        main([command, "lenet5", "--repeat", "0"])
    assert e.value.code == 2


def test_each_side_is_timed_after_the_previous_ones_threads_have_settled(monkeypatch):
    """OpenBLAS workers spin ~0.1 s after a GEMM: the next side's first call comes SETTLE_S after the last."""
    from cnngraph import benchmark

    monkeypatch.setattr(benchmark, "SETTLE_S", 0.05)
    calls = []

    def runner(side):
        return lambda x: calls.append((side, time.perf_counter())) or x

    sides = {"cnngraph": runner("cnngraph"), "pytorch": None, "onnxruntime": runner("onnxruntime")}
    benchmark.compare(sides, np.ones(3), warmup=1, repeat=2)
    last = max(t for side, t in calls if side == "cnngraph")
    first = min(t for side, t in calls if side == "onnxruntime")
    assert [side for side, _ in calls] == ["cnngraph"] * 4 + ["onnxruntime"] * 4 and first - last >= 0.05
