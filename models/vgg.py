"""VGG-11/13/16/19 (Simonyan & Zisserman 2015) in torchvision's layout, with and without BatchNorm.

``features`` is shared with the models built on a VGG backbone (FCN, SegNet), so their
backbone keys are torchvision's ``features.<i>`` and ImageNet weights load unchanged.
"""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register, scaled

CONFIGS = {  # torchvision's configurations A, B, D and E: channels, "M" for a 2x2 max pool
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def features(x, config: str, batch_norm: bool, first_padding: int = 1, pool=None, width: float = 1.0):
    """The conv stack, ``features.<i>`` numbered like torchvision's nn.Sequential.

    Returns the output and the tensor after each pool (FCN's skips). ``first_padding`` is FCN's 100;
    ``pool(y, name)`` replaces the 2x2 max pool (SegNet keeps the pooling indices); ``width`` scales
    every layer's channels (1 is VGG; smaller makes quick test models of the same shape).
    """
    y, i, pools = x, 0, []
    for v in CONFIGS[config] if isinstance(config, str) else config:  # a name, or a list (a truncated stack)
        if v == "M":
            y = pool(y, f"features.{i}") if pool else dsl.max_pool2d(y, 2, 2, name=f"features.{i}")
            pools.append(y)
            i += 1
            continue
        padding = first_padding if i == 0 else 1
        y = dsl.conv2d(y, scaled(v, width), 3, padding=padding, init="he_fan_out", name=f"features.{i}")
        if batch_norm:
            y = dsl.batch_norm(y, name=f"features.{i + 1}")
        i += 2 + batch_norm
        y = dsl.relu(y, name=f"features.{i - 1}")
    return y, pools


def vgg(config: str, batch_norm: bool, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3,
        dropout: float = 0.5, width: float = 1.0, seed: int = 0):
    """``width`` scales every layer, the classifier's 4,096 included (1: torchvision's network)."""
    x = dsl.input("image", (in_channels, input_size, input_size))
    y, _ = features(x, config, batch_norm, width=width)
    y = dsl.flatten(dsl.adaptive_avg_pool2d(y, 7, name="avgpool"), name="flatten")
    hidden = scaled(4096, width)
    y = dsl.relu(dsl.linear(y, hidden, init="normal_0.01", name="classifier.0"), name="classifier.1")
    y = dsl.dropout(y, dropout, name="classifier.2")
    y = dsl.relu(dsl.linear(y, hidden, init="normal_0.01", name="classifier.3"), name="classifier.4")
    y = dsl.dropout(y, dropout, name="classifier.5")
    y = dsl.linear(y, num_classes, init="normal_0.01", name="classifier.6")
    return dsl.Model(x, y, name=config + ("_bn" if batch_norm else ""), seed=seed)


for _name in CONFIGS:
    register(_name, "chain", f"{_name.upper()}, torchvision layout")(partial(vgg, _name, False))
    register(f"{_name}_bn", "chain", f"{_name.upper()} with BatchNorm, torchvision layout")(partial(vgg, _name, True))
