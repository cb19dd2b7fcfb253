"""DenseNet-121/169/201 (Huang et al., 2017) in torchvision's layout: growth rate 32, bottleneck
1x1 convs of 4 x growth, transitions halving the channels (compression 0.5)."""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register

BLOCKS = {"densenet121": (6, 12, 24, 16), "densenet169": (6, 12, 32, 32), "densenet201": (6, 12, 48, 32)}


def bn_relu_conv(x, out, kernel, k="", padding=0):
    """norm<k> -> relu<k> -> conv<k>, the pre-activation order DenseNet uses throughout."""
    y = dsl.relu(dsl.batch_norm(x, name=f"norm{k}"), name=f"relu{k}")
    return dsl.conv2d(y, out, kernel, padding=padding, bias=False, name=f"conv{k}")


def dense_block(x, layers: int, growth: int, bn_size: int):
    """Each layer sees the concatenation of the block input and every earlier layer's new features."""
    features = [x]
    for i in range(1, layers + 1):
        with dsl.scope(f"denselayer{i}"):
            joined = dsl.concat(features) if len(features) > 1 else x
            y = bn_relu_conv(joined, bn_size * growth, 1, 1)
            features.append(bn_relu_conv(y, growth, 3, 2, padding=1))
    return dsl.concat(features)


def transition(x, compression: float):
    y = bn_relu_conv(x, int(x.shape[1] * compression), 1)
    return dsl.avg_pool2d(y, 2, 2, name="pool")


def densenet(depth: str, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, growth_rate: int = 32,
             bn_size: int = 4, compression: float = 0.5, init_features: int = 64, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    with dsl.scope("features"):
        y = dsl.conv2d(x, init_features, 7, 2, 3, bias=False, name="conv0")
        y = dsl.relu(dsl.batch_norm(y, name="norm0"), name="relu0")
        y = dsl.max_pool2d(y, 3, 2, padding=1, name="pool0")
        blocks = BLOCKS[depth]
        for i, layers in enumerate(blocks, start=1):
            with dsl.scope(f"denseblock{i}"):
                y = dense_block(y, layers, growth_rate, bn_size)
            if i < len(blocks):
                with dsl.scope(f"transition{i}"):
                    y = transition(y, compression)
        y = dsl.batch_norm(y, name="norm5")
    y = dsl.flatten(dsl.adaptive_avg_pool2d(dsl.relu(y), 1, name="avgpool"), name="flatten")
    return dsl.Model(x, dsl.linear(y, num_classes, name="classifier"), name=depth, seed=seed)


for _name in BLOCKS:
    register(_name, "dense", f"DenseNet-{_name[8:]}, torchvision layout")(partial(densenet, _name))
