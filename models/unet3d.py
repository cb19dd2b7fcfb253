"""3-D U-Net (Çiçek, Abdulkadir, Lienkamp, Brox & Ronneberger, 2016): U-Net on volumes (N, C, D, H, W).

Each analysis level holds two 3x3x3 convolutions, each followed by BatchNorm and ReLU, the second
doubling the channels (the paper's 32 -> 64, 64 -> 128, ...), then a 2x2x2 max pooling; each synthesis
level a 2x2x2 up-convolution of stride 2 that keeps the channels, the concatenation with the skip
and two 3x3x3 convolutions; a 1x1x1 convolution gives the class scores. ``width`` is the first
convolution's channels (the paper's 32), ``depth`` the number of poolings (the paper's 3). The
convolutions are padded ("same"), so the output has the input's size and every skip joins without
a crop; the paper's unpadded variant needs 3-D crops.

The defaults (width 4, depth 2, a 16^3 volume) train on a CPU in seconds. Parameters of the default
build (1 input channel, 2 classes), a 3x3x3 conv without bias holding 27 * in * out, its BatchNorm
2 * out, a 2x2x2 up-convolution 8 * in * out + out and the head in * out + out:
down1 108 + 8 | 864 + 16; down2 1,728 + 16 | 3,456 + 32; bottom 6,912 + 32 | 13,824 + 64;
up2 upconv 8,224, convs (48 in) 20,736 + 32 | 6,912 + 32; up1 upconv 2,064, convs (24 in) 5,184 + 16 |
1,728 + 16; head 18. Total 72,022.

The paper's network (3 input channels, 3 classes, width 32, depth 3) counts 19,073,187 here. The
paper gives 19,069,955: the same layers counted with a bias per convolution in place of
BatchNorm's two parameters per channel and no up-convolution biases (19,073,187 - 2,336 - 896).
"""

from cnngraph.errors import GraphError
from cnngraph.frontends import dsl
from cnngraph.models import register


def conv_bn_relu(x, out: int, k: int):
    x = dsl.conv3d(x, out, 3, padding=1, bias=False, name=f"conv{k}")
    return dsl.relu(dsl.batch_norm(x, name=f"bn{k}"), name=f"relu{k}")


def check_volume_size(size: int, depth: int) -> None:
    """Every pooling halves the volume, and each up-convolution must restore its skip's size exactly."""
    step = 2**depth
    if size < step or size % step:
        near = [s for s in (size - size % step, size - size % step + step) if s >= step]
        raise GraphError(f"3-D U-Net (depth {depth}): input size {size} must be a positive multiple of "
                         f"2^{depth} = {step} so that {depth} poolings halve it exactly; the nearest sizes that "
                         f"work are {' or '.join(map(str, near))}")


@register("unet3d", "dense prediction", "3-D U-Net on volumes (N, C, D, H, W); depth and width (small by default)")
def unet3d(num_classes: int = 2, input_size: int = 16, in_channels: int = 1, depth: int = 2, width: int = 4,
           seed: int = 0):
    check_volume_size(input_size, depth)
    x = dsl.input("volume", (in_channels, input_size, input_size, input_size))
    y, skips = x, []
    for level in range(1, depth + 1):
        channels = width * 2 ** (level - 1)
        with dsl.scope(f"down{level}"):
            y = conv_bn_relu(conv_bn_relu(y, channels, 1), 2 * channels, 2)
        skips.append(y)
        y = dsl.max_pool3d(y, 2, name=f"pool{level}")
    with dsl.scope("bottom"):
        channels = width * 2**depth
        y = conv_bn_relu(conv_bn_relu(y, channels, 1), 2 * channels, 2)
    for level in range(depth, 0, -1):
        channels = 2 * width * 2 ** (level - 1)
        with dsl.scope(f"up{level}"):
            y = dsl.conv_transpose3d(y, y.shape[1], 2, stride=2, name="upconv")
            y = dsl.concat([skips[level - 1], y], name="concat")
            y = conv_bn_relu(conv_bn_relu(y, channels, 1), channels, 2)
    y = dsl.conv3d(y, num_classes, 1, name="head")
    return dsl.Model(x, y, name="unet3d", seed=seed)
