"""AlexNet in torchvision's layout (Krizhevsky 2014 "one weird trick" variant, no LRN)."""

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
