"""CPU-sized R-CNN family for the digit-detection set: 64x64 inputs, 10 digit classes plus the background.

- ``fast_rcnn_small``: Fast R-CNN on VGG-16 with BatchNorm (``vgg16_bn``: the plain stack does not learn
  from scratch in minutes) at 1/8 width (channels 8-64, stride 16: a 4x4 feature map), 7x7 RoI pooling,
  fc6/fc7 of 512, no dropout.
- ``faster_rcnn_small``: the same plus the RPN (64 channels), 6 anchors per cell (sizes 14, 24 and 36
  pixels, height/width 1 and 1.5: the digits' 13-32 pixels). The anchors are a constant output
  ``anchors`` (K, 4), as SSD's default boxes are, so a trained or saved model proposes with the anchors
  it was trained with.
- ``rcnn_small``: R-CNN's AlexNet on 67x67 warps (the smallest it takes), no dropout.

Parameters, by hand. The 13 convolutions of 8, 8, 16, 16, 32, 32, 32 and six times 64 channels: 224 + 584
+ 1,168 + 2,320 + 4,640 + 2 x 9,248 + 18,496 + 5 x 36,928 = 230,568, their BatchNorms 2 x 528 = 1,056;
fc6 3,136 x 512 + 512 = 1,606,144; fc7 262,656; cls_score 512 x 11 + 11 = 5,643; bbox_pred 512 x 44 + 44 =
22,572: ``fast_rcnn_small`` 2,128,639. The RPN: 3 x 3 x 64 x 64 + 64 = 36,928, 64 x 12 + 12 = 780 and
64 x 24 + 24 = 1,560: ``faster_rcnn_small`` 2,167,907 (the anchors are a constant, not a parameter).
``rcnn_small``: conv1-5 2,334,080 (models/rcnn.py); a 67x67 warp leaves pool5 at 256 x 1 x 1, so fc6
256 x 4,096 + 4,096 = 1,052,672; fc7 16,781,312; cls_score 4,096 x 11 + 11 = 45,067; bbox_pred 256 x 44 +
44 = 11,308: 20,224,439.
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
    graph = faster_rcnn("vgg16_bn", num_classes, input_size, width=0.125, anchor_sizes=ANCHOR_SIZES,
                        anchor_ratios=ANCHOR_RATIOS, dropout=0.0, seed=seed)
    graph.append_constant("anchors", anchors(graph, ANCHOR_SIZES, ANCHOR_RATIOS).astype(np.float32))
    graph.outputs.append("anchors")
    graph.verify()
    return graph


register("fast_rcnn_small", "detection", "Fast R-CNN on a 1/8-width VGG-16, 64x64, 10 classes: for CPU training")(
    partial(fast_rcnn, backbone="vgg16_bn", width=0.125, **SMALL))
register("faster_rcnn_small", "detection", "Faster R-CNN on a 1/8-width VGG-16, 64x64, anchors 14-36 px: for CPU "
         "training")(faster_rcnn_small)
register("rcnn_small", "detection", "R-CNN's AlexNet on 67x67 warps of 64x64 images, 10 classes: for CPU training")(
    partial(rcnn, crop=67, **SMALL))
