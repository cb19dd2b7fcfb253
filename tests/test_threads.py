"""BLAS threads per GEMM size, read from threadpoolctl inside the run: a small model's GEMMs on one thread,
a large convolution's on every core, and ``--threads N`` overriding both."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import cnngraph
from cnngraph import models
from cnngraph.backends.threads import CROSSOVER_MACS, blas
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


@pytest.fixture(autouse=True)
def auto_threads():
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
