"""SSD (Liu et al. 2016): class scores and box offsets predicted by a 3x3 convolution at every cell
of several feature maps, one set per default box (``cnngraph.detection.anchors``), trained by
``MultiBoxLoss`` (``cnngraph.train.detection_losses``: matching at IoU 0.5, smooth-L1 offsets,
cross-entropy with 3:1 hard negative mining).

Three outputs: ``loc`` (N, A, 4) offsets encoded against the default boxes with variances (0.1,
0.1, 0.2, 0.2), ``conf`` (N, A, C + 1) logits with class 0 the background, and ``anchors`` (A, 4),
the default boxes as [0, 1] corners (a constant, so a saved or exported model decodes itself).
Each head's (N, k*4, H, W) map is transposed to (N, H, W, k*4) and reshaped, so anchor ``i`` lines
up with prediction ``i`` (the layout of ``ssd_default_boxes``).

Backbones: ``vgg16`` is SSD300 as in the paper: torchvision's VGG-16 features with pool3 in ceil
mode and pool5 3x3 stride 1, fc6 and fc7 as a dilated (6) 3x3 and a 1x1 convolution, extra layers
to 10x10, 5x5, 3x3 and 1x1, sources conv4_3 (38x38, L2-normalised with a learned per-channel
scale initialised to 20), fc7 (19x19) and the extras, 4, 6, 6, 6, 4, 4 boxes per cell: 8,732
default boxes. ``small`` is conv-BN-ReLU layers with sources at strides 4, 8 and 16, for CPU training.

Parameters of ``ssd`` (VGG-16, 20 classes + background, 300 input; derived by hand, asserted in
tests/test_detection_models.py; a 3x3 conv c_in -> c_out has 9*c_in*c_out + c_out):

- VGG-16 features to conv5_3: 14,714,688 (torchvision's vgg16 minus its classifier)
- fc6 3x3 512->1024: 4,719,616; fc7 1x1 1024->1024: 1,049,600; conv4_3 scale: 512 (a depthwise 1x1 conv)
- extras: 1x1 1024->256 262,400 + 3x3 s2 256->512 1,180,160; 1x1 512->128 65,664 + 3x3 s2 128->256
  295,168; twice (1x1 256->128 32,896 + 3x3 128->256 295,168): 2,459,520
- loc heads (k*4 outputs) on 512, 1024, 512, 256, 256, 256 channels with k = 4, 6, 6, 6, 4, 4:
  73,744 + 221,208 + 110,616 + 55,320 + 36,880 + 36,880 = 534,648
- conf heads (k*21 outputs): 387,156 + 1,161,342 + 580,734 + 290,430 + 193,620 + 193,620 = 2,806,902
- total: 26,285,486
"""

from __future__ import annotations

from functools import partial

import numpy as np

from cnngraph.detection.anchors import ssd_boxes_per_cell, ssd_default_boxes
from cnngraph.frontends import dsl
from cnngraph.models import register, scaled
from cnngraph.models import vgg as vgg_models
from cnngraph.models.yolo import small as small_layers

RATIOS_2 = (1.0, 2.0, 0.5)
RATIOS_3 = (1.0, 2.0, 0.5, 3.0, 1 / 3)
# (1x1 channels, 3x3 channels, stride, padding) of SSD300's extra layers
EXTRAS = [(256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0)]
SCALES_300 = (0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.075)  # the reference code's: conv4_3 at 0.1, then s_min .2


def _l2_norm(x, name: str):
    """ParseNet's L2 normalisation over channels with a learned per-channel scale starting at 20: written
    as x_n * 20 + x_n * w, w a depthwise 1x1 convolution initialised to zero (the scale is 20 + w)."""
    with dsl.scope(name):
        norm = dsl.sqrt(dsl.add(dsl.reduce_sum(dsl.mul(x, x), (1,)), dsl.constant(np.full((1, 1, 1), 1e-10))))
        unit = dsl.mul(x, dsl.reciprocal(norm))
        learned = dsl.conv2d(unit, x.type.shape[1], 1, groups=x.type.shape[1], bias=False, init="zeros",
                             name="weight")
        return dsl.add(dsl.mul(unit, dsl.constant(np.full((1, 1, 1), 20.0))), learned)


