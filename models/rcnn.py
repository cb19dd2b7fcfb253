"""R-CNN (Girshick et al., 2014): every region proposal warped to 227x227 and run through the whole
classifier, the paper's Caffe AlexNet (conv1-5 with LRN and two groups, fc6, fc7).

Inputs are the images ``image`` (N, 3, S, S) and the proposals ``rois`` (R, 5), rows
``(batch_index, x1, y1, x2, y2)`` in pixels (from selective search in the paper; any proposer here).
The warp is a RoiAlign of the image itself (bilinear, 2x2 samples per output pixel), so the crops
never leave the graph. Outputs: ``cls_score`` (R, K + 1), the fine-tuned (K + 1)-way layer (the
paper then trains one linear SVM per class on fc7; this softmax is its fine-tuning stage), and
``bbox_pred`` (R, 4 (K + 1)), the paper's class-specific box regression from pool5 features.
Not done: the 16 pixels of context the paper adds around each proposal before warping.

Parameters (21 classes, 227x227 warps), by hand as in models/alexnet.py: conv1-5 34,944 + 307,456 +
885,120 + 663,936 + 442,624 = 2,334,080; fc6 37,752,832; fc7 16,781,312; cls_score 4,096 x 21 + 21 =
86,037; bbox_pred 9,216 x 84 + 84 = 774,228. Total 57,728,489.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register
from cnngraph.models.alexnet import classifier, conv_layer


@register("rcnn", "detection", "R-CNN: each region warped to 227x227 through the paper's AlexNet")
def rcnn(num_classes: int = 21, input_size: int = 224, crop: int = 227, dropout: float = 0.5, seed: int = 0):
    """``num_classes`` counts the background; ``crop`` is the warp size (227 in the paper; 67 is the
    smallest the network takes, for quick runs)."""
    image = dsl.input("image", (3, input_size, input_size))
    rois = dsl.input("rois", (5,), leading="R")
    y = dsl.roi_align(image, rois, crop, sampling_ratio=2, name="warp")
    y = conv_layer(y, 1, 96, 11, stride=4, norm="lrn-pool")
    y = conv_layer(y, 2, 256, 5, padding=2, groups=2, norm="lrn-pool")
    y = conv_layer(y, 3, 384, 3, padding=1)
    y = conv_layer(y, 4, 384, 3, padding=1, groups=2)
    pool5 = conv_layer(y, 5, 256, 3, padding=1, groups=2, norm="pool")
    scores = dsl.identity(classifier(pool5, num_classes, dropout), name="cls_score")
    boxes = dsl.linear(dsl.flatten(pool5, name="pool5_flat"), 4 * num_classes, init="normal_0.01", name="bbox_pred")
    return dsl.Model([image, rois], [scores, boxes], name="rcnn", seed=seed)
