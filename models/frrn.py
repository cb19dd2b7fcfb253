"""Full-resolution residual network FRRN-A (Pohlen et al., 2017): two streams coupled in every unit.

The residual stream stays at full resolution (32 channels) and only ever receives additions; the
pooling stream runs down and up a pyramid for context. A full-resolution residual unit (FRRU) at
scale s pools the residual stream by s, concatenates it to the pooling stream, applies two
conv-BN-ReLU layers (the new pooling stream), and adds a 1x1 projection of the result, upsampled
by s, back to the residual stream. Upsampling is nearest-neighbour: after 2x2 max pools it lands
pixel-aligned, which ``cnngraph summary`` confirms at every join.

Parameters by hand, K = 19 classes (Cityscapes). Convs before BN carry no bias; a BN over c holds 2c.
- stem 5x5 3 -> 48 3,600 + BN 96 = 3,696; a residual unit RU(48) 2 * (9 * 48^2 + 96) = 41,664, six of
  them 249,984; split 1x1 48 -> 32 1,568; merge 1x1 (96 + 32) -> 48 6,192; classifier 48K + K = 931.
- an FRRU from c' to c channels: 9(c' + 32)c + 2c + 9c^2 + 2c + 32c + 32 = 9c'c + 9c^2 + 324c + 32.
  Encoder (c', c) per unit: (48, 96) 155,552 and (96, 96) 197,024 x 2 (scale 2); (96, 192) 559,904 and
  (192, 192) 725,792 x 3 (scale 4); (192, 384) 2,115,104 and (384, 384) 2,778,656 (scale 8);
  (384, 384) 2,778,656 x 2 (scale 16). Decoder: (384, 192) 1,057,568 and (192, 192) 725,792 (scale 8);
  (192, 192) 725,792 x 2 (scale 4); (192, 96) 279,968 and (96, 96) 197,024 (scale 2).
Total 17,712,259.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register

ENCODER = [(3, 96, 2), (4, 192, 4), (2, 384, 8), (2, 384, 16)]  # (units, channels, scale)
DECODER = [(2, 192, 8), (2, 192, 4), (2, 96, 2)]
RESIDUAL_CHANNELS = 32


def conv_bn_relu(x, out, kernel, name, relu=True):
    y = dsl.batch_norm(dsl.conv2d(x, out, kernel, padding=kernel // 2, bias=False, name=f"{name}.conv"),
                       name=f"{name}.bn")
    return dsl.relu(y) if relu else y


def residual_unit(x):
    y = conv_bn_relu(conv_bn_relu(x, x.shape[1], 3, "0"), x.shape[1], 3, "1", relu=False)
    return dsl.add(x, y)


def frru(pool_stream, residual, channels: int, scale: int):
    """Returns the new (pooling stream, residual stream)."""
    pooled = dsl.max_pool2d(residual, scale, name="pool_residual")
    y = conv_bn_relu(dsl.concat([pool_stream, pooled]), channels, 3, "0")
    y = conv_bn_relu(y, channels, 3, "1")
    update = dsl.upsample(dsl.conv2d(y, RESIDUAL_CHANNELS, 1, name="project"), scale_factor=scale)
    return y, dsl.add(residual, update, name="residual")


def residual_units(x, scope: str, count: int = 3):
    for i in range(count):
        with dsl.scope(f"{scope}.{i}"):
            x = residual_unit(x)
    return x


@register("frrn_a", "dense prediction", "full-resolution residual network FRRN-A (two coupled streams)")
def frrn_a(num_classes: int = 19, input_size: int = 256, in_channels: int = 3, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = residual_units(conv_bn_relu(x, 48, 5, "stem"), "ru_in")
    z = dsl.conv2d(y, RESIDUAL_CHANNELS, 1, name="split")
    for stage, (units, channels, scale) in enumerate(ENCODER + DECODER):
        down = stage < len(ENCODER)
        y = dsl.max_pool2d(y, 2, name=f"pool{stage}") if down else dsl.upsample(y, 2, name=f"unpool{stage}")
        for i in range(units):
            with dsl.scope(f"frru{stage}.{i}"):
                y, z = frru(y, z, channels, scale)
    y = dsl.concat([dsl.upsample(y, 2, name="unpool_last"), z], name="merge_streams")
    y = residual_units(dsl.conv2d(y, 48, 1, name="merge"), "ru_out")
    return dsl.Model(x, dsl.conv2d(y, num_classes, 1, name="classifier"), name="frrn_a", seed=seed)
