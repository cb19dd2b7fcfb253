"""U-Net (Ronneberger, Fischer & Brox, 2015): a contracting path, an expanding path, and skips
joined by concatenation. ``depth`` is the number of 2x2 poolings, ``width`` the first level's
channels (doubling per level); ``padding="valid"`` is the paper's (unpadded 3x3 convs, each skip
centre-cropped to the upsampled map, output smaller than the input), ``"same"`` keeps sizes.

Parameters of the paper's network (1 input channel, 2 classes, width 64, depth 4), by hand, a 3x3
conv holding 9 * in * out + out and a 2x2 up-convolution 4 * in * out + out:
down 640 + 36,928 | 73,856 + 147,584 | 295,168 + 590,080 | 1,180,160 + 2,359,808;
bottom 4,719,616 + 9,438,208; up4 2,097,664 + 4,719,104 + 2,359,808; up3 524,544 + 1,179,904 +
590,080; up2 131,200 + 295,040 + 147,584; up1 32,832 + 73,792 + 36,928; 1x1 head 130.
Total 31,030,658 (padding does not change it).
"""

import itertools

from cnngraph.errors import GraphError
from cnngraph.frontends import dsl
from cnngraph.models import register

PADDINGS = ("valid", "same")


def double_conv(x, out: int, padding: str, batch_norm: bool):
    for k in (1, 2):
        x = dsl.conv2d(x, out, 3, padding=padding, bias=not batch_norm, name=f"conv{k}")
        if batch_norm:
            x = dsl.batch_norm(x, name=f"bn{k}")
        x = dsl.relu(x, name=f"relu{k}")
    return x


def pre_pool_sizes(size: int, depth: int, padding: str) -> list[int]:
    """The map size before each pooling, and at the bottom, for an input of ``size``."""
    shrink = 4 if padding == "valid" else 0
    sizes = []
    for _ in range(depth + 1):
        size -= shrink
        sizes.append(size)
        size //= 2
    return sizes


def valid_size(size: int, depth: int, padding: str) -> bool:
    sizes = pre_pool_sizes(size, depth, padding)
    return sizes[-1] > 0 and all(s > 0 and s % 2 == 0 for s in sizes[:-1])


def check_input_size(size: int, depth: int, padding: str) -> None:
    """Every map before a pooling must be even (else the skip and the upsampled map cannot line up)."""
    if valid_size(size, depth, padding):
        return
    below = next((s for s in range(size - 1, 0, -1) if valid_size(s, depth, padding)), None)
    above = next(s for s in itertools.count(size + 1) if valid_size(s, depth, padding))  # the smallest may be far up
    near = f"{below} or {above}" if below else str(above)
    raise GraphError(f"U-Net ({padding} padding, depth {depth}): input size {size} gives maps "
                     f"{pre_pool_sizes(size, depth, padding)} before the poolings, which must be positive and "
                     f"even; the nearest sizes that work are {near}")


@register("unet", "dense prediction", "U-Net; depth, width and padding (valid: the paper's crops; same)")
def unet(num_classes: int = 2, input_size: int = 572, in_channels: int = 1, depth: int = 4, width: int = 64,
         padding: str = "valid", batch_norm: bool = False, seed: int = 0):
    if padding not in PADDINGS:
        raise GraphError(f"U-Net: padding must be one of {PADDINGS}, got {padding!r}")
    check_input_size(input_size, depth, padding)
    x = dsl.input("image", (in_channels, input_size, input_size))
    y, skips = x, []
    for level in range(1, depth + 1):
        with dsl.scope(f"down{level}"):
            y = double_conv(y, width * 2 ** (level - 1), padding, batch_norm)
        skips.append(y)
        y = dsl.max_pool2d(y, 2, name=f"pool{level}")
    with dsl.scope("bottom"):
        y = double_conv(y, width * 2 ** depth, padding, batch_norm)
    for level in range(depth, 0, -1):
        channels = width * 2 ** (level - 1)
        with dsl.scope(f"up{level}"):
            y = dsl.conv_transpose2d(y, channels, 2, 2, name="upconv")
            skip = skips[level - 1] if padding == "same" else dsl.crop(skips[level - 1], like=y, name="crop")
            y = double_conv(dsl.concat([skip, y], name="concat"), channels, padding, batch_norm)
    y = dsl.conv2d(y, num_classes, 1, name="head")
    return dsl.Model(x, y, name="unet", seed=seed)