def vgg16_sources(x, width: float = 1.0):
    """SSD300's six source maps on VGG-16."""
    taps = []

    def pool(y, name):
        taps.append(y)
        if len(taps) == 5:
            return dsl.max_pool2d(y, 3, 1, padding=1, name=name)
        return dsl.max_pool2d(y, 2, 2, ceil_mode=len(taps) == 3, name=name)

    y, _ = vgg_models.features(x, "vgg16", False, pool=pool, width=width)
    y = dsl.relu(dsl.conv2d(y, scaled(1024, width), 3, padding=6, dilation=6, name="fc6"), name="fc6.relu")
    y = dsl.relu(dsl.conv2d(y, scaled(1024, width), 1, name="fc7"), name="fc7.relu")
    sources = [_l2_norm(taps[3], "conv4_3_norm"), y]
    for i, (c1, c3, stride, padding) in enumerate(EXTRAS):
        with dsl.scope(f"extras.{i}"):
            y = dsl.relu(dsl.conv2d(y, scaled(c1, width), 1))
            y = dsl.relu(dsl.conv2d(y, scaled(c3, width), 3, stride=stride, padding=padding))
        sources.append(y)
    return sources


def small_sources(x, width: float = 1.0):
    """Strides 4, 8 and 16: 16x16, 8x8 and 4x4 maps on a 64x64 input. Stride 4 because digit-detection's
    digits are 13 to 32 pixels: on an 8x8 first map only 84% of them have a default box at IoU >= 0.5
    (the bound on what matching can train), on 16x16 99.7% (tests/test_detection_anchors.py)."""
    y = small_layers(x, [(3, 16, 1), "M", (3, 32, 1), "M", (3, 64, 1), (3, 64, 1)], width=width)
    sources = [y]
    for i in range(2):
        y = small_layers(y, [(1, 64, 1), (3, 128, 2)], prefix=f"extras.{i}", width=width)
        sources.append(y)
    return sources


BACKBONES = {"vgg16": (vgg16_sources, [RATIOS_2, RATIOS_3, RATIOS_3, RATIOS_3, RATIOS_2, RATIOS_2], SCALES_300),
             "small": (small_sources, [RATIOS_2] * 3, (0.2, 0.35, 0.55, 0.75))}


def _flat(y, per_box: int, name: str):
    """(N, k * per_box, H, W) -> (N, H * W * k, per_box)."""
    _, channels, h, w = y.type.shape
    y = dsl.layer("Transpose", [y], f"{name}.nhwc", perm=(0, 2, 3, 1))
    return dsl.reshape(y, (h * w * (channels // per_box), per_box), name=f"{name}.flat")


def ssd(num_classes: int = 20, input_size: int = 300, backbone: str = "vgg16", in_channels: int = 3,
        width: float = 1.0, seed: int = 0):
    """SSD for ``num_classes`` object classes (the scores have one more: background, class 0); ``width``
    scales the backbone's channels (1: as published)."""
    if backbone not in BACKBONES:
        raise ValueError(f"ssd: backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    make_sources, ratios, scales = BACKBONES[backbone]
    x = dsl.input("image", (in_channels, input_size, input_size))
    locs, confs, sizes = [], [], []
    for level, (y, level_ratios) in enumerate(zip(make_sources(x, width), ratios)):
        k = ssd_boxes_per_cell(level_ratios)
        sizes.append(y.type.shape[2:])
        locs.append(_flat(dsl.conv2d(y, k * 4, 3, padding=1, name=f"loc.{level}"), 4, f"loc.{level}"))
        confs.append(_flat(dsl.conv2d(y, k * (num_classes + 1), 3, padding=1, name=f"conf.{level}"),
                           num_classes + 1, f"conf.{level}"))
    loc = dsl.concat(locs, axis=1, name="loc")
    conf = dsl.concat(confs, axis=1, name="conf")
    anchors = dsl.constant(ssd_default_boxes(sizes, ratios, scales).astype(np.float32), name="anchors")
    return dsl.Model(x, [loc, conf, anchors], name="ssd" if backbone == "vgg16" else f"ssd_{backbone}", seed=seed)


register("ssd", "detection", "SSD300: VGG-16, 6 feature maps, 8,732 default boxes, 20 classes")(ssd)
register("ssd_small", "detection", "SSD head on a conv-BN backbone, 64x64, 3 feature maps: for CPU training")(
    partial(ssd, num_classes=10, input_size=64, backbone="small"))
