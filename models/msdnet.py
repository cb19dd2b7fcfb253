"""An MSDNet-style multi-scale dense network (Huang et al., 2018) with intermediate classifiers.

``scales`` feature streams run side by side (channels doubling as resolution halves). Every layer
adds new features to each stream, DenseNet-style (concatenated to everything before): a 3x3 conv
of the same scale, and, below the finest, a stride-2 conv of the finer scale's features, each
giving half the new channels. After every ``step`` layers an exit classifies from the coarsest
stream, so the outputs are exit 1 .. ``blocks`` in order of depth: any-time prediction stops at
the first exit whose answer is good enough (``cnngraph run msdnet --exit K`` computes only what
exit K needs). Unlike the paper's network, no transition layer drops the finest scales.

Parameters by hand, defaults (3 scales of 16, 32, 64 channels, growth 6, 12, 24, 4 blocks of 2
layers, exits of 128 channels, 10 classes); a 3x3 conv-BN from a to b channels holds 9ab + 2b.
Layer 0: 464 + 4,672 + 18,560 = 23,696. Layer l = 1 .. 8 enters with 16 + 6(l-1), 32 + 12(l-1) and
64 + 24(l-1) channels (sums over the 8 layers 296, 592, 1,184): scale 0 holds 54 * 296 + 96 = 16,080,
scale 1 16,080 (stride 2) + 54 * 592 + 96 (same scale) = 48,144, scale 2 108 * 592 + 192 + 108 * 1,184
+ 192 = 192,192. The last exit reads only the coarsest stream, so nothing needs scales 0 and 1 of
layer 8 nor scale 0 of layer 7, which are not built: -3,144 - (3,144 + 6,276) - 2,820 = -15,384.
The exits read 112, 160, 208 and 256 channels: 1,152 * 736 + 1,024 = 848,896 for their first convs,
4 * (147,712 + 1,290) = 596,008 for the second convs and linears. Total 1,709,632.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register


def conv_bn_relu(x, out, name, stride=1):
    y = dsl.conv2d(x, out, 3, stride=stride, padding=1, bias=False, name=f"{name}.conv")
    return dsl.relu(dsl.batch_norm(y, name=f"{name}.bn"))


def joined(features: list):
    return dsl.concat(features) if len(features) > 1 else features[0]


def exit_head(x, channels: int, num_classes: int):
    y = conv_bn_relu(conv_bn_relu(x, channels, "0", stride=2), channels, "1", stride=2)
    return dsl.linear(dsl.flatten(dsl.global_avg_pool(y)), num_classes, name="linear")


@register("msdnet", "any-time", "MSDNet-style multi-scale dense network with an exit per block (run --exit K)")
def msdnet(num_classes: int = 10, input_size: int = 32, in_channels: int = 3, scales: int = 3, blocks: int = 4,
           step: int = 2, channels: int = 16, growth: int = 6, head_channels: int = 128, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    features, y = [], x
    with dsl.scope("layer0"):
        for s in range(scales):
            y = conv_bn_relu(y, channels * 2 ** s, f"scale{s}", stride=1 if s == 0 else 2)
            features.append([y])
    exits = []
    for layer in range(1, blocks * step + 1):
        with dsl.scope(f"layer{layer}"):
            new = []
            for s in range(scales):
                g = growth * 2 ** s
                same = conv_bn_relu(joined(features[s]), g if s == 0 else g // 2, f"scale{s}.same")
                if s > 0:
                    finer = conv_bn_relu(joined(features[s - 1]), g // 2, f"scale{s}.finer", stride=2)
                    same = dsl.concat([finer, same])
                new.append(same)
        for s in range(scales):
            features[s].append(new[s])
        if layer % step == 0:
            with dsl.scope(f"exit{layer // step}"):
                exits.append(exit_head(joined(features[-1]), head_channels, num_classes))
    return dsl.Model(x, exits, name="msdnet", seed=seed)
