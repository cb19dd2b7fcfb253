"""FC-DenseNet, "the one hundred layers Tiramisu" (Jégou et al., 2017): DenseNet blocks on a U-shaped
path. Going down, a block's output (input and new features) is the skip and is transitioned down
(BN-ReLU-1x1 conv-dropout-2x2 max pool); going up, only a block's *new* features are upsampled (3x3
transposed conv, stride 2), centre-cropped to the skip and concatenated with it, which keeps the
up path narrow. Layers are BN-ReLU-3x3 conv-dropout 0.2; convolutions carry biases, as in the
authors' Lasagne code.

Parameters by hand, K = 11 classes (CamVid), growth g; a dense layer over c channels holds
2c + 9cg + g (BN, conv), a transition down over m 2m + m^2 + m, a transition up keeping u channels
9u^2 + u, the first conv 9 * 3 * 48 + 48 = 1,344 and the head cK + K:

- FC-DenseNet56 (4 layers per block, g = 12): down blocks entered with 48, 96, 144, 192, 240 channels
  29,088 + 50,208 + 71,328 + 92,448 + 113,568; transitions down 9,504 + 21,168 + 37,440 + 58,320 +
  83,808; bottleneck on 288 134,688; transitions up (48 kept) 20,784 x 5; up blocks entered with 336,
  288, 240, 192, 144 155,808 + 134,688 + 113,568 + 92,448 + 71,328; head on 192 2,123. 1,376,795.
- FC-DenseNet67 (5 layers, g = 16): down 58,480 + 116,880 + 175,280 + 233,680 + 292,080; transitions
  16,768 + 43,888 + 83,808 + 136,528 + 202,048; bottleneck on 448 350,480; up transitions (80 kept)
  57,680 x 5; up blocks 408,880 + 350,480 + 292,080 + 233,680 + 175,280; head on 288 3,179. 3,463,243.
- FC-DenseNet103 (4, 5, 7, 10, 12 / 15 / 12, 10, 7, 5, 4 layers, g = 16): down 42,112 + 105,200 +
  245,392 + 549,120 + 967,296; transitions 12,880 + 37,440 + 93,328 + 216,688 + 432,304; bottleneck
  on 656 1,682,160; up transitions (240, 192, 160, 112, 80 kept) 518,640 + 331,968 + 230,560 +
  113,008 + 57,680; up blocks entered with 896, 656, 464, 304, 192 1,724,160 + 1,063,040 + 523,376 +
  245,360 + 126,208; head on 256 2,827. 9,322,091.

Counting BatchNorm's running mean and variance as well (Lasagne's ``count_params`` counts every
parameter, statistics included) gives 1,397,963, 3,502,923 and 9,425,163: the paper's 3.5M and 9.4M
(its table says 1.5M for FC-DenseNet56).
"""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register

CONFIGS = {  # layers per block: down path, bottleneck, up path; growth rate
    "fc_densenet56": ([4] * 5, 4, [4] * 5, 12),
    "fc_densenet67": ([5] * 5, 5, [5] * 5, 16),
    "fc_densenet103": ([4, 5, 7, 10, 12], 15, [12, 10, 7, 5, 4], 16),
}


def dense_block(x, layers: int, growth: int, dropout: float):
    """Returns (input and new features concatenated, the new features alone)."""
    new = []
    for i in range(layers):
        with dsl.scope(f"layer{i}"):
            joined = dsl.concat([x, *new], name="concat") if new else x
            y = dsl.relu(dsl.batch_norm(joined, name="bn"))
            new.append(dsl.dropout(dsl.conv2d(y, growth, 3, padding=1, name="conv"), dropout))
    return dsl.concat([x, *new], name="out"), dsl.concat(new, name="new")


def transition_down(x, dropout: float):
    y = dsl.relu(dsl.batch_norm(x, name="bn"))
    y = dsl.dropout(dsl.conv2d(y, x.shape[1], 1, name="conv"), dropout)
    return dsl.max_pool2d(y, 2, name="pool")


def fc_densenet(config: str, num_classes: int = 11, input_size: int = 224, in_channels: int = 3,
                dropout: float = 0.2, first_channels: int = 48, seed: int = 0):
    down, bottleneck, up, growth = CONFIGS[config]
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = dsl.conv2d(x, first_channels, 3, padding=1, name="first_conv")
    skips = []
    for i, layers in enumerate(down):
        with dsl.scope(f"down{i}"):
            y, _ = dense_block(y, layers, growth, dropout)
            skips.append(y)
            with dsl.scope("transition"):
                y = transition_down(y, dropout)
    with dsl.scope("bottleneck"):
        _, new = dense_block(y, bottleneck, growth, dropout)
    for i, (layers, skip) in enumerate(zip(up, reversed(skips))):
        with dsl.scope(f"up{i}"):
            y = dsl.conv_transpose2d(new, new.shape[1], 3, 2, name="transition")
            y = dsl.concat([dsl.crop(y, like=skip, name="crop"), skip], name="skip")
            y, new = dense_block(y, layers, growth, dropout)
    y = dsl.conv2d(y, num_classes, 1, name="classifier")
    return dsl.Model(x, y, name=config, seed=seed)


for _name in CONFIGS:
    register(_name, "dense prediction", f"FC-DenseNet{_name[11:]} (Tiramisu)")(partial(fc_densenet, _name))
