"""CPU-sized R-CNN family for the digit-detection set: 64x64 inputs, 10 digit classes plus the background.

- ``fast_rcnn_small``: Fast R-CNN on VGG-16 at 1/8 width (channels 8-64, stride 16: a 4x4 feature map),
  7x7 RoI pooling, fc6/fc7 of 512, no dropout (2,127,583 parameters).
- ``faster_rcnn_small``: the same plus the RPN (64 channels), 6 anchors per cell (sizes 14, 24 and 36
  pixels, height/width 1 and 1.5: the digits' 13-32 pixels). The anchors are a constant output
  ``anchors`` (K, 4), as SSD's default boxes are, so a trained or saved model proposes with the anchors
  it was trained with.
- ``rcnn_small``: R-CNN's AlexNet on 67x67 warps (the smallest it takes), no dropout.
"""

from functools import partial

import numpy as np

from cnngraph.models import register
from cnngraph.models.fast_rcnn import fast_rcnn
from cnngraph.models.faster_rcnn import anchors, faster_rcnn
from cnngraph.models.rcnn import rcnn

SMALL = {"num_classes": 11, "input_size": 64, "dropout": 0.0}
ANCHOR_SIZES, ANCHOR_RATIOS = (14, 24, 36), (1.0, 1.5)


def faster_rcnn_small(num_classes: int = 11, input_size: int = 64, seed: int = 0):
    graph = faster_rcnn("vgg16", num_classes, input_size, width=0.125, anchor_sizes=ANCHOR_SIZES,
                        anchor_ratios=ANCHOR_RATIOS, dropout=0.0, seed=seed)
    graph.append_constant("anchors", anchors(graph, ANCHOR_SIZES, ANCHOR_RATIOS).astype(np.float32))
    graph.outputs.append("anchors")
    graph.verify()
    return graph


register("fast_rcnn_small", "detection", "Fast R-CNN on a 1/8-width VGG-16, 64x64, 10 classes: for CPU training")(
    partial(fast_rcnn, backbone="vgg16", width=0.125, **SMALL))
register("faster_rcnn_small", "detection", "Faster R-CNN on a 1/8-width VGG-16, 64x64, anchors 14-36 px: for CPU "
         "training")(faster_rcnn_small)
register("rcnn_small", "detection", "R-CNN's AlexNet on 67x67 warps of 64x64 images, 10 classes: for CPU training")(
    partial(rcnn, crop=67, **SMALL))
