"""bench/gemm_floor.py, a benchmark (it asserts no speed): the GEMM shapes it times are the convolutions'
im2col GEMMs (their multiply-accumulates are what ``analysis.node_macs`` counts for those layers), and the
script prints its table, each layer with --layers, and one-line errors."""

from __future__ import annotations

import importlib.util

import pytest

import cnngraph
from cnngraph import models
from cnngraph.analysis import node_macs
from tests.bench_scripts import load, run


def gemm_floor():
    return load("gemm_floor")


@pytest.mark.parametrize("name,count", [("resnet18", 20), ("squeezenet1_1", 26), ("lenet5", 3)])
def test_the_gemms_are_the_convolutions_multiply_accumulates(name, count):
    """As built (what the script times) and after the passes (which fuse around the convolutions)."""
    built = models.build(name)
    for graph in (built, cnngraph.compile(built).graph):
        gemms = list(gemm_floor().conv_gemms(graph, batch=3))
        assert len(gemms) == count
        for node, (groups, m, k, n) in gemms:
            assert groups * m * k * n == 3 * node_macs(graph, node), node.name


def test_a_grouped_convolution_is_one_gemm_per_group():
    from cnngraph.frontends import dsl

    x = dsl.input("x", (8, 6, 6))
    graph = dsl.Model(x, dsl.conv2d(x, 12, 3, groups=4, padding=1, name="grouped"), name="g", seed=0)
    [(node, shape)] = gemm_floor().conv_gemms(graph, batch=2)
    assert shape == (4, 3, 2 * 9, 2 * 36)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_the_table_and_the_layers():
    done = run("gemm_floor", "--models", "lenet5", "--repeat", "2", "--layers")
    assert done.returncode == 0, done.stderr
    assert sum(line.startswith(("c1:", "c3:", "c5:")) and "GFLOP/s" in line for line in done.stdout.splitlines()) == 3
    row = [cell.strip() for cell in next(line for line in done.stdout.splitlines() if "lenet5" in line).split("│")]
    assert row[1:4] == ["lenet5", "1", "3"] and all(float(cell) > 0 for cell in row[4:9])


@pytest.mark.parametrize("arguments,says", [(["--models", "nosuch"], "unknown model nosuch"),
                                            (["--repeat", "0"], "must be at least 1")])
def test_bad_arguments_stop_it_with_one_line(arguments, says):
    done = run("gemm_floor", *arguments)
    assert done.returncode == 1 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1
