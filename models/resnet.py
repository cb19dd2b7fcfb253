"""ResNet (He et al., 2016) in torchvision's layout, and the pre-activation variant (He et al., 2016b).

torchvision's ResNets use BasicBlock/Bottleneck with the stride on the 3x3 (v1.5). The
pre-activation units compute x + F(x) with F = BN-ReLU-conv-BN-ReLU-conv[-BN-ReLU-conv]: the sum
is left outside the non-linearity, so the identity path runs unchanged from stem to head. Their
layout follows fb.resnet.torch's ``preresnet.lua``: the stem keeps conv-BN-ReLU-maxpool, so
``layer1.0`` skips its own BN-ReLU; a unit whose shape changes applies BN-ReLU once and feeds
both branches, its projection shortcut being a bare 1x1 conv; a last BN-ReLU precedes the pool.
Names keep torchvision's (``bn<k>`` now sits *before* ``conv<k>``), plus ``bn_final``.

Pre-activation parameter counts, derived from torchvision's (only BatchNorm sizes change; a BN
over c channels holds 2c parameters):

- basic blocks (18, 34): ``layer1.0`` drops bn1 (-128); the first unit of layers 2, 3 and 4 has
  bn1 over its input (64, 128, 256 channels instead of 128, 256, 512: -896) and no BN after the
  projection (-1,792); bn_final adds 1,024. Net -1,792: 11,687,720 and 21,795,880.
- bottlenecks (50, 101, 152): every unit's bn3 shrinks from 4p to p channels, which other units win
  back exactly on bn1 (input 4p instead of p); the first unit of each layer does not: layer1.0 -128
  (no bn1) -384 (bn3) -512 (projection BN); layers 2, 3, 4: bn1 +2(in - p), bn3 -6p, projection BN
  -8p with (in, p) = (256, 128), (512, 256), (1024, 512): -1,536, -3,072, -6,144; bn_final +4,096.
  Net -7,680: 25,549,352, 44,541,480 and 60,185,128.
"""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register, scaled

LAYERS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}
EXPANSION = {"basic": 1, "bottleneck": 4}


def conv(x, out, kernel, stride, name):
    return dsl.conv2d(x, out, kernel, stride=stride, padding=kernel // 2, bias=False, init="he_fan_out", name=name)


def conv_bn(x, out, kernel, stride, name, relu=True):
    """conv (no bias) -> BatchNorm [-> ReLU], named ``conv<name>`` / ``bn<name>`` like torchvision."""
    y = dsl.batch_norm(conv(x, out, kernel, stride, f"conv{name}"), name=f"bn{name}")
    return dsl.relu(y) if relu else y


def bn_relu(x, name):
    """The pre-activation BN-ReLU that opens every pre-activation conv."""
    return dsl.relu(dsl.batch_norm(x, name=name))


def projects(x, out, stride) -> bool:
    return stride != 1 or x.shape[1] != out


def shortcut(x, out, stride, bn=True):
    """Identity, or a strided 1x1 projection (torchvision's ``downsample``) when the shape changes."""
    if not projects(x, out, stride):
        return x
    with dsl.scope("downsample"):
        y = conv(x, out, 1, stride, "0")
        return dsl.batch_norm(y, name="1") if bn else y


def basic_block(x, planes, stride):
    y = conv_bn(x, planes, 3, stride, 1)
    y = conv_bn(y, planes, 3, 1, 2, relu=False)
    return dsl.relu(y + shortcut(x, planes, stride))


def bottleneck(x, planes, stride):
    y = conv_bn(x, planes, 1, 1, 1)
    y = conv_bn(y, planes, 3, stride, 2)
    y = conv_bn(y, planes * 4, 1, 1, 3, relu=False)
    return dsl.relu(y + shortcut(x, planes * 4, stride))


def preact_unit(x, widths, stride, after_stem):
    """x + F(x), F a chain of BN-ReLU-conv over ``widths`` (3x3s for basic units, 1-3-1 for bottlenecks)."""
    out = widths[-1]
    a = x if after_stem else bn_relu(x, "bn1")
    y = a
    kernels = (3, 3) if len(widths) == 2 else (1, 3, 1)
    for k, (width, kernel) in enumerate(zip(widths, kernels), start=1):
        if k > 1:
            y = bn_relu(y, f"bn{k}")
        y = conv(y, width, kernel, stride if k == len(widths) - 1 else 1, f"conv{k}")  # stride on the first 3x3
    return y + (shortcut(a, out, stride, bn=False) if projects(x, out, stride) else x)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck}
PREACT_WIDTHS = {"basic": lambda p: (p, p), "bottleneck": lambda p: (p, p, 4 * p)}


def trunk(x, depth: str, stages=(1, 2, 3, 4), preact: bool = False, width: float = 1.0, strided=(2, 3, 4)):
    """The stem (when stage 1 is asked for) and residual stages ``layer<k>``: detectors take stages 1-3 as
    their stride-16 feature map and run stage 4 on each pooled region (He et al.'s Faster R-CNN). Stages
    in ``strided`` halve the map in their first block; a detector of small images leaves some out for a
    finer map (the parameters do not change)."""
    kind, counts = LAYERS[depth]
    y = x
    if 1 in stages:
        y = dsl.relu(dsl.batch_norm(conv(y, scaled(64, width), 7, 2, "conv1"), name="bn1"), name="relu")
        y = dsl.max_pool2d(y, 3, stride=2, padding=1, name="maxpool")
    for stage in stages:
        planes, count = scaled((64, 128, 256, 512)[stage - 1], width), counts[stage - 1]
        for i in range(count):
            stride = 2 if (i == 0 and stage > 1 and stage in strided) else 1
            with dsl.scope(f"layer{stage}"), dsl.scope(i):
                if preact:
                    y = preact_unit(y, PREACT_WIDTHS[kind](planes), stride, after_stem=stage == 1 and i == 0)
                else:
                    y = BLOCKS[kind](y, planes, stride)
    return y


def resnet(depth: str, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, seed: int = 0,
           preact: bool = False, width: float = 1.0):
    """``width`` scales every layer's channels (1: torchvision's network)."""
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = trunk(x, depth, (1, 2, 3, 4), preact, width)
    if preact:
        y = bn_relu(y, "bn_final")
    y = dsl.flatten(dsl.global_avg_pool(y, name="avgpool"), name="flatten")
    y = dsl.linear(y, num_classes, name="fc")
    return dsl.Model(x, y, name=("preact_" if preact else "") + depth, seed=seed)


for _name in LAYERS:
    _title = f"ResNet-{_name[6:]}"
    register(_name, "residual", f"{_title}, torchvision layout")(partial(resnet, _name))
    register(f"preact_{_name}", "residual", f"pre-activation {_title} (identity path outside the ReLU)")(
        partial(resnet, _name, preact=True))
