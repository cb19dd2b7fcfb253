"""DeepFace (Taigman et al., CVPR 2014): convolutions at the bottom, locally connected layers above.

The paper's layout on a 152x152x3 aligned face, every layer followed by ReLU:

| layer | what | output | parameters |
|---|---|---|---|
| C1 | conv 32 11x11 | 32x142x142 | 32*3*11*11 + 32 = 11,648 |
| M2 | max pool 3x3 / 2 (ceil, as Caffe) | 32x71x71 | 0 |
| C3 | conv 16 9x9 | 16x63x63 | 16*32*9*9 + 16 = 41,488 |
| L4 | locally connected 16 9x9 | 16x55x55 | 55*55*16*16*9*9 + 16*55*55 = 62,774,800 |
| L5 | locally connected 16 7x7 / 2 | 16x25x25 | 25*25*16*16*7*7 + 16*25*25 = 7,850,000 |
| L6 | locally connected 16 5x5 | 16x21x21 | 21*21*16*16*5*5 + 16*21*21 = 2,829,456 |
| F7 | fully connected 4096, dropout | 4096 | 7056*4096 + 4096 = 28,905,472 |
| F8 | fully connected, the identities (4,030 in SFC) | 4030 | 4096*4030 + 4030 = 16,510,910 |

118,923,774 parameters in all (the paper: "more than 120 million"; its count is not itemised), 62%
of them in L4 alone: without weight sharing the locally connected layers hold 61% and the fully
connected ones 38%. Each locally connected bias is untied too (one per output value). The features
that verify faces are F7's (after ReLU), L2-normalised (``cnngraph.verification.embedding``).

``deepface_small`` keeps the layout (conv, pool, conv, three locally connected layers, F7 with
dropout, F8) at a size that trains on a laptop CPU: 1x32x32 inputs (the digits, resized), and its
count, derived the same way, is asserted by the tests too.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register

PAPER = dict(c1=32, c1_kernel=11, c3=16, c3_kernel=9, local=((16, 9, 1), (16, 7, 2), (16, 5, 1)), f7=4096)
EMBEDDING = "f7_relu"  # the layer whose L2-normalised output verifies
SMALL = dict(c1=16, c1_kernel=5, c3=16, c3_kernel=3, local=((16, 3, 1), (16, 3, 2), (16, 3, 1)), f7=128)


def _deepface(name, num_classes, input_size, in_channels, seed, c1, c1_kernel, c3, c3_kernel, local, f7, dropout):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = dsl.relu(dsl.conv2d(x, c1, c1_kernel, name="c1"), name="c1_relu")
    y = dsl.max_pool2d(y, 3, stride=2, ceil_mode=True, name="m2")
    y = dsl.relu(dsl.conv2d(y, c3, c3_kernel, name="c3"), name="c3_relu")
    for k, (channels, kernel, stride) in enumerate(local, start=4):
        y = dsl.relu(dsl.locally_connected2d(y, channels, kernel, stride=stride, name=f"l{k}"), name=f"l{k}_relu")
    y = dsl.relu(dsl.linear(dsl.flatten(y), f7, init="he", name="f7"), name=EMBEDDING)
    y = dsl.linear(dsl.dropout(y, dropout, name="f7_dropout"), num_classes, name="f8")
    return dsl.Model(x, y, name=name, seed=seed)


@register("deepface", "verification", "DeepFace: conv, pool, conv, three locally connected layers, F7, F8")
def deepface(num_classes: int = 4030, input_size: int = 152, in_channels: int = 3, dropout: float = 0.5,
             seed: int = 0):
    return _deepface("deepface", num_classes, input_size, in_channels, seed, dropout=dropout, **PAPER)


@register("deepface_small", "verification", "DeepFace's layout scaled down for the CPU, 1x32x32 input")
def deepface_small(num_classes: int = 10, input_size: int = 32, in_channels: int = 1, dropout: float = 0.5,
                   seed: int = 0):
    """C1 16 5x5 (28x28), M2 (14x14), C3 16 3x3 (12x12), L4 16 3x3 (10x10), L5 16 3x3 / 2 (4x4),
    L6 16 3x3 (2x2), F7 128, F8: 416 + 2,320 + 232,000 + 37,120 + 9,280 + 8,320 + 1,290 = 290,746
    parameters for 10 classes (L4: 10*10*16*16*3*3 + 16*10*10; F8: 128 * classes + classes)."""
    return _deepface("deepface_small", num_classes, input_size, in_channels, seed, dropout=dropout, **SMALL)
