"""RoiPool and RoiAlign against onnxruntime's MaxRoiPool and RoiAlign (and onnx.reference's RoiAlign), their
gradients against finite differences, and their export: a graph with an image batch and a list of
boxes of its own size R runs in onnxruntime with cnngraph's numbers."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import cnngraph
from cnngraph.arrays import to_numpy
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.errors import CnnGraphError, ShapeError
from cnngraph.frontends import dsl, onnx_import
from tests.gradcheck import check_gradients
from tests.oracle import current_backend, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


def regions(rng, count, batch, size, scale=1.0):
    """Boxes of all sizes inside and across the border of a size x size image (in feature cells / scale)."""
    xy = rng.uniform(-2, size - 1, (count, 2))
    wh = rng.uniform(0.3, size * 0.8, (count, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1) / scale
    return np.concatenate([rng.integers(0, batch, (count, 1)), boxes], axis=1)


def roi_graph(op, x_shape, attrs):
    x = dsl.input("x", x_shape[1:])
    rois = dsl.input("rois", (5,), leading="R")
    return dsl.Model([x, rois], dsl.layer(op, [x, rois], name="roi", **attrs))


def run_cnngraph(op, x, rois, attrs, dtype="float64"):
    model = cnngraph.compile(roi_graph(op, x.shape, attrs), backend=current_backend(), dtype=dtype)
    return to_numpy(model.run({"x": x, "rois": rois})["roi"])


def onnx_roi(runner, op_type, x, rois, attrs, opset):
    """One MaxRoiPool or RoiAlign node; RoiAlign gets (R, 4) boxes and int64 batch indices, as ONNX wants."""
    f = TensorProto.FLOAT
    if op_type == "MaxRoiPool":
        feeds, names = {"x": x, "rois": rois}, ["x", "rois"]
        infos = [helper.make_tensor_value_info("rois", f, rois.shape)]
    else:
        feeds = {"x": x, "boxes": np.ascontiguousarray(rois[:, 1:]), "index": rois[:, 0].astype(np.int64)}
        names = ["x", "boxes", "index"]
        infos = [helper.make_tensor_value_info("boxes", f, (len(rois), 4)),
                 helper.make_tensor_value_info("index", TensorProto.INT64, (len(rois),))]
    node = helper.make_node(op_type, names, ["y"], **attrs)
    model = helper.make_model(helper.make_graph(
        [node], "roi", [helper.make_tensor_value_info("x", f, x.shape), *infos],
        [helper.make_tensor_value_info("y", f, None)]), opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    if runner == "onnxruntime":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, feeds)[0]
    return ReferenceEvaluator(model).run(None, feeds)[0]


POOL_CASES = [((2, 3, 9, 11), (3, 2), 1.0), ((1, 2, 12, 12), (2, 2), 0.5), ((3, 2, 7, 6), (4, 3), 0.25),
              ((2, 3, 20, 20), (3, 3), 0.0625)]  # bins up to 6 cells wide, several boxes per image


@pytest.mark.parametrize("shape, size, scale", POOL_CASES)
def test_roi_pool_matches_onnxruntime_max_roi_pool(shape, size, scale):
    rng = np.random.default_rng(0)
    x = random(shape, 1, np.float32)
    rois = regions(rng, 7, shape[0], shape[2], scale).astype(np.float32)
    rois[0, 1:] = [2.5 / scale, 1.5 / scale, 2.5 / scale, 1.5 / scale]  # a point: rounding halves, one cell
    want = onnx_roi("onnxruntime", "MaxRoiPool", x, rois, {"pooled_shape": list(size), "spatial_scale": scale}, 17)
    got = run_cnngraph("RoiPool", x, rois, {"output_size": size, "spatial_scale": scale}, "float32")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


ALIGN_CASES = [
    # shape, output size, scale, sampling ratio, mode, coordinate mode
    ((2, 3, 10, 9), (3, 3), 1.0, 2, "avg", "half_pixel"),
    ((2, 3, 10, 9), (2, 4), 0.5, 0, "avg", "half_pixel"),  # adaptive grid, different per box
    ((1, 2, 8, 8), (3, 2), 1.0, 0, "avg", "output_half_pixel"),
    ((2, 2, 9, 7), (2, 2), 0.5, 2, "max", "half_pixel"),
    ((1, 2, 8, 8), (3, 3), 1.0, 0, "max", "output_half_pixel"),
]


@pytest.mark.parametrize("runner", ["onnxruntime", "reference"])
@pytest.mark.parametrize("shape, size, scale, ratio, mode, coords", ALIGN_CASES)
def test_roi_align_matches_onnx(runner, shape, size, scale, ratio, mode, coords):
    rng = np.random.default_rng(3)
    x = random(shape, 4, np.float32)
    rois = regions(rng, 6, shape[0], shape[2], scale).astype(np.float32)
    rois[0, 1:] = [-30, -30, -20, -25]  # wholly outside: every sample is 0
    attrs = {"output_height": size[0], "output_width": size[1], "sampling_ratio": ratio, "spatial_scale": scale,
             "mode": mode, "coordinate_transformation_mode": coords}
    want = onnx_roi(runner, "RoiAlign", x, rois, attrs, 16)
    got = run_cnngraph("RoiAlign", x, rois, {"output_size": size, "spatial_scale": scale, "sampling_ratio": ratio,
                                             "mode": mode, "coordinate_mode": coords}, "float32")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op, attrs", [
    ("RoiPool", {"output_size": (2, 3), "spatial_scale": 0.5}),
    ("RoiAlign", {"output_size": (2, 2), "sampling_ratio": 2}),
    ("RoiAlign", {"output_size": (3, 2), "coordinate_mode": "output_half_pixel"}),
    ("RoiAlign", {"output_size": (2, 2), "mode": "max", "sampling_ratio": 2}),
])
def test_roi_gradients_match_finite_differences(op, attrs):
    rng = np.random.default_rng(5)
    x_shape = (2, 2, 6, 7)
    # Boxes from fixed regions (a constant) so only the features are differentiated, as torchvision's.
    rois = regions(rng, 4, 2, 6, attrs.get("spatial_scale", 1.0))
    x = dsl.input("x", x_shape[1:])
    out = dsl.layer(op, [x, dsl.constant(rois, name="rois")], name="roi", **attrs)
    graph = dsl.Model(x, out)
    graph.params[graph.node("rois").params["value"]] = rois
    check_gradients(graph, {"x": random(x_shape, 6)}, rtol=1e-5, atol=1e-7)


def test_regions_have_their_own_dimension_in_the_ir_and_in_onnx(tmp_path):
    graph = roi_graph("RoiAlign", (1, 3, 8, 8), {"output_size": (2, 2)})
    assert str(graph.node("roi").type) == "f32[R,3,2,2]"
    model = to_onnx(graph)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {"x": ["N", 3, 8, 8], "rois": ["R", 5]}
    assert [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == ["R", 3, 2, 2]


@pytest.mark.parametrize("op, attrs, opset", [
    ("RoiPool", {"output_size": (2, 3), "spatial_scale": 0.5}, 17),
    ("RoiAlign", {"output_size": (3, 2), "sampling_ratio": 0, "mode": "avg"}, 16),
    ("RoiAlign", {"output_size": (2, 2), "coordinate_mode": "output_half_pixel", "mode": "max"}, 13),
])
def test_exported_roi_ops_run_in_onnxruntime_with_our_numbers(op, attrs, opset):
    ort = pytest.importorskip("onnxruntime")
    graph = roi_graph(op, (2, 3, 9, 9), attrs)
    model = to_onnx(graph, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for count in (1, 5):  # R is free of the batch: 1 box, then 5, on the same batch of 2
        x = random((2, 3, 9, 9), count, np.float32)
        rois = regions(rng, count, 2, 9, attrs.get("spatial_scale", 1.0)).astype(np.float32)
        want = session.run(None, {"x": x, "rois": rois})[0]
        np.testing.assert_allclose(run_cnngraph(op, x, rois, attrs, "float32"), want, rtol=1e-5, atol=1e-5)


def test_bad_regions_are_named():
    with pytest.raises(ShapeError, match=r"rois of shape \(R, 5\)"):
        x = dsl.input("x", (3, 8, 8))
        dsl.layer("RoiAlign", [x, dsl.input("rois", (4,), leading="R")], output_size=2)
    with pytest.raises(CnnGraphError, match="image indices 0 to 1"):
        run_cnngraph("RoiPool", random((2, 1, 4, 4)), np.array([[2.0, 0, 0, 1, 1]]), {"output_size": 1})
    model = cnngraph.compile(roi_graph("RoiPool", (1, 1, 4, 4), {"output_size": 1}))
    with pytest.raises(CnnGraphError, match=r"input 'rois': expected shape \(R, 5\), got \(2, 4\)"):
        model.run({"x": random((1, 1, 4, 4)), "rois": np.zeros((2, 4))})


@pytest.mark.parametrize("op, attrs, opset", [
    ("RoiPool", {"output_size": (2, 3), "spatial_scale": 0.5}, 17),
    ("RoiAlign", {"output_size": (3, 2), "sampling_ratio": 2, "mode": "max", "spatial_scale": 0.5}, 16),
    ("RoiAlign", {"output_size": (2, 2), "coordinate_mode": "output_half_pixel"}, 13),
])
def test_roi_ops_import_back_from_their_onnx_export(op, attrs, opset, tmp_path):
    """MaxRoiPool maps 1:1; RoiAlign's (boxes, int64 batch_indices) pair is joined back into (R, 5) rows."""
    graph = roi_graph(op, (2, 3, 9, 9), attrs)
    path = tmp_path / "roi.onnx"
    onnx.save(to_onnx(graph, opset=opset), path)
    again = onnx_import.load(path)
    node = next(n for n in again.nodes if n.op == op)
    assert {k: node.attrs[k] for k in attrs} == {k: tuple(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
    rng = np.random.default_rng(8)
    x, rois = random((2, 3, 9, 9), 8), regions(rng, 4, 2, 9, attrs.get("spatial_scale", 1.0))
    want = run_cnngraph(op, x, rois, attrs)
    model = cnngraph.compile(again, backend=current_backend(), dtype="float64")
    np.testing.assert_allclose(to_numpy(model.run({"x": x, "rois": rois})[again.outputs[0]]), want, rtol=1e-12)
