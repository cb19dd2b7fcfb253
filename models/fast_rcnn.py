"""Fast R-CNN (Girshick, 2015): one shared feature map per image, RoI max pooling of each proposal, and two
sibling heads, K + 1 class scores (background is class 0) and 4 box deltas per class.

Inputs are the image batch ``image`` (N, 3, S, S) and the proposals ``rois`` (R, 5), rows
``(batch_index, x1, y1, x2, y2)`` in image pixels; outputs ``cls_score`` (R, K + 1) and ``bbox_pred``
(R, 4 (K + 1)). Train with ``cnngraph.detection.losses.FastRcnnLoss`` on targets from
``cnngraph.detection.targets.rcnn_targets``.

Backbones, each at stride 16 (``spatial_scale`` 1/16) as published; ``stride`` 8 or 4 is for small images,
where a stride-16 map is too coarse to place a 13-pixel object (models/rcnn_small.py): VGG's stack is cut
before the pool past it (conv4_3 or conv3_3), ResNet's layer3 (and layer2) keep stride 1 (same parameters):

- ``vgg16`` (the paper): conv1_1 .. conv5_3 (torchvision's ``features.0-29``, the last pool dropped),
  7x7 RoI pooling, fc6 and fc7 of 4,096 with dropout. ``width`` scales every layer (1/8 is a CPU-sized
  network of the same shape).
- ``vgg16_bn``: the same with a BatchNorm after every convolution (torchvision's ``vgg16_bn``).
- ``resnet18`` / ``resnet50`` (He et al., 2016, "ResNet-C4"): stem and layer1-3 as the trunk, 14x14 RoI
  pooling, layer4 (its stride 2 makes 7x7) and global average pooling per region.

Parameter counts (no paper gives them; derived from torchvision's published counts):

- vgg16, 21 classes (VOC): conv layers 138,357,544 - 123,642,856 (classifier) = 14,714,688; fc6
  25,088 x 4,096 + 4,096 = 102,764,544; fc7 16,781,312; cls_score 4,096 x 21 + 21 = 86,037; bbox_pred
  4,096 x 84 + 84 = 344,148. Total 134,690,729.
- resnet50, 21 classes: 25,557,032 - 2,049,000 (fc) = 23,508,032; cls_score 2,048 x 21 + 21 = 43,029;
  bbox_pred 2,048 x 84 + 84 = 172,116. Total 23,723,177.
"""

from functools import partial

from cnngraph.errors import UnknownModelError
from cnngraph.frontends import dsl
from cnngraph.models import register, scaled
from cnngraph.models.resnet import trunk
from cnngraph.models.vgg import CONFIGS, features

STRIDE = 16  # the papers' feature map
HALVINGS = {4: 2, 8: 3, 16: 4}  # feature map stride: how many times the backbone halves the image


def halvings(model: str, stride: int) -> int:
    """``HALVINGS[stride]``, or an UnknownModelError naming the strides a backbone can make."""
    if stride not in HALVINGS:
        raise UnknownModelError(f"{model}: stride must be one of {tuple(HALVINGS)} (pixels per feature map "
                                f"cell), found {stride!r}")
    return HALVINGS[stride]


def vgg16_backbone(image, width: float = 1.0, batch_norm: bool = False, stride: int = STRIDE):
    """Shared feature map (the stack up to the pool past ``stride``) and the per-region head: RoI pooling 7x7,
    fc6, fc7. ``batch_norm``: torchvision's vgg16_bn convolutions, which train from scratch where the plain
    stack stalls."""
    config = CONFIGS["vgg16"]
    cut = [k for k, v in enumerate(config) if v == "M"][halvings("vgg16", stride)]
    shared, _ = features(image, config[:cut], batch_norm=batch_norm, width=width)

    def head(rois, dropout: float):
        pooled = dsl.roi_pool(shared, rois, 7, spatial_scale=1 / stride, name="roi_pool")
        y = dsl.flatten(pooled, name="flatten")
        for fc, name in ((0, "fc6"), (3, "fc7")):
            y = dsl.relu(dsl.linear(y, scaled(4096, width), init="normal_0.01", name=f"classifier.{fc}"),
                         name=f"{name}_relu")
            y = dsl.dropout(y, dropout, name=f"{name}_dropout")
        return y

    return shared, head


def resnet_backbone(image, depth: str, width: float = 1.0, stride: int = STRIDE):
    """layer1-3 shared; per region: RoI pooling 14x14, layer4, global average pooling."""
    shared = trunk(image, depth, (1, 2, 3), width=width, strided=resnet_strided(stride))

    def head(rois, dropout: float):
        pooled = dsl.roi_pool(shared, rois, 14, spatial_scale=1 / stride, name="roi_pool")
        return dsl.flatten(dsl.global_avg_pool(trunk(pooled, depth, (4,), width=width), name="avgpool"),
                           name="flatten")

    return shared, head


def resnet_strided(stride: int) -> tuple[int, ...]:
    """The stages of layer1-3 that halve the map for a C4 map of ``stride`` (the stem's conv and pool make 4)."""
    return (2, 3)[:HALVINGS[stride] - 2]


BACKBONES = {"vgg16": vgg16_backbone, "vgg16_bn": partial(vgg16_backbone, batch_norm=True),
             **{d: partial(resnet_backbone, depth=d) for d in ("resnet18", "resnet50")}}


def detection_heads(features, num_classes: int):
    """The two sibling layers: class scores (background first) and class-specific box deltas."""
    cls = dsl.linear(features, num_classes, init="normal_0.01", name="cls_score")
    box = dsl.linear(features, 4 * num_classes, init="normal_0.01", name="bbox_pred")
    return cls, box


def inputs_and_trunk(model: str, backbone: str, input_size: int, width: float, stride: int = STRIDE):
    """The two inputs (images, regions), the shared feature map and the per-region head of ``backbone``."""
    if backbone not in BACKBONES:
        raise UnknownModelError(f"{model}: unknown backbone '{backbone}'; choose from {sorted(BACKBONES)}")
    halvings(model, stride)
    image = dsl.input("image", (3, input_size, input_size))
    rois = dsl.input("rois", (5,), leading="R")
    return (image, rois, *BACKBONES[backbone](image, width=width, stride=stride))


def fast_rcnn(backbone: str = "vgg16", num_classes: int = 21, input_size: int = 224, width: float = 1.0,
              dropout: float = 0.5, seed: int = 0, stride: int = STRIDE):
    """``num_classes`` counts the background (21 for Pascal VOC's 20); ``stride``: the shared map's."""
    image, rois, _, head = inputs_and_trunk("fast_rcnn", backbone, input_size, width, stride)
    cls, box = detection_heads(head(rois, dropout), num_classes)
    return dsl.Model([image, rois], [cls, box], name=f"fast_rcnn_{backbone}", seed=seed)


register("fast_rcnn", "detection", "Fast R-CNN: shared VGG-16 features, RoI pooling, class and box heads")(fast_rcnn)
