"""The small two-stage models' RPN anchors and Fast R-CNN's sliding windows against the digit-detection set:
the share of truth boxes with an anchor at IoU >= 0.7 (the RPN's foreground threshold) bounds which
objects the RPN learns from an anchor of their own; at IoU >= 0.5 (Fast R-CNN's foreground threshold),
which objects a region head can learn and find. IoU from pycocotools (tests/test_detection_anchors.py)."""

import numpy as np
import pytest

from cnngraph import models
from cnngraph.detection.anchors import rpn_anchors
from cnngraph.errors import UnknownModelError
from cnngraph.models.faster_rcnn import anchors
from cnngraph.train.data import detection_digits
from cnngraph.train.detection_recipes import RegionSettings, Regions
from tests.test_detection_anchors import covered
from tests.zoo_builds import zero_params  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def truths():
    """Pixel boxes of 400 training canvases."""
    data = detection_digits.load(size=(64, 64), n_train=400, n_test=1)
    return np.concatenate(data.train.boxes).astype(np.float64)


@pytest.mark.parametrize("name", ["faster_rcnn_small", "mask_rcnn_small"])
def test_the_rpn_anchors_of_the_small_models_cover_the_digits(name, truths, zero_params):
    graph = models.build(name)
    grid = graph.params[graph.node("anchors").params["value"]]
    assert graph.type_of("rpn.conv").shape[2:] == (16, 16)  # stride 4 on a 64x64 image
    # Measured on the 5,048 boxes of the 2,000 training canvases (seed 0): 0.764 and 0.994.
    assert covered(grid, truths, 0.7) >= 0.7
    assert covered(grid, truths, 0.5) >= 0.98


def test_a_stride_16_rpn_leaves_most_digits_without_an_anchor(truths):
    """The layout the small models had before (a 4x4 map, sizes 14, 24, 36, ratios 1 and 1.5): 5.4% of the
    2,000 training canvases' digits had an anchor at IoU >= 0.7, 32.6% at 0.5."""
    grid = rpn_anchors((4, 4), 16, (14, 24, 36), (1.0, 1.5))
    assert covered(grid, truths, 0.7) < 0.1
    assert covered(grid, truths, 0.5) < 0.4


def test_fast_rcnn_small_sliding_windows_cover_the_digits(truths, zero_params):
    windows = Regions(models.build("fast_rcnn_small"), RegionSettings()).windows
    # Measured on the 2,000 training canvases: 0.991 at IoU >= 0.5 (the windows before, 4 square sizes
    # every 8 pixels: 0.858).
    assert covered(windows, truths, 0.5) >= 0.98


@pytest.mark.parametrize("name", ["fast_rcnn", "faster_rcnn", "mask_rcnn"])
def test_a_feature_stride_the_backbones_cannot_make_is_refused(name):
    with pytest.raises(UnknownModelError, match=f"{name}: stride must be one of \\(4, 8, 16\\).*found 32"):
        models.build(name, backbone="resnet18", input_size=64, width=0.125, stride=32)


@pytest.mark.parametrize("backbone, size, stride, side", [("vgg16_bn", 64, 8, 8), ("resnet18", 64, 8, 8),
                                                         ("resnet18", 64, 4, 16), ("resnet18", 100, 16, 7)])
def test_the_stride_option_sets_the_map_the_regions_and_the_anchors_use(backbone, size, stride, side, zero_params):
    """Anchors one cell apart, also where ResNet's padded strides round 100 / 16 up to a 7x7 map."""
    graph = models.build("faster_rcnn", backbone=backbone, input_size=size, width=0.125, stride=stride)
    assert graph.type_of("rpn.conv").shape[2:] == (side, side)
    assert graph.node("roi_pool").attrs["spatial_scale"] == pytest.approx(1 / stride)
    box = anchors(graph)[side * side + 1 * side + 2]  # the second anchor of row 1, column 2
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, [2.5 * stride, 1.5 * stride])
