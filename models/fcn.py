"""Fully convolutional networks FCN-32s/16s/8s (Long, Shelhamer & Darrell, 2015) on a VGG-16 backbone.

The backbone keeps torchvision's ``features.<i>`` names (ImageNet VGG-16 weights load), with Caffe's
choices that make the geometry work: the first conv pads by 100 and pools round up (ceil_mode), so
any input size survives fc6's 7x7 window. The heads use the reference Caffe names: fc6/fc7 as
convolutions, ``score_*`` 1x1 classifiers (zero-initialised, as in the paper) and ``upscore*``
transposed convolutions without bias, initialised to bilinear upsampling. Crops take the reference
models' offsets (19; 5 and 27; 5, 9 and 31): ``tests/test_analysis.py`` checks that the alignment
analysis derives the same numbers from the layer geometry alone.

Parameter counts by hand, K classes (21 for PASCAL VOC): the VGG-16 convs hold 14,714,688;
fc6 4,096*512*7*7+4,096 = 102,764,544; fc7 4,096*4,096+4,096 = 16,781,312; score_fr 4,096K+K.
FCN-32s adds upscore K*K*64*64; FCN-16s upscore2 K*K*4*4, score_pool4 512K+K, upscore16 K*K*32*32;
FCN-8s upscore2 and upscore_pool4 K*K*4*4 each, score_pool4 512K+K, score_pool3 256K+K, upscore8
K*K*16*16. With K = 21: 134,346,581 before the heads (the paper's "134M"), and in all
FCN-32s 136,152,917; FCN-16s 134,815,994; FCN-8s 134,489,759.
"""

from functools import partial

from cnngraph.frontends import dsl
from cnngraph.models import register, scaled
from cnngraph.models.vgg import features

# per variant: the pool skips fused on the way up with their crop offsets, then the last upsampler
SKIPS = {"fcn32s": [], "fcn16s": [("pool4", 5)], "fcn8s": [("pool4", 5), ("pool3", 9)]}
FINAL = {"fcn32s": ("upscore", 32, 19), "fcn16s": ("upscore16", 16, 27), "fcn8s": ("upscore8", 8, 31)}
POOLS = {"pool3": 2, "pool4": 3}  # index among the backbone's five pools


def crop_at(x, like, offset: int, name: str):
    """Caffe's Crop: ``like``'s spatial size, starting ``offset`` rows and columns into ``x``."""
    h, w = like.shape[2:]
    return dsl.slice(x, (2, 3), (offset, offset), (offset + h, offset + w), name=name)


def upscore(x, factor: int, name: str):
    """A transposed conv of kernel 2 * factor and stride factor, initialised as bilinear upsampling."""
    return dsl.conv_transpose2d(x, x.shape[1], 2 * factor, factor, bias=False, init="bilinear", name=name)


def fcn(variant: str, num_classes: int = 21, input_size: int = 224, in_channels: int = 3, width: float = 1.0,
        dropout: float = 0.5, seed: int = 0):
    """``width`` scales every channel count (1 is the paper's network)."""
    x = dsl.input("image", (in_channels, input_size, input_size))
    _, pools = features(x, "vgg16", False, first_padding=100, pool=_ceil_pool, width=width)
    fc = scaled(4096, width)
    y = dsl.dropout(dsl.relu(dsl.conv2d(pools[-1], fc, 7, name="fc6"), name="relu6"), dropout, name="drop6")
    y = dsl.dropout(dsl.relu(dsl.conv2d(y, fc, 1, name="fc7"), name="relu7"), dropout, name="drop7")
    y = dsl.conv2d(y, num_classes, 1, init="zeros", name="score_fr")
    up_name = "upscore2"
    for skip, offset in SKIPS[variant]:
        up = upscore(y, 2, up_name)
        score = dsl.conv2d(pools[POOLS[skip]], num_classes, 1, init="zeros", name=f"score_{skip}")
        y = dsl.add(up, crop_at(score, up, offset, f"score_{skip}c"), name=f"fuse_{skip}")
        up_name = f"upscore_{skip}"
    name, factor, offset = FINAL[variant]
    y = crop_at(upscore(y, factor, name), x, offset, "score")
    return dsl.Model(x, y, name=variant, seed=seed)


def _ceil_pool(y, name):
    return dsl.max_pool2d(y, 2, 2, ceil_mode=True, name=name)


for _name in SKIPS:
    register(_name, "dense prediction", f"FCN-{_name[3:]} on VGG-16, Caffe geometry (pad 100, bilinear upscores)")(
        partial(fcn, _name))
