"""bench/bench_pairs.py, a benchmark (it asserts no speed): which side goes first alternates from pair to pair,
each side is timed in a process of its own, the table gives every pair and their median, and bad arguments
stop it with one line."""

from __future__ import annotations

import json
import statistics

import pytest

from tests.bench_scripts import load, run

pytest.importorskip("onnxruntime")


def run_script(*arguments):
    return run("bench_pairs", *arguments)


def test_which_side_goes_first_alternates_from_pair_to_pair(monkeypatch):
    module, calls = load("bench_pairs"), []
    monkeypatch.setattr(module, "one_process", lambda side, *_: calls.append(side) or {"min_s": 1.0})
    for index in range(4):
        module.pair(index, None, "lenet5", 1)
    assert calls == ["onnxruntime", "cnngraph", "cnngraph", "onnxruntime"] * 2


@pytest.mark.parametrize("side", ["cnngraph", "onnxruntime"])
def test_a_side_process_prints_its_timing(side):
    run = run_script("--side", side, "--models", "lenet5", "--batches", "2", "--repeat", "3")
    assert run.returncode == 0, run.stderr
    timing = json.loads(run.stdout)
    assert len(timing["samples_s"]) == 3 and 0 < timing["min_s"] <= timing["median_s"] <= timing["max_s"]


def test_the_table_gives_every_pair_their_median_and_the_load():
    run = run_script("--models", "lenet5", "--batches", "2", "--pairs", "3", "--repeat", "2")
    assert run.returncode == 0, run.stderr
    cells = [cell.strip() for cell in next(line for line in run.stdout.splitlines() if "lenet5" in line).split("│")]
    assert cells[1:3] == ["lenet5", "2"]
    ratios = [float(r) for r in cells[3].split()]
    assert len(ratios) == 3 and all(r > 0 for r in ratios)
    assert float(cells[4].rstrip("x")) == pytest.approx(statistics.median(ratios), abs=0.006)
    assert "load average" in run.stdout


@pytest.mark.parametrize("arguments,says", [(["--models", "nosuch"], "unknown model nosuch"),
                                            (["--models", "lenet5", "--repeat", "0"], "must be at least 1")])
def test_bad_arguments_stop_it_with_one_line(arguments, says):
    run = run_script(*arguments)
    assert run.returncode == 1 and says in run.stderr and len(run.stderr.strip().splitlines()) == 1
