"""Detectors with their post-processing inside the graph: the decoded boxes and class scores equal the host
path's (``predict._ssd`` / ``predict._yolo``, which the mAP tests score), and the exported file gives
onnxruntime's detections equal to cnngraph's."""

from __future__ import annotations

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.detection.in_graph import with_nms
from cnngraph.detection.predict import _ssd, _yolo
from cnngraph.errors import GraphError
from tests.onnx_models import onnxruntime_run
from tests.test_cli import run_cli

SIZE = 32
BUILDS = {"ssd_small": dict(input_size=SIZE), "yolo_v1_small": dict(input_size=SIZE, grid=4)}


def images(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, SIZE, SIZE)).astype(np.float32)


def host_decoding(raw: dict) -> tuple[np.ndarray, np.ndarray]:
    if "anchors" in raw:
        return _ssd(raw["loc"], raw["conf"], raw["anchors"], (SIZE, SIZE))
    return _yolo(raw["boxes"], raw["classes"], (SIZE, SIZE))


@pytest.fixture(scope="module", params=sorted(BUILDS))
def detector(request):
    return models.build(request.param, **BUILDS[request.param])


def test_boxes_and_scores_are_the_host_decoding(detector):
    raw = cnngraph.compile(detector).run(images(2), to_host=True)
    out = cnngraph.compile(with_nms(detector)).run(images(2), to_host=True)
    boxes, scores = host_decoding(raw)
    np.testing.assert_allclose(out["boxes"], boxes, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(out["scores"], scores.transpose(0, 2, 1), rtol=1e-6, atol=1e-7)
    assert out["boxes"].min() >= 0 and out["boxes"].max() <= SIZE


@pytest.mark.parametrize("batch", [1, 2])
def test_onnxruntime_finds_the_same_detections(detector, batch):
    graph = with_nms(detector, score_threshold=0.05)
    x = images(batch, seed=batch)
    got = cnngraph.compile(graph).run(x, to_host=True)
    want = dict(zip(graph.outputs, onnxruntime_run(to_onnx(graph), {"image": x})))
    assert len(got["selected"]) > 0 and set(got["selected"][:, 0]) == set(range(batch))
    np.testing.assert_array_equal(got["selected"], want["selected"])
    np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-5)  # scores reach 3: Winograd's rounding


def test_only_detectors_get_it():
    with pytest.raises(GraphError, match="built for SSD"):
        with_nms(models.build("lenet5"))


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_export_nms_from_the_cli(tmp_path, capsys, name):
    # An untrained ssd_small at 32 pixels has 336 default boxes with nearly equal scores: float32 rounding
    # (1e-6) reorders some of them between onnxruntime and numpy, and NMS then keeps other rows. At 16: 84 boxes.
    size = 16 if name == "ssd_small" else SIZE
    code, out, err = run_cli(capsys, "export", name, "--input-size", str(size), "--nms", "-o",
                             str(tmp_path / "detector.onnx"), "--verify")
    assert code == 0, err
    assert f"{name}_nms" in out and "'selected' at batch 3: max abs 0.00e+00" in out  # the same rows
