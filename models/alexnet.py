"""AlexNet: torchvision's layout (the "one weird trick" variant, no LRN), the original paper's two-GPU
network (Krizhevsky et al., 2012: LRN, grouped convs 2, 4, 5), and ZFNet (Zeiler & Fergus, 2014).

The paper variants use Caffe's layer names (conv1, norm1, pool1, ..., fc8). Parameter counts by hand
(a conv holds out * in/groups * k * k + out, a linear in * out + out):

- alexnet_original, 227x227 input: conv1 96*3*11*11+96 = 34,944; conv2 256*48*5*5+256 = 307,456;
  conv3 384*256*9+384 = 885,120; conv4 384*192*9+384 = 663,936; conv5 256*192*9+256 = 442,624;
  fc6 9,216*4,096+4,096 = 37,752,832; fc7 16,781,312; fc8 4,097,000. Total 60,965,224.
- zfnet, 224x224 input (conv1 7x7/2 pad 1 -> 110, pool -> 55, conv2 5x5/2 -> 26, pool -> 13, pool -> 6,
  the sizes of the paper's figure 3): conv1 96*3*7*7+96 = 14,208; conv2 256*96*5*5+256 = 614,656;
  conv3 885,120; conv4 384*384*9+384 = 1,327,488; conv5 256*384*9+256 = 884,992; fc6-fc8 as above.
  Total 62,357,608.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register


@register("alexnet", "chain", "AlexNet, torchvision layout")
def alexnet(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, dropout: float = 0.5,
            seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = dsl.relu(dsl.conv2d(x, 64, 11, stride=4, padding=2, name="features.0"), name="features.1")
    y = dsl.max_pool2d(y, 3, 2, name="features.2")
    y = dsl.relu(dsl.conv2d(y, 192, 5, padding=2, name="features.3"), name="features.4")
    y = dsl.max_pool2d(y, 3, 2, name="features.5")
    y = dsl.relu(dsl.conv2d(y, 384, 3, padding=1, name="features.6"), name="features.7")
    y = dsl.relu(dsl.conv2d(y, 256, 3, padding=1, name="features.8"), name="features.9")
    y = dsl.relu(dsl.conv2d(y, 256, 3, padding=1, name="features.10"), name="features.11")
    y = dsl.max_pool2d(y, 3, 2, name="features.12")
    y = dsl.flatten(dsl.adaptive_avg_pool2d(y, 6, name="avgpool"), name="flatten")
    y = dsl.dropout(y, dropout, name="classifier.0")
    y = dsl.relu(dsl.linear(y, 4096, name="classifier.1"), name="classifier.2")
    y = dsl.dropout(y, dropout, name="classifier.3")
    y = dsl.relu(dsl.linear(y, 4096, name="classifier.4"), name="classifier.5")
    y = dsl.linear(y, num_classes, name="classifier.6")
    return dsl.Model(x, y, name="alexnet", seed=seed)


def conv_layer(y, i, out, kernel, stride=1, padding=0, groups=1, norm=None):
    """conv<i> -> relu<i> [-> norm<i> -> pool<i> or pool<i> -> norm<i>]: Caffe's names.

    ``norm`` is "lrn-pool" (AlexNet normalises, then pools), "pool-lrn" (ZFNet the other way round),
    "pool" or None. Pools are 3x3/2 with ceil_mode, like Caffe's.
    """
    y = dsl.relu(dsl.conv2d(y, out, kernel, stride, padding, groups=groups, name=f"conv{i}"), name=f"relu{i}")
    for step in (norm or "").split("-"):
        if step == "lrn":
            y = dsl.lrn(y, 5, alpha=1e-4, beta=0.75, k=2.0, name=f"norm{i}")
        elif step == "pool":
            y = dsl.max_pool2d(y, 3, 2, ceil_mode=True, name=f"pool{i}")
    return y


def classifier(y, num_classes, dropout):
    """fc6, fc7 (4,096 each, ReLU, dropout) and fc8 on the flattened 6x6 maps."""
    y = dsl.flatten(y, name="flatten")
    for i in (6, 7):
        y = dsl.dropout(dsl.relu(dsl.linear(y, 4096, name=f"fc{i}"), name=f"relu{i}"), dropout, name=f"drop{i}")
    return dsl.linear(y, num_classes, name="fc8")


@register("alexnet_original", "chain", "AlexNet as in the 2012 paper: LRN and two-group convs, 227x227 input")
def alexnet_original(num_classes: int = 1000, input_size: int = 227, in_channels: int = 3, dropout: float = 0.5,
                     seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = conv_layer(x, 1, 96, 11, stride=4, norm="lrn-pool")
    y = conv_layer(y, 2, 256, 5, padding=2, groups=2, norm="lrn-pool")
    y = conv_layer(y, 3, 384, 3, padding=1)
    y = conv_layer(y, 4, 384, 3, padding=1, groups=2)
    y = conv_layer(y, 5, 256, 3, padding=1, groups=2, norm="pool")
    return dsl.Model(x, classifier(y, num_classes, dropout), name="alexnet_original", seed=seed)


@register("zfnet", "chain", "ZFNet (Zeiler & Fergus): 7x7/2 first layer, contrast-normalised pools")
def zfnet(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, dropout: float = 0.5, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = conv_layer(x, 1, 96, 7, stride=2, padding=1, norm="pool-lrn")
    y = conv_layer(y, 2, 256, 5, stride=2, norm="pool-lrn")
    y = conv_layer(y, 3, 384, 3, padding=1)
    y = conv_layer(y, 4, 384, 3, padding=1)
    y = conv_layer(y, 5, 256, 3, padding=1, norm="pool")
    return dsl.Model(x, classifier(y, num_classes, dropout), name="zfnet", seed=seed)
