"""Concat elision: producers writing into their slice of a shared buffer compute exactly what the plain
Concat does (the oracle: the same graph run without the pass, bit for bit, and the unoptimised graph),
and every input that must not be written in place is copied, with its reason reported."""

import numpy as np
import pytest

import cnngraph
from cnngraph import io, models, optimize
from cnngraph.concat_layout import layout
from cnngraph.frontends import dsl
from cnngraph.passes import DEFAULT, TRAINING
from tests.test_passes import randomize_bn, skipped

WITHOUT = [p for p in DEFAULT if p != "concat_elision"]


def run(graph, feeds):
    return cnngraph.compile(graph, dtype="float64", passes="none").run(feeds)


def feeds_for(graph, batch, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(t.concrete(batch)) for k, t in graph.inputs.items()}


def assert_elision_exact(graph, passes=("concat_elision",), batches=(1, 3)):
    """The graph with elision equals the same pipeline without it bit for bit, and the unoptimised graph
    exactly too when elision runs alone (BN folding rounds: 1e-4 then); returns the elided graph and its reports."""
    rtol = 1e-12 if list(passes) == ["concat_elision"] else 1e-4
    plain, _ = optimize(graph, [p for p in passes if p != "concat_elision"])
    elided, reports = optimize(graph, list(passes))
    for batch in batches:
        feeds = feeds_for(graph, batch)
        want, base, got = run(graph, feeds), run(plain, feeds), run(elided, feeds)
        for k in want:
            np.testing.assert_array_equal(got[k], base[k])
            np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * np.abs(want[k]).max())
    return elided, reports


def elided_names(graph):
    return [n.name for n in graph.nodes if n.op == "Concat" and n.attrs["elide"]]


def test_densenet121_blocks_share_one_buffer_per_block():
    g = randomize_bn(models.build("densenet121", input_size=32, num_classes=10))
    opt, reports = assert_elision_exact(g, DEFAULT)
    assert len(elided_names(opt)) == sum(1 for n in opt.nodes if n.op == "Concat") == 58
    plan = layout(opt)
    assert set(plan.owners()) == {f"features.denseblock{i}.concat" for i in range(1, 5)}
    assert len(plan.placed) == 6 + 12 + 24 + 16  # every new feature map; block inputs come from pools
    assert "'features.pool0' (MaxPool2d) cannot write into a slice" in " ".join(skipped(reports, "concat_elision"))


@pytest.mark.parametrize("name", ["googlenet", "unet", "fc_densenet56", "squeezenet1_1"])
def test_zoo_branches_and_skips_are_exact(name):
    kwargs = dict(googlenet=dict(input_size=32), unet=dict(input_size=44, depth=2, width=8),
                  fc_densenet56=dict(input_size=32), squeezenet1_1=dict(input_size=32))[name]
    g = randomize_bn(models.build(name, **kwargs))
    opt, reports = assert_elision_exact(g, DEFAULT)
    if name == "unet":  # transposed-conv upsampling and cropped (sliced) skips: both copied
        assert not elided_names(opt)
        assert "'up1.crop' (Slice) cannot write into a slice; 'up1.upconv' (ConvTranspose2d) cannot" in " ".join(
            skipped(reports, "concat_elision"))
    else:
        assert elided_names(opt)


def _two_convs(x):
    return dsl.conv2d(x, 3, 3, padding=1, name="a"), dsl.conv2d(x, 2, 1, name="b")


def test_input_with_another_consumer_is_placed_and_read_from_its_slice():
    """Values are never written after they are produced, so a placed value's other readers are safe."""
    x = dsl.input("x", (4, 5, 5))
    a, b = _two_convs(x)
    g = dsl.Model(x, [dsl.relu(dsl.concat([a, b], name="cat")), dsl.sigmoid(a, name="other")])
    opt, _ = assert_elision_exact(g)
    assert layout(opt).placed.keys() == {"a", "b"}


