"""GoogLeNet / Inception v1 (Szegedy et al., 2015) in torchvision's layout.

BasicConv2d is conv (no bias) + BatchNorm (eps 0.001) + ReLU; pools use ceil_mode; like
torchvision, the "5x5" branch uses a 3x3 kernel, which the published count 6,624,904 reflects.
With ``aux_logits`` the two auxiliary classifiers (on inception4a and inception4d) become extra
outputs, in torchvision's order (logits, aux2, aux1): they serve training, and add
3,188,968 + 3,191,016 parameters (13,004,888 in all, torchvision's count with aux heads).
"""

from cnngraph.frontends import dsl
from cnngraph.models import register

INCEPTIONS = {  # in torchvision's order: 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {"3b": "maxpool3", "4e": "maxpool4"}


def basic_conv(x, out, kernel, name, stride=1, padding=0):
    with dsl.scope(name):
        y = dsl.conv2d(x, out, kernel, stride, padding, bias=False, name="conv")
        return dsl.relu(dsl.batch_norm(y, eps=0.001, name="bn"))


def inception(x, c1, c3r, c3, c5r, c5, pool_proj):
    b1 = basic_conv(x, c1, 1, "branch1")
    b2 = basic_conv(basic_conv(x, c3r, 1, "branch2.0"), c3, 3, "branch2.1", padding=1)
    b3 = basic_conv(basic_conv(x, c5r, 1, "branch3.0"), c5, 3, "branch3.1", padding=1)
    pooled = dsl.max_pool2d(x, 3, 1, padding=1, ceil_mode=True, name="branch4.0")
    return dsl.concat([b1, b2, b3, basic_conv(pooled, pool_proj, 1, "branch4.1")])


def aux_head(x, num_classes):
    """InceptionAux: 4x4 adaptive average, 1x1 conv to 128, fc1 1,024 with dropout 0.7, fc2."""
    y = basic_conv(dsl.adaptive_avg_pool2d(x, 4), 128, 1, "conv")
    y = dsl.relu(dsl.linear(dsl.flatten(y), 1024, name="fc1"))
    return dsl.linear(dsl.dropout(y, 0.7), num_classes, name="fc2")


@register("googlenet", "branches", "GoogLeNet (Inception v1), torchvision layout; aux_logits=True adds the aux heads")
def googlenet(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, aux_logits: bool = False,
              dropout: float = 0.2, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = basic_conv(x, 64, 7, "conv1", stride=2, padding=3)
    y = dsl.max_pool2d(y, 3, 2, ceil_mode=True, name="maxpool1")
    y = basic_conv(basic_conv(y, 64, 1, "conv2"), 192, 3, "conv3", padding=1)
    y = dsl.max_pool2d(y, 3, 2, ceil_mode=True, name="maxpool2")
    aux = {}
    for name, widths in INCEPTIONS.items():
        with dsl.scope(f"inception{name}"):
            y = inception(y, *widths)
        if aux_logits and name in ("4a", "4d"):
            with dsl.scope(f"aux{1 if name == '4a' else 2}"):
                aux[name] = aux_head(y, num_classes)
        if name in POOL_AFTER:
            y = dsl.max_pool2d(y, 3 if name == "3b" else 2, 2, ceil_mode=True, name=POOL_AFTER[name])
    y = dsl.flatten(dsl.adaptive_avg_pool2d(y, 1, name="avgpool"), name="flatten")
    y = dsl.linear(dsl.dropout(y, dropout, name="dropout"), num_classes, name="fc")
    outputs = [y, aux["4d"], aux["4a"]] if aux_logits else y
    return dsl.Model(x, outputs, name="googlenet", seed=seed)
