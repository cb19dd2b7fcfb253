"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016) in torchvision's layout: Fire modules (a 1x1
squeeze, then 1x1 and 3x3 expands concatenated) and a convolutional classifier."""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register

# features.<i>: ("conv", out, kernel), "M" (3x3/2 ceil-mode max pool) or ("fire", squeeze, expand)
LAYOUTS = {
    "squeezenet1_0": [("conv", 96, 7), "M", ("fire", 16, 64), ("fire", 16, 64), ("fire", 32, 128), "M",
                      ("fire", 32, 128), ("fire", 48, 192), ("fire", 48, 192), ("fire", 64, 256), "M",
                      ("fire", 64, 256)],
    "squeezenet1_1": [("conv", 64, 3), "M", ("fire", 16, 64), ("fire", 16, 64), "M", ("fire", 32, 128),
                      ("fire", 32, 128), "M", ("fire", 48, 192), ("fire", 48, 192), ("fire", 64, 256),
                      ("fire", 64, 256)],
}


def fire(x, squeeze: int, expand: int):
    s = dsl.relu(dsl.conv2d(x, squeeze, 1, name="squeeze"), name="squeeze_activation")
    e1 = dsl.relu(dsl.conv2d(s, expand, 1, name="expand1x1"), name="expand1x1_activation")
    e3 = dsl.relu(dsl.conv2d(s, expand, 3, padding=1, name="expand3x3"), name="expand3x3_activation")
    return dsl.concat([e1, e3])


def squeezenet(version: str, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3,
               dropout: float = 0.5, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y, i = x, 0
    for layer in LAYOUTS[version]:
        if layer == "M":
            y = dsl.max_pool2d(y, 3, 2, ceil_mode=True, name=f"features.{i}")
        elif layer[0] == "conv":
            y = dsl.relu(dsl.conv2d(y, layer[1], layer[2], stride=2, name=f"features.{i}"), name=f"features.{i + 1}")
            i += 1
        else:
            with dsl.scope(f"features.{i}"):
                y = fire(y, *layer[1:])
        i += 1
    y = dsl.dropout(y, dropout, name="classifier.0")
    y = dsl.relu(dsl.conv2d(y, num_classes, 1, init="normal_0.01", name="classifier.1"), name="classifier.2")
    y = dsl.flatten(dsl.adaptive_avg_pool2d(y, 1, name="classifier.3"), name="flatten")
    return dsl.Model(x, y, name=version, seed=seed)


for _name in LAYOUTS:
    register(_name, "branches", f"SqueezeNet {_name[10:].replace('_', '.')}, torchvision layout")(
        partial(squeezenet, _name))
