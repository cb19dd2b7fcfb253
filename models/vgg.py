"""VGG (Simonyan & Zisserman 2015) in torchvision's layout, with and without BatchNorm."""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register

CONFIGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg(config: str, batch_norm: bool, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3,
        dropout: float = 0.5, seed: int = 0):
    """``features.<i>`` numbered like torchvision's nn.Sequential, so state_dict keys match."""
    x = dsl.input("image", (in_channels, input_size, input_size))
    y, i = x, 0
    for v in CONFIGS[config]:
        if v == "M":
            y = dsl.max_pool2d(y, 2, 2, name=f"features.{i}")
            i += 1
            continue
        y = dsl.conv2d(y, v, 3, padding=1, init="he_fan_out", name=f"features.{i}")
        if batch_norm:
            y = dsl.batch_norm(y, name=f"features.{i + 1}")
        i += 2 + batch_norm
        y = dsl.relu(y, name=f"features.{i - 1}")
    y = dsl.flatten(dsl.adaptive_avg_pool2d(y, 7, name="avgpool"), name="flatten")
    y = dsl.relu(dsl.linear(y, 4096, init="normal_0.01", name="classifier.0"), name="classifier.1")
    y = dsl.dropout(y, dropout, name="classifier.2")
    y = dsl.relu(dsl.linear(y, 4096, init="normal_0.01", name="classifier.3"), name="classifier.4")
    y = dsl.dropout(y, dropout, name="classifier.5")
    y = dsl.linear(y, num_classes, init="normal_0.01", name="classifier.6")
    return dsl.Model(x, y, name=config + ("_bn" if batch_norm else ""), seed=seed)


for _name in CONFIGS:
    register(_name, "chain", f"{_name.upper()}, torchvision layout")(partial(vgg, _name, False))
    register(f"{_name}_bn", "chain", f"{_name.upper()} with BatchNorm, torchvision layout")(partial(vgg, _name, True))