@pytest.mark.parametrize("case,reason", [
    ("graph_input", "'x' is a graph input"),
    ("graph_output", "'a' is a graph output"),
    ("pool", "'p' (MaxPool2d) cannot write into a slice"),
    ("twice", "'a' already lives in 'cat'"),
])
def test_inputs_that_must_be_copied_say_why(case, reason):
    x = dsl.input("x", (4, 6, 6))
    a, b = _two_convs(x)
    if case == "graph_input":
        cat, outs = dsl.concat([x, a], name="cat"), []
    elif case == "graph_output":
        cat, outs = dsl.concat([a, b], name="cat"), [a]
    elif case == "pool":
        cat, outs = dsl.concat([dsl.max_pool2d(x, 3, 1, padding=1, name="p"), a], name="cat"), []
    else:
        cat, outs = dsl.concat([a, b, a], name="cat"), []
    opt, reports = assert_elision_exact(dsl.Model(x, [dsl.relu(cat), *outs]))
    assert reason in " ".join(skipped(reports, "concat_elision"))
    assert "cat" in elided_names(opt)  # the other input still writes in place


def test_nothing_to_gain_leaves_the_concat_plain():
    x = dsl.input("x", (4, 6, 6))
    g = dsl.Model(x, dsl.relu(dsl.concat([x, dsl.max_pool2d(x, 3, 1, padding=1)], name="cat")))
    opt, reports = assert_elision_exact(g)
    assert elided_names(opt) == []
    assert reports[0].outcome.skipped == [("cat", "no input can be written in place: 'x' is a graph input; "
                                                 "'maxpool2d' (MaxPool2d) cannot write into a slice")]


def test_a_concat_that_is_a_graph_output_owns_its_buffer():
    x = dsl.input("x", (4, 6, 6))
    a, b = _two_convs(x)
    first = dsl.concat([a, b], name="first")
    g = dsl.Model(x, [first, dsl.relu(dsl.concat([a, b, dsl.conv2d(x, 1, 1, name="c")], name="second"))])
    opt, _ = assert_elision_exact(g)
    out = cnngraph.compile(opt, dtype="float64", passes="none").run(feeds_for(g, 2))["first"]
    assert out.flags.c_contiguous  # not a strided view of 'second'


def test_nested_concats_write_into_the_outer_buffer():
    x = dsl.input("x", (4, 6, 6))
    a, b = _two_convs(x)
    inner = dsl.concat([a, b], name="inner")
    outer = dsl.concat([dsl.conv2d(x, 2, 3, padding=1, name="c"), inner], name="outer")
    opt, reports = assert_elision_exact(dsl.Model(x, dsl.relu(outer)))
    plan = layout(opt)
    assert plan.placed["inner"].owner == "outer" and plan.placed["a"].owner == "inner"
    assert any("inside outer's buffer" in a for a in reports[0].outcome.actions)


def test_other_axes_are_not_elided():
    x = dsl.input("x", (4, 6, 6))
    a, b = dsl.conv2d(x, 2, 1, name="a"), dsl.conv2d(x, 2, 1, name="b")
    opt, reports = assert_elision_exact(dsl.Model(x, dsl.concat([a, b], axis=2, name="cat")))
    assert elided_names(opt) == [] and skipped(reports, "concat_elision") == ["joins axis 2, not the channels"]


def test_elided_graph_exports_plain_concat_and_round_trips_as_cng(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnngraph.backends.onnx_export import to_onnx
    from cnngraph.backends.onnx_verify import verify

    opt, _ = optimize(randomize_bn(models.build("densenet121", input_size=32, num_classes=10)), "default")
    model = to_onnx(opt)
    assert {a.name for n in model.graph.node if n.op_type == "Concat" for a in n.attribute} == {"axis"}
    assert verify(opt, model, batches=(1, 3)).ok
    io.save(opt, tmp_path / "d.cng")
    again = io.load(tmp_path / "d.cng")
    assert elided_names(again) == elided_names(opt) and "elide=True" in str(again)
    feeds = feeds_for(opt, 2)
    np.testing.assert_array_equal(run(again, feeds)["classifier"], run(opt, feeds)["classifier"])


def test_training_never_elides():
    g = models.build("densenet121", input_size=32, num_classes=10)
    g.training = True
    assert "concat_elision" not in TRAINING
    opt, reports = optimize(g, ["concat_elision"])
    assert elided_names(opt) == [] and skipped(reports, "concat_elision")[0] == "the graph is built for training"
