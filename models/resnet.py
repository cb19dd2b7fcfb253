"""ResNet (He et al., 2016) in torchvision's layout: BasicBlock/Bottleneck, stride on the 3x3 (v1.5)."""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register

LAYERS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet50": ("bottleneck", [3, 4, 6, 3])}
EXPANSION = {"basic": 1, "bottleneck": 4}


def conv_bn(x, out, kernel, stride, name, relu=True):
    """conv (no bias) -> BatchNorm [-> ReLU], named ``conv<name>`` / ``bn<name>`` like torchvision."""
    y = dsl.conv2d(x, out, kernel, stride=stride, padding=kernel // 2, bias=False, init="he_fan_out",
                   name=f"conv{name}")
    y = dsl.batch_norm(y, name=f"bn{name}")
    return dsl.relu(y) if relu else y


def shortcut(x, out, stride):
    """Identity, or a strided 1x1 projection when the shape changes (torchvision's ``downsample``)."""
    if stride == 1 and x.shape[1] == out:
        return x
    with dsl.scope("downsample"):
        y = dsl.conv2d(x, out, 1, stride=stride, bias=False, init="he_fan_out", name="0")
        return dsl.batch_norm(y, name="1")


def basic_block(x, planes, stride):
    y = conv_bn(x, planes, 3, stride, 1)
    y = conv_bn(y, planes, 3, 1, 2, relu=False)
    return dsl.relu(y + shortcut(x, planes, stride))


def bottleneck(x, planes, stride):
    y = conv_bn(x, planes, 1, 1, 1)
    y = conv_bn(y, planes, 3, stride, 2)
    y = conv_bn(y, planes * 4, 1, 1, 3, relu=False)
    return dsl.relu(y + shortcut(x, planes * 4, stride))


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck}


def resnet(depth: str, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, seed: int = 0):
    kind, counts = LAYERS[depth]
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 64, 7, stride=2, padding=3, bias=False, init="he_fan_out",
                                           name="conv1"), name="bn1"), name="relu")
    y = dsl.max_pool2d(y, 3, stride=2, padding=1, name="maxpool")
    for stage, (planes, count) in enumerate(zip([64, 128, 256, 512], counts), start=1):
        for i in range(count):
            with dsl.scope(f"layer{stage}"), dsl.scope(i):
                y = BLOCKS[kind](y, planes, 2 if (i == 0 and stage > 1) else 1)
    y = dsl.flatten(dsl.global_avg_pool(y, name="avgpool"), name="flatten")
    y = dsl.linear(y, num_classes, name="fc")
    return dsl.Model(x, y, name=depth, seed=seed)


for _name in LAYERS:
    register(_name, "residual", f"{_name[:6].capitalize()}-{_name[6:]}, torchvision layout")(partial(resnet, _name))
