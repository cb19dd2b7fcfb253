"""YOLO v1 (Redmon et al. 2016): one network maps the image to an S x S grid; each cell predicts B
boxes (x, y, sqrt w, sqrt h, confidence) and C class probabilities, trained by ``YoloLoss``
(``cnngraph.train.detection_losses``, lambda_coord 5, lambda_noobj 0.5).

Two outputs, so a reader (``cnngraph.detection.predict``) can tell B from C without being told:
``boxes`` (N, S, S, B, 5) and ``classes`` (N, S, S, C), both slices of the last Linear's
S*S*(5B + C) values (the paper's 7 x 7 x 30 tensor, cell-major).

Backbones: ``darknet`` is the paper's network (Figure 3: 24 convolutions with leaky ReLU 0.1, two
fully connected layers, 448 x 448 input); ``vgg16`` is torchvision's VGG-16 features (the paper's
YOLO-VGG-16 row); ``small`` is four conv-BN-ReLU layers for training on a CPU. Non-paper backbones
are pooled to S x S (adaptive average) before the head.

Heads: ``fc`` is the paper's (two fully connected layers from the whole map to every cell's values);
``conv`` is a 3x3 conv and a 1x1 conv over the S x S map, the same weights in every cell, as YOLO v2
later did. ``yolo_v1_small`` uses ``conv``: on digit-detection (2,000 canvases, the same loss and
optimizer) the fc head reached mAP@0.5 0.14 at best, the conv head 0.58 after 20 epochs and, with the
training defaults in ``cnngraph.train.detection_defaults``, 0.91 (width 1) and 0.94 (width 2) after 40.

``yolo_v1_small`` (8x8 grid, 2 boxes, 10 classes, backbone width 2, conv head of 128): convolutions
3x3 without bias of 3->32 864, 32->64 18,432, 64->128 73,728 and 128->256 294,912, their BatchNorms
2 x 480 = 960; head 3x3 256->128 + bias 295,040 and 1x1 128->20 + bias 2,580: 686,516.

Parameters of ``yolo_v1`` (darknet, S=7, B=2, C=20, 448 input; conv k x k, c_in -> c_out has
k*k*c_in*c_out + c_out; derived by hand, asserted in tests/test_detection_models.py):

- stage 1: 7x7 3->64: 9,472
- stage 2: 3x3 64->192: 110,784
- stage 3: 1x1 192->128: 24,704; 3x3 128->256: 295,168; 1x1 256->256: 65,792; 3x3 256->512: 1,180,160
- stage 4: 4 x (1x1 512->256: 131,328 + 3x3 256->512: 1,180,160) = 5,245,952; 1x1 512->512: 262,656;
  3x3 512->1024: 4,719,616
- stage 5: 2 x (1x1 1024->512: 524,800 + 3x3 512->1024: 4,719,616) = 10,488,832; 3x3 1024->1024 (twice,
  the second with stride 2): 2 x 9,438,208 = 18,876,416
- stage 6: 3x3 1024->1024 twice: 18,876,416
- convolutions: 60,155,968; fc 7*7*1024 -> 4096: 205,524,992; fc 4096 -> 1470: 6,022,590
- total: 271,703,550
"""

from __future__ import annotations

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register, scaled
from cnngraph.models import vgg as vgg_models

