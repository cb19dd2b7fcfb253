"""Named dimensions besides the batch: an (R, 5) list of boxes beside an (N, C, H, W) batch. They are checked
by name in the IR and at run time, exported as ONNX dim_params and read back, and the commands that feed
random inputs (export --verify, compile --check, run) give such inputs values their ops accept."""

import numpy as np
import onnx
import pytest

import cnngraph
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.backends.onnx_verify import verify
from cnngraph.errors import CnnGraphError, GraphError, ShapeError
from cnngraph.frontends import dsl, onnx_import
from cnngraph.ir import Graph
from cnngraph.probes import random_inputs
from cnngraph.types import TensorType, bind_sizes


def detector_head():
    """Features of an image batch pooled over a list of regions, then classified: R rows out, two outputs."""
    image = dsl.input("image", (3, 16, 16))
    rois = dsl.input("rois", (5,), leading="R")
    features = dsl.relu(dsl.conv2d(image, 4, 3, stride=2, padding=1, name="features"))
    pooled = dsl.roi_align(features, rois, 2, spatial_scale=0.5, sampling_ratio=2, name="pooled")
    scores = dsl.softmax(dsl.linear(dsl.flatten(pooled), 3, name="classes"), axis=1, name="scores")
    deltas = dsl.linear(dsl.flatten(pooled), 4, name="deltas")
    return dsl.Model([image, rois], [scores, deltas], name="head", seed=0)


def test_sizes_bind_by_name_and_a_conflict_names_both_inputs():
    types = {"image": TensorType(("N", 3, 4, 4)), "rois": TensorType(("R", 5)), "index": TensorType(("R",))}
    assert bind_sizes(types, {"image": (2, 3, 4, 4), "rois": (7, 5), "index": (7,)}) == {"N": 2, "R": 7}
    with pytest.raises(ValueError, match=r"input 'index' has R = 6 \(axis 0\), but 'rois' has R = 7"):
        bind_sizes(types, {"image": (2, 3, 4, 4), "rois": (7, 5), "index": (6,)})
    assert TensorType(("R", 3, 2, 2)).concrete(2, {"R": 5}) == (5, 3, 2, 2)
    assert TensorType(("R", 3, 2, 2)).per_sample() == 12


def test_names_do_not_mix_in_shape_checks():
    x = dsl.input("x", (3,))
    r = dsl.input("r", (3,), leading="R")
    with pytest.raises(ShapeError, match=r"cannot add shapes \(N, 3\) and \(R, 3\)"):
        dsl.add(x, r)
    with pytest.raises(GraphError, match="leading dimension must be a name"):
        dsl.input("bad", (3,), leading="2 boxes")
    graph = Graph()
    graph.add_input("x", TensorType((4, 3)))
    with pytest.raises(GraphError, match=r"must be \(N, positive sizes...\), or another dimension name first"):
        graph.verify()


def test_a_two_output_graph_with_regions_runs_at_any_number_of_regions():
    graph = detector_head()
    assert [str(graph.type_of(o)) for o in graph.outputs] == ["f32[R,3]", "f32[R,4]"]
    model = cnngraph.compile(graph)
    rng = np.random.default_rng(0)
    for regions in (1, 6):
        feeds = random_inputs(graph, 2, rng, np.float32)
        feeds["rois"] = random_inputs(graph, regions, rng, np.float32)["rois"]
        feeds["rois"][:, 0] = rng.integers(0, 2, regions)
        out = model.run(feeds)
        assert out["scores"].shape == (regions, 3) and out["deltas"].shape == (regions, 4)
        np.testing.assert_allclose(out["scores"].sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(CnnGraphError, match=r"input 'rois': expected shape \(R, 5\)"):
        model.run({"image": feeds["image"], "rois": np.zeros((3, 4), np.float32)})


def test_regions_export_as_dim_params_verify_in_onnxruntime_and_import_back(tmp_path):
    pytest.importorskip("onnxruntime")
    graph = detector_head()
    path = tmp_path / "head.onnx"
    onnx.save(to_onnx(graph), path)
    model = onnx.load(path)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.input, *model.graph.output]}
    assert shapes == {"image": ["N", 3, 16, 16], "rois": ["R", 5], "scores": ["R", 3], "deltas": ["R", 4]}
    result = verify(graph, path)  # random boxes that RoiAlign accepts, at batches 1 and 3, both outputs
    assert result.ok and {d.output for d in result.differences} == {"scores", "deltas"}
    again = onnx_import.load(path)
    assert again.inputs["rois"].shape == ("R", 5) and again.inputs["image"].shape[0] == "N"
    feeds = random_inputs(graph, 2, np.random.default_rng(1), np.float32)
    want = cnngraph.compile(graph).run(feeds)
    got = cnngraph.compile(again).run(feeds)
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_compile_check_and_summary_take_a_graph_with_regions():
    graph = detector_head()
    optimised, reports = cnngraph.optimize(graph, check=True)  # random probes through RoiAlign, compared
    assert optimised.outputs == graph.outputs and reports


def test_the_memory_plan_counts_each_value_at_its_own_sizes():
    """A per-image map is counted once per image and a per-region one once per region: 300 regions on one
    image must not be budgeted as 300 images."""
    from cnngraph.memory import plan

    graph = detector_head()
    memory = plan(graph, 1, "float32", {"R": 300})
    per_node = {n.name: int(np.prod(n.type.concrete(1, {"R": 300}))) * 4 for n in graph.nodes}
    assert memory.unplanned_bytes == sum(per_node.values())
    assert per_node["features"] == 4 * 8 * 8 * 4 and per_node["pooled"] == 300 * 4 * 2 * 2 * 4
