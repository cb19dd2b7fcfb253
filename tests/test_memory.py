"""Memory planning: lifetimes, best-fit reuse and in-place activations, against hand-worked plans."""

from cnngraph.cli import main
from cnngraph.frontends import dsl
from cnngraph.memory import plan

UNIT = 4 * 8 * 8 * 4  # one (4, 8, 8) float32 activation per sample


def test_chain_reuses_and_runs_activations_in_place():
    x = dsl.input("x", (4, 8, 8))
    a = dsl.relu(x, name="a")  # reads a graph input: cannot overwrite it
    b = dsl.relu(a, name="b")  # a dies here: in place
    c = dsl.conv2d(b, 4, 3, padding=1, name="c")  # b dies here, but c needs a buffer while b is read
    d = dsl.conv2d(c, 4, 3, padding=1, name="d")  # reuses b's buffer
    p = plan(dsl.Model(x, d), batch=2)
    assert p.in_place == {"b"}
    assert p.buffer_of["a"] == p.buffer_of["b"] == p.buffer_of["d"] != p.buffer_of["c"]
    assert p.planned_bytes == 2 * 2 * UNIT
    assert p.unplanned_bytes == 4 * 2 * UNIT


def test_residual_keeps_the_skip_alive():
    x = dsl.input("x", (4, 8, 8))
    a = dsl.conv2d(x, 4, 3, padding=1, name="a")
    b = dsl.conv2d(a, 4, 3, padding=1, name="b")
    c = dsl.conv2d(b, 4, 3, padding=1, name="c")
    out = dsl.add(a, c, name="out")  # a lives until here: three buffers at the peak
    p = plan(dsl.Model(x, out), batch=1)
    assert len({p.buffer_of[v] for v in "abc"}) == 3
    assert p.buffer_of["out"] == p.buffer_of["b"]  # b died at c, so out takes its buffer
    assert p.planned_bytes == 3 * UNIT


def test_compile_cli_reports_passes_and_memory(capsys, tmp_path):
    path = tmp_path / "r.cng"
    assert main(["compile", "resnet18", "--input-size", "64", "--report", "--check", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bn_folding: nodes 69 -> 49" in out and "folded layer1.0.bn1 into layer1.0.conv1" in out
    assert "activation memory at batch 8, optimised graph" in out and "69 nodes -> 24 nodes" in out
    assert main(["run", str(path), "--batch", "2"]) == 0
    assert main(["compile", "lenet5", "--passes", "bogus"]) == 1
    assert "unknown pass 'bogus'" in capsys.readouterr().err
