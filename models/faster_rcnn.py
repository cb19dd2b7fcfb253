"""Faster R-CNN (Ren et al., 2015): a region proposal network on Fast R-CNN's shared feature map.

The RPN is a 3x3 convolution and two sibling 1x1 convolutions: per position, for each of k anchors
(3 sizes x 3 aspect ratios), a two-class (background, object) score and 4 box deltas. Outputs:

- ``rpn_logits`` (N, 2, K): the two classes along axis 1, K = k H W anchors ordered (anchor, row,
  column), as :func:`anchors` returns them; softmax over axis 1 is the per-position objectness.
- ``rpn_deltas`` (N, K, 4); ``cls_score`` (R, C) and ``bbox_pred`` (R, 4 C): Fast R-CNN's heads on
  the regions ``rois`` (R, 5).

Proposals come from the RPN's outputs on the host (``cnngraph.detection.proposals.propose``) and go
back in as ``rois``: the paper's approximate joint training, where no gradient flows through the
proposal boxes. The four losses are ``cnngraph.detection.losses.FasterRcnnLoss``.

Parameters (VGG-16, 21 classes): Fast R-CNN's 134,690,729 (models/fast_rcnn.py) plus the RPN: the 3x3
convolution 512 x 512 x 9 + 512 = 2,359,808 and the output layers 512 x (2 + 4) x 9 + 54 = 27,702
(the paper's "2.8 x 10^4 parameters", 512 x (4 + 2) x 9 = 27,648 weights). Total 137,078,239.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnngraph.detection.anchors import rpn_anchors
from cnngraph.frontends import dsl
from cnngraph.ir import Graph
from cnngraph.models import register, scaled
from cnngraph.models.fast_rcnn import STRIDE, detection_heads, inputs_and_trunk

SIZES = (128, 256, 512)
RATIOS = (0.5, 1.0, 2.0)


def rpn(features, channels: int, per_cell: int):
    """(logits (N, 2, K), deltas (N, K, 4)); channels are laid out (class, anchor) and (coordinate, anchor)."""
    y = dsl.relu(dsl.conv2d(features, channels, 3, padding=1, init="normal_0.01", name="rpn.conv"), name="rpn.relu")
    cells = features.type.shape[2] * features.type.shape[3]
    logits = dsl.conv2d(y, 2 * per_cell, 1, init="normal_0.01", name="rpn.cls_logits")
    deltas = dsl.conv2d(y, 4 * per_cell, 1, init="normal_0.01", name="rpn.bbox_pred")
    logits = dsl.reshape(logits, (2, per_cell * cells), name="rpn_logits")
    deltas = dsl.reshape(deltas, (4, per_cell * cells), name="rpn.deltas_by_coordinate")
    return logits, dsl.layer("Transpose", [deltas], name="rpn_deltas", perm=(0, 2, 1))


def faster_rcnn(backbone: str = "vgg16", num_classes: int = 21, input_size: int = 224, width: float = 1.0,
                anchor_sizes: Sequence[float] = SIZES, anchor_ratios: Sequence[float] = RATIOS,
                dropout: float = 0.5, seed: int = 0, stride: int = STRIDE):
    """``num_classes`` counts the background; the RPN's 3x3 convolution has 512 channels (scaled by ``width``);
    ``stride``: the shared map's, which is the anchors' spacing too."""
    image, rois, shared, head = inputs_and_trunk("faster_rcnn", backbone, input_size, width, stride)
    logits, deltas = rpn(shared, scaled(512, width), len(anchor_sizes) * len(anchor_ratios))
    cls, box = detection_heads(head(rois, dropout), num_classes)
    return dsl.Model([image, rois], [logits, deltas, cls, box], name=f"faster_rcnn_{backbone}", seed=seed)


def anchors(graph: Graph, sizes: Sequence[float] = SIZES, ratios: Sequence[float] = RATIOS) -> np.ndarray:
    """The (K, 4) anchors of a built graph, in ``rpn_logits``' order (anchor, row, column), one cell of the
    shared map apart: the inverse of the region pooling's ``spatial_scale`` (16 as published)."""
    height, width = graph.type_of("rpn.conv").shape[2:]
    stride = 1 / next(n.attrs["spatial_scale"] for n in graph.nodes if n.op in ("RoiPool", "RoiAlign"))
    grid = rpn_anchors((height, width), (stride, stride), sizes, ratios)
    return grid.reshape(height * width, -1, 4).transpose(1, 0, 2).reshape(-1, 4)


register("faster_rcnn", "detection", "Faster R-CNN: RPN + Fast R-CNN heads on one VGG-16 feature map")(faster_rcnn)
