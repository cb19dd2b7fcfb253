"""The channels_last lowering pass and the channels-last kernels, checked on the CPU: the lowered graph
computes what the unlowered one does (the oracle), conversions sit exactly at layout boundaries,
opposite conversions cancel, and what stays NCHW says why."""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.devices import get_backend
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.cli import main
from cnngraph.errors import OnnxExportError
from cnngraph.frontends import dsl
from cnngraph.passes import DEFAULT
from tests.zoo_builds import reduced

LOWERED = DEFAULT + ["channels_last"]


@pytest.fixture
def prefers_nhwc(monkeypatch):
    """The strict backend asks for channels-last as the CuPy backend does (whose kernels need a GPU)."""
    monkeypatch.setattr(get_backend("strict"), "prefers", "NHWC")


def x_for(graph, batch=2):
    return np.random.default_rng(0).standard_normal(next(iter(graph.inputs.values())).concrete(batch)).astype(
        np.float32)


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "unet"])
def test_lowered_zoo_models_compute_what_the_unlowered_ones_do(name, prefers_nhwc, quick_params):
    graph = reduced(name)
    model = cnngraph.compile(graph, backend="strict", passes=LOWERED)
    lowered = [n for n in model.graph.nodes if n.attrs.get("layout") == "NHWC"]
    assert lowered and any(n.op == "Layout" for n in model.graph.nodes)
    assert "generic/nhwc" in model.kernels().values()
    want = cnngraph.compile(graph).run(x_for(graph))
    got = model.run(x_for(graph), to_host=True)
    assert sorted(got) == sorted(want)  # outputs keep their names, and come back NCHW
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-4 * np.abs(want[key]).max())


def test_a_residual_network_needs_conversions_only_at_its_ends(prefers_nhwc):
    graph = reduced("resnet18")
    model = cnngraph.compile(graph, backend="strict", passes=LOWERED)
    conversions = [n for n in model.graph.nodes if n.op == "Layout"]
    # into the stem conv, around the NCHW max pool, and out of the global pool into Flatten
    assert [(n.inputs[0], n.attrs["to"]) for n in conversions] == [
        ("image", "NHWC"), ("conv1", "NCHW"), ("maxpool", "NHWC"), ("avgpool", "NCHW")]
    assert "layer1.0.conv1 = FusedConv2d(%maxpool.to_nhwc" in str(model.graph).replace("%layer1", "layer1")


def test_numpy_prefers_nchw_so_nothing_is_lowered():
    report = cnngraph.compile(reduced("resnet18"), passes=LOWERED).report[-1]
    assert report.name == "channels_last" and not report.changed


def test_opposite_conversions_cancel(prefers_nhwc):
    x = dsl.input("x", (3, 8, 8))
    there = dsl.layer("Layout", [x], name="there", to="NHWC")
    back = dsl.layer("Layout", [there], name="back", to="NCHW")
    graph = dsl.Model(x, dsl.conv2d(dsl.relu(back, name="r"), 4, 3, name="conv"))
    model = cnngraph.compile(graph, backend="strict", passes=["channels_last", "dead_code"])
    assert model.graph.node("r").inputs == ["x"]
    assert "there" not in [n.name for n in model.graph.nodes]


def test_what_stays_nchw_says_why(prefers_nhwc):
    x = dsl.input("x", (3, 8, 8))
    c = dsl.conv2d(x, 4, 3, padding=1, name="conv")
    scaled = dsl.add(c, dsl.constant(np.ones((1, 4, 1, 1), np.float32), name="bias"), name="badd")
    graph = dsl.Model(x, dsl.conv2d(scaled, 2, 1, name="head"))
    report = cnngraph.compile(graph, backend="strict", passes=["channels_last"]).report[-1]
    assert ("badd", "a Add that broadcasts stays NCHW") in report.outcome.skipped
    assert ("head", "graph outputs stay NCHW") in report.outcome.skipped
    trained = cnngraph.compile(graph, backend="strict", train=True, passes=["channels_last"]).report[-1]
    assert "training graphs stay NCHW" in trained.outcome.skipped[0][1]


def test_lowering_that_converts_more_than_it_saves_is_undone(prefers_nhwc):
    x = dsl.input("x", (4, 8, 8))
    a, b = dsl.max_pool2d(x, 2, name="a"), dsl.avg_pool2d(x, 2, name="b")  # two NCHW inputs
    y = dsl.relu(dsl.add(dsl.conv2d(a, 4, 3, padding=1, name="conv"), b, name="sum"), name="act")
    graph = dsl.Model(x, dsl.max_pool2d(y, 2, name="out"))
    model = cnngraph.compile(graph, backend="strict", passes=LOWERED)
    assert not any(n.op == "Layout" or "layout" in n.attrs for n in model.graph.nodes)
    assert "would need 3 layout conversions" in model.report[-1].outcome.skipped[0][1]


def test_a_lowered_graph_is_no_onnx_model(prefers_nhwc):
    model = cnngraph.compile(reduced("resnet18"), backend="strict", passes=LOWERED)
    with pytest.raises(OnnxExportError, match="lowered to channels-last storage"):
        to_onnx(model.graph)


def test_print_ir_shows_every_conversion(prefers_nhwc, capsys):
    assert main(["compile", "resnet18", "--input-size", "32", "--backend", "strict", "--passes",
                 ",".join(LOWERED), "--print-ir"]) == 0
    out = capsys.readouterr().out
    assert out.count("= Layout(") == 4 and "layout=NHWC" in out
