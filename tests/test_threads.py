"""BLAS threads per GEMM size, read from threadpoolctl inside the run: a small model's GEMMs on one thread,
a large convolution's on every core other processes leave free, and ``--threads N`` overriding both."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import cnngraph
from cnngraph import models
from cnngraph.backends import threads
from cnngraph.backends.threads import CROSSOVER_MACS, OtherLoad, blas
from cnngraph.cli import main
from cnngraph.frontends import dsl


def blas_threads() -> int:
    return next(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


def threads_during(graph, batch: int, layer: str) -> int:
    """The BLAS thread count while ``layer``'s output is handed to the watch hook, right after its GEMM."""
    seen = {}
    model = cnngraph.compile(graph, passes="none")
    x = np.zeros((batch, *next(iter(graph.inputs.values())).shape[1:]), np.float32)
    model.run(x, watch=lambda node, value: seen.setdefault(node.name, blas_threads()))
    return seen[layer]


def big_conv():
    x = dsl.input("x", (64, 56, 56))
    # 3.2e8 MACs in one im2col GEMM (a 3x3 kernel would run Winograd, whose tile GEMMs are under the crossover)
    return dsl.Model(x, dsl.conv2d(x, 64, 5, padding=2, name="conv"), name="big", seed=0)


class Idle:
    """Other processes' load as seen on an idle machine, whatever else shares the test machine."""

    @staticmethod
    def cores() -> float:
        return 0.0


@pytest.fixture(autouse=True)
def auto_threads(monkeypatch):
    monkeypatch.setattr(blas, "others", Idle())
    blas.configure(None)
    yield
    blas.configure(None)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every choice is one thread")
def test_small_gemms_run_on_one_thread_and_large_ones_on_every_core():
    assert threads_during(models.build("lenet5"), 1, "c3") == 1
    assert threads_during(big_conv(), 1, "conv") == os.cpu_count()
    assert threads_during(models.build("lenet5"), 1, "f6") == 1  # and back again


def test_the_crossover():
    assert blas.choose(CROSSOVER_MACS - 1) == 1
    assert blas.choose(CROSSOVER_MACS) == (os.cpu_count() or 1)


def test_a_fixed_count_overrides_auto():
    blas.configure(1)
    assert threads_during(big_conv(), 1, "conv") == 1


def test_training_backward_chooses_too():
    model = cnngraph.compile(big_conv(), train=True)
    model.forward(np.zeros((1, 64, 56, 56), np.float32))
    blas.use(1)
    model.backward({"conv": np.ones((1, 64, 56, 56), np.float32)})
    assert blas_threads() == (os.cpu_count() or 1)


@pytest.mark.parametrize("command", ["run", "compile", "export", "train", "bench", "profile"])
def test_every_computing_command_takes_threads(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--threads N" in capsys.readouterr().out


def test_run_with_threads(capsys):
    assert main(["run", "lenet5", "--threads", "1"]) == 0
    assert blas.fixed == 1


def test_the_process_gets_its_blas_threads_back_after_a_run():
    before = blas_threads()
    assert threads_during(models.build("lenet5"), 32, "c3") == 1
    assert blas_threads() == before  # the rest of the program's NumPy is not ours to slow down


class Clock:
    """Stand-ins for the wall clock, the machine's busy CPU seconds and this process's own."""

    def __init__(self, monkeypatch):
        self.now, self.busy, self.own = 100.0, 5000.0, 10.0
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(threads, "machine_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(threads.os, "times", lambda: (self.own, 0.0, 0.0, 0.0, 0.0))

    def advance(self, seconds: float, busy_cores: float, own_cores: float) -> None:
        self.now += seconds
        self.busy += seconds * (busy_cores + own_cores)  # the machine's busy time includes this process's
        self.own += seconds * own_cores


def test_other_load_excludes_this_process(monkeypatch):
    """Only the other processes count: this process's own BLAS threads must not make it back off."""
    clock, load = Clock(monkeypatch), OtherLoad()
    assert load.cores() == 0.0  # the first sample has nothing to compare with
    clock.advance(1.0, busy_cores=1.0, own_cores=2.0)
    assert load.cores() == pytest.approx(1.0)
    clock.advance(0.1, busy_cores=0.0, own_cores=2.0)
    assert load.cores() == pytest.approx(1.0)  # sampled at most every LOAD_INTERVAL_S
    clock.advance(1.0, busy_cores=0.0, own_cores=2.0)
    assert load.cores() == pytest.approx(0.0)


def test_large_gemms_take_only_the_free_cores(monkeypatch):
    clock, cores = Clock(monkeypatch), 8
    monkeypatch.setattr(threads, "CORES", cores)
    monkeypatch.setattr(blas, "others", OtherLoad())
    blas.choose(CROSSOVER_MACS)
    clock.advance(1.0, busy_cores=3.0, own_cores=1.0)
    assert blas.choose(CROSSOVER_MACS) == 5 and blas.choose(CROSSOVER_MACS - 1) == 1
    clock.advance(1.0, busy_cores=12.0, own_cores=1.0)  # oversubscribed: one thread, never zero
    assert blas.choose(CROSSOVER_MACS) == 1
    blas.configure(4)
    assert blas.choose(CROSSOVER_MACS) == 4  # --threads N is N whatever the load


def test_unreadable_proc_stat_counts_every_core_free(monkeypatch):
    monkeypatch.setattr(threads, "PROC_STAT", "/nonexistent/stat")
    assert threads.machine_busy_seconds() is None and OtherLoad().cores() == 0.0
