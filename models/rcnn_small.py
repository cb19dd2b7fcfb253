"""CPU-sized R-CNN family for the digit-detection set: 64x64 inputs, 10 digit classes plus the background.

The shared feature map is at stride 4 (16x16): at the papers' stride 16 a 64x64 image gives a 4x4 map, whose
anchors (every 16 px) left 95% of the digits (13-32 px) without an anchor at the RPN's foreground IoU 0.7 and
67% below 0.5 (tests/test_rcnn_small_anchors.py), and whose RoI pooling reads one or two cells per digit.

- ``fast_rcnn_small``: Fast R-CNN on VGG-16 with BatchNorm (``vgg16_bn``: the plain stack does not learn
  from scratch in minutes) at 1/8 width, cut after conv3_3 (channels 8-32, stride 4), 7x7 RoI pooling,
  fc6/fc7 of 512, no dropout. The whole 13-layer stack at stride 4 (pools 3 and 4 dropped) learned the
  digits' classes far slower: trained on regions sampled from the truths only (3 epochs of 500 canvases), it
  classified 29% of held-out truths right, the cut stack 58% in half the time.
- ``faster_rcnn_small``: the same plus the RPN (64 channels), 6 anchors per cell of 4 px (sizes 14, 20 and
  28 pixels, height/width 1 and 1.5: the digits are 13-32 px tall, 1.4 times as tall as wide at the
  median). The anchors are a constant output ``anchors`` (K, 4), as SSD's default boxes are, so a trained
  or saved model proposes with the anchors it was trained with.
- ``rcnn_small``: R-CNN's AlexNet on 67x67 warps (the smallest it takes), no dropout.
- ``mask_rcnn_small``: Mask R-CNN's C4 layout (models/mask_rcnn.py) on a ResNet-18 at 1/4 width (channels
  16-128; layer2 and layer3 at stride 1, so the C4 map is 16x16), with ``faster_rcnn_small``'s anchors as
  its constant ``anchors`` output.

Parameters, by hand. The 7 convolutions of 8, 8, 16, 16, 32, 32 and 32 channels: 224 + 584 + 1,168 +
2,320 + 4,640 + 2 x 9,248 = 27,432, their BatchNorms 2 x 144 = 288; fc6 (32 x 7 x 7 =) 1,568 x 512 + 512 =
803,328; fc7 262,656; cls_score 512 x 11 + 11 = 5,643; bbox_pred 512 x 44 + 44 = 22,572: ``fast_rcnn_small``
1,121,919. The RPN: 3 x 3 x 32 x 64 + 64 = 18,496, 64 x 12 + 12 = 780 and 64 x 24 + 24 = 1,560:
``faster_rcnn_small`` 1,142,755 (the anchors are a constant, not a parameter).
``rcnn_small``: conv1-5 2,334,080 (models/rcnn.py); a 67x67 warp leaves pool5 at 256 x 1 x 1, so fc6
256 x 4,096 + 4,096 = 1,052,672; fc7 16,781,312; cls_score 4,096 x 11 + 11 = 45,067; bbox_pred 256 x 44 +
44 = 11,308: 20,224,439.
``mask_rcnn_small``: the ResNet-18 trunk at 1/4 width, convolutions without bias and 2 parameters per
BatchNorm channel: stem 2,352 + 32; layer1 4 x (2,304 + 32) = 9,344; layer2 4,672 + 9,280 + 576
(downsample) + 2 x 9,280 = 33,088; layer3 18,560 + 36,992 + 2,176 + 2 x 36,992 = 131,712; layer4 (res5,
per region) 73,984 + 147,712 + 8,448 + 2 x 147,712 = 525,568: 702,096. The RPN on 64 channels, 128 wide:
73,856 + 128 x 12 + 12 = 1,548 + 128 x 24 + 24 = 3,096; cls_score 128 x 11 + 11 = 1,419; bbox_pred
128 x 44 + 44 = 5,676; the mask branch's deconvolution 128 x 64 x 2 x 2 + 64 = 32,832 and 1x1
convolution 64 x 11 + 11 = 715. Total 821,238.
"""

from functools import partial, wraps

import numpy as np

from cnngraph.models import register
from cnngraph.models.fast_rcnn import fast_rcnn
from cnngraph.models.faster_rcnn import anchors, faster_rcnn
from cnngraph.models.mask_rcnn import mask_rcnn
from cnngraph.models.rcnn import rcnn

SMALL = {"num_classes": 11, "input_size": 64, "dropout": 0.0}
STRIDE = 4  # the shared map's: 16x16 (see above)
ANCHOR_SIZES, ANCHOR_RATIOS = (14, 20, 28), (1.0, 1.5)


def with_anchors(graph):
    """``graph`` with its RPN's anchors as the constant output ``anchors``, so they travel with the model."""
    graph.append_constant("anchors", anchors(graph, ANCHOR_SIZES, ANCHOR_RATIOS).astype(np.float32))
    graph.outputs.append("anchors")
    graph.verify()
    return graph


def faster_rcnn_small(num_classes: int = 11, input_size: int = 64, seed: int = 0):
    return with_anchors(faster_rcnn("vgg16_bn", num_classes, input_size, width=0.125, anchor_sizes=ANCHOR_SIZES,
                                    anchor_ratios=ANCHOR_RATIOS, dropout=0.0, seed=seed, stride=STRIDE))


def mask_rcnn_small(num_classes: int = 11, input_size: int = 64, seed: int = 0):
    return with_anchors(mask_rcnn("resnet18", num_classes, input_size, width=0.25, anchor_sizes=ANCHOR_SIZES,
                                  anchor_ratios=ANCHOR_RATIOS, seed=seed, stride=STRIDE))


def named(name: str, build):
    """``build`` whose graph carries the zoo name, which keys its training defaults (train/detection_defaults)."""
    @wraps(build)  # keeps build's signature, which models.build checks options against
    def built(**options):
        graph = build(**options)
        graph.name = name
        return graph

    return built


SMALL_MODELS = {
    "fast_rcnn_small": ("Fast R-CNN on conv1-3 of a 1/8-width VGG-16 (stride 4), 64x64, 10 classes: for CPU training",
                        partial(fast_rcnn, backbone="vgg16_bn", width=0.125, stride=STRIDE, **SMALL)),
    "faster_rcnn_small": ("Faster R-CNN on conv1-3 of a 1/8-width VGG-16, anchors 14-28 px every 4: for CPU training",
                          faster_rcnn_small),
    "mask_rcnn_small": ("Mask R-CNN (C4) on a 1/4-width ResNet-18 at stride 4, anchors 14-28 px: for CPU training",
                        mask_rcnn_small),
    "rcnn_small": ("R-CNN's AlexNet on 67x67 warps of 64x64 images, 10 classes: for CPU training",
                   partial(rcnn, crop=67, **SMALL)),
}
for _name, (_summary, _build) in SMALL_MODELS.items():
    register(_name, "detection", _summary)(named(_name, _build))