LEAK = 0.1
# The paper's Figure 3, after the 7x7 stem: (kernel, channels, stride) per conv, "M" for a 2x2 max pool.
DARKNET = ["M", (3, 192, 1), "M", (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
           *[(1, 256, 1), (3, 512, 1)] * 4, (1, 512, 1), (3, 1024, 1), "M",
           *[(1, 512, 1), (3, 1024, 1)] * 2, (3, 1024, 1), (3, 1024, 2), (3, 1024, 1), (3, 1024, 1)]
SMALL = [(3, 16, 1), "M", (3, 32, 1), "M", (3, 64, 1), "M", (3, 128, 1)]


def darknet(x, width: float = 1.0):
    """The paper's 24 convolutions (leaky ReLU 0.1, "same" padding); 448 in, 7 x 7 x 1024 out."""
    y = dsl.leaky_relu(dsl.conv2d(x, scaled(64, width), 7, stride=2, padding=3, name="backbone.0"), LEAK)
    for i, layer in enumerate(DARKNET, start=1):
        if layer == "M":
            y = dsl.max_pool2d(y, 2, 2, name=f"backbone.{i}")
        else:
            k, c, s = layer
            y = dsl.leaky_relu(dsl.conv2d(y, scaled(c, width), k, stride=s, padding=k // 2, name=f"backbone.{i}"), LEAK)
    return y


def small(x, layers=SMALL, prefix: str = "backbone", width: float = 1.0):
    """Conv-BN-ReLU layers and 2x2 max pools: quick to train on a CPU."""
    y = x
    for i, layer in enumerate(layers):
        if layer == "M":
            y = dsl.max_pool2d(y, 2, 2, name=f"{prefix}.{i}")
        else:
            k, c, s = layer
            with dsl.scope(f"{prefix}.{i}"):
                y = dsl.relu(dsl.batch_norm(dsl.conv2d(y, scaled(c, width), k, stride=s, padding=k // 2, bias=False)))
    return y


BACKBONES = {"darknet": darknet, "small": small,
             "vgg16": lambda x, width=1.0: vgg_models.features(x, "vgg16", False, width=width)[0]}


def fc_head(y, grid: int, per_cell: int, hidden: int, dropout: float):
    """The paper's head: two fully connected layers from the whole S x S map to every cell's values."""
    y = dsl.flatten(y, name="flatten")
    y = dsl.leaky_relu(dsl.linear(y, hidden, name="fc1"), LEAK, name="fc1.act")
    y = dsl.dropout(y, dropout, name="fc1.dropout")
    return dsl.reshape(dsl.linear(y, grid * grid * per_cell, name="fc2"), (grid, grid, per_cell), name="grid")


def conv_head(y, grid: int, per_cell: int, hidden: int, dropout: float):
    """A 3x3 conv to ``hidden`` channels and a 1x1 conv to each cell's values: the same weights in every
    cell (YOLO v2's later choice), so what one cell learns every cell knows."""
    y = dsl.leaky_relu(dsl.conv2d(y, hidden, 3, padding=1, name="head.0"), LEAK, name="head.0.act")
    y = dsl.dropout(y, dropout, name="head.0.dropout")
    y = dsl.conv2d(y, per_cell, 1, name="head.1")
    return dsl.layer("Transpose", [y], "grid", perm=(0, 2, 3, 1))


HEADS = {"fc": fc_head, "conv": conv_head}


def yolo_v1(num_classes: int = 20, input_size: int = 448, grid: int = 7, boxes: int = 2, backbone: str = "darknet",
            hidden: int = 4096, dropout: float = 0.5, in_channels: int = 3, width: float = 1.0, head: str = "fc",
            seed: int = 0):
    """YOLO v1 with ``grid`` x ``grid`` cells, ``boxes`` predictors per cell and ``num_classes`` classes;
    ``width`` scales the backbone's channels (1: as published)."""
    if backbone not in BACKBONES:
        raise ValueError(f"yolo_v1: backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    if head not in HEADS:
        raise ValueError(f"yolo_v1: head must be one of {sorted(HEADS)}, got {head!r}")
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = BACKBONES[backbone](x, width=width)
    if y.type.shape[2:] != (grid, grid):
        y = dsl.adaptive_avg_pool2d(y, grid, name="pool")
    per_cell = 5 * boxes + num_classes
    y = HEADS[head](y, grid, per_cell, hidden, dropout)
    box_values = dsl.slice(y, axes=[3], starts=[0], ends=[5 * boxes], name="box_values")
    out_boxes = dsl.reshape(box_values, (grid, grid, boxes, 5), name="boxes")
    out_classes = dsl.slice(y, axes=[3], starts=[5 * boxes], ends=[per_cell], name="classes")
    return dsl.Model(x, [out_boxes, out_classes], name="yolo_v1" if backbone == "darknet" else f"yolo_v1_{backbone}",
                     seed=seed)


register("yolo_v1", "detection", "YOLO v1: 7x7 grid, 2 boxes, 20 classes, the paper's 24-conv network")(yolo_v1)
register("yolo_v1_small", "detection", "YOLO v1 on a 4-conv BN backbone, conv head, 64x64, 8x8 grid: for CPU training")(
    partial(yolo_v1, num_classes=10, input_size=64, grid=8, backbone="small", hidden=128, dropout=0.0, head="conv",
            width=2.0))
