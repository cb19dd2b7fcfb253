"""Mask R-CNN (He et al., 2017), the paper's ResNet-C4 variant: Faster R-CNN with RoIAlign in place of RoI max
pooling, and a mask branch beside the class and box heads.

Per region (``rois`` (R, 5), as Faster R-CNN): RoIAlign 14x14 on the stride-16 map (layer1-3, "C4"; half-pixel
coordinates as torchvision's ``aligned=True``, 2x2 samples per bin), then res5 (layer4, stride 2: 7x7), shared
by both heads (the paper's Figure 4, left): global average pooling into ``cls_score`` and ``bbox_pred``; and a
2x2 stride-2 transposed convolution to 256 channels, ReLU, and a 1x1 convolution to one M x M mask logit map
per class (M = 14). Outputs: ``rpn_logits`` (N, 2, K), ``rpn_deltas`` (N, K, 4), ``cls_score`` (R, C),
``bbox_pred`` (R, 4 C) and ``mask_logits`` (R, C, 14, 14), C counting the background (its channel is never
trained, as torchvision's). Train with ``cnngraph.detection.losses.MaskRcnnLoss`` on targets from
``rpn_targets``, ``rcnn_targets`` and ``cnngraph.detection.masks.mask_targets``.

The RPN is Faster R-CNN's (models/faster_rcnn.py: a 512-channel 3x3 convolution, 3 sizes x 3 ratios), on the
1,024-channel C4 map. ``backbone`` is any ResNet of the zoo; ``width`` scales every layer (resnet18 at width
1/4 and a 64-pixel input is a CPU-sized network of the same shape).

Parameters (ResNet-50, 81 classes: COCO's 80 and the background; no paper gives the count, derived here):
torchvision's ResNet-50 without fc 25,557,032 - 2,049,000 = 23,508,032; cls_score 2,048 x 81 + 81 = 165,969;
bbox_pred 2,048 x 324 + 324 = 663,876; RPN 1,024 x 512 x 9 + 512 = 4,719,104 and 512 x 6 x 9 + 54 = 27,702;
mask branch 2,048 x 256 x 2 x 2 + 256 = 2,097,408 and 256 x 81 + 81 = 20,817. Total 31,202,908.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnngraph.errors import UnknownModelError
from cnngraph.frontends import dsl
from cnngraph.models import register, scaled
from cnngraph.models.fast_rcnn import STRIDE, detection_heads, halvings, resnet_strided
from cnngraph.models.faster_rcnn import RATIOS, SIZES, rpn
from cnngraph.models.resnet import LAYERS, trunk

MASK_SIZE = 14  # M for the C4 head: 7x7 res5 output, doubled by the transposed convolution
ALIGN_SIZE = 14  # RoIAlign's output, halved by res5's stride


def mask_head(features, num_classes: int, width: float):
    """(R, C, 2h, 2w) mask logits from (R, D, h, w) per-region features: deconv 2x2/2 + ReLU, 1x1 conv."""
    y = dsl.conv_transpose2d(features, scaled(256, width), 2, stride=2, init="he_fan_out", name="mask_head.deconv")
    y = dsl.relu(y, name="mask_head.relu")
    return dsl.conv2d(y, num_classes, 1, init="he_fan_out", name="mask_logits")


def mask_rcnn(backbone: str = "resnet50", num_classes: int = 81, input_size: int = 224, width: float = 1.0,
              anchor_sizes: Sequence[float] = SIZES, anchor_ratios: Sequence[float] = RATIOS, seed: int = 0,
              stride: int = STRIDE):
    """``num_classes`` counts the background (81 for COCO's 80); ``stride``: the C4 map's (models/fast_rcnn.py)."""
    if backbone not in LAYERS:
        raise UnknownModelError(f"mask_rcnn: unknown backbone '{backbone}'; choose from {sorted(LAYERS)}")
    halvings("mask_rcnn", stride)
    image = dsl.input("image", (3, input_size, input_size))
    rois = dsl.input("rois", (5,), leading="R")
    shared = trunk(image, backbone, (1, 2, 3), width=width, strided=resnet_strided(stride))
    logits, deltas = rpn(shared, scaled(512, width), len(anchor_sizes) * len(anchor_ratios))
    aligned = dsl.roi_align(shared, rois, ALIGN_SIZE, spatial_scale=1 / stride, sampling_ratio=2, name="roi_align")
    res5 = trunk(aligned, backbone, (4,), width=width)
    pooled = dsl.flatten(dsl.global_avg_pool(res5, name="avgpool"), name="flatten")
    cls, box = detection_heads(pooled, num_classes)
    masks = mask_head(res5, num_classes, width)
    return dsl.Model([image, rois], [logits, deltas, cls, box, masks], name=f"mask_rcnn_{backbone}", seed=seed)


register("mask_rcnn", "detection", "Mask R-CNN (C4): RoIAlign, res5 head, box and per-class mask branches")(mask_rcnn)
