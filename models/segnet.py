"""SegNet (Badrinarayanan, Kendall & Cipolla, 2017): a VGG-16-BN encoder whose max-pooling indices
drive the decoder's unpooling, so boundaries come back where the encoder found them.

The encoder is torchvision's ``vgg16_bn`` ``features`` (ImageNet weights load); each pool
``features.<i>`` has a sibling ``features.<i>.indices``. The decoder mirrors it: unpool, then
3x3 conv-BN-ReLU layers, and a last 3x3 conv to the classes (no BN, no ReLU), as in the reference
Caffe model.

Parameters by hand, K classes (11 for CamVid): encoder convs 14,714,688 + BN 2 * 4,224 = 8,448;
decoder convs (9 * in * out + out) 3 x 512->512 7,079,424 | 512->512 x 2 4,719,616, 512->256
1,179,904 | 256->256 x 2 1,180,160, 256->128 295,040 | 128->128 147,584, 128->64 73,792 |
64->64 36,928, 64->K 577K; decoder BN 2 * 3,712 = 7,424. With K = 11: 29,449,355 (the paper's 29.5M).
"""

from cnngraph.frontends import dsl
from cnngraph.models import register, scaled
from cnngraph.models.vgg import features

DECODER = [[512, 512, 512], [512, 512, 256], [256, 256, 128], [128, 64], [64]]  # stages 5 .. 1, then the classes


def pool_with_indices(y, name: str, record: list):
    """A 2x2 max pool and its argmax indices; ``record`` collects (values, indices, pool input)."""
    values = dsl.max_pool2d(y, 2, 2, name=name)
    indices = dsl.layer("MaxPool2dIndices", [y], name=f"{name}.indices", kernel_size=2, stride=2)
    record.append((values, indices, y))
    return values


def unpool(x, indices, like, name: str):
    """Put ``x`` back where ``indices`` say, at the size of ``like`` (the pool's input)."""
    return dsl.layer("MaxUnpool2d", [x, indices], name=name, kernel_size=2, stride=2, output_size=like.shape[2:])


@register("segnet", "dense prediction", "SegNet: VGG-16-BN encoder, decoder unpooling with the pooling indices")
def segnet(num_classes: int = 11, input_size: int = 224, in_channels: int = 3, width: float = 1.0, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    pools: list = []
    y, _ = features(x, "vgg16", True, pool=lambda t, name: pool_with_indices(t, name, pools), width=width)
    for stage, channels in zip(range(5, 0, -1), DECODER):
        _, indices, like = pools[stage - 1]
        with dsl.scope(f"decoder{stage}"):
            y = unpool(y, indices, like, "unpool")
            for i, c in enumerate(channels):
                y = dsl.conv2d(y, scaled(c, width), 3, padding=1, name=f"{i}.conv")
                y = dsl.relu(dsl.batch_norm(y, name=f"{i}.bn"), name=f"{i}.relu")
    y = dsl.conv2d(y, num_classes, 3, padding=1, name="classifier")
    return dsl.Model(x, y, name="segnet", seed=seed)
