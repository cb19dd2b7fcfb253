"""LeNet-5 (LeCun et al., 1998) with the paper's layer sizes.

C3 is fully connected to S2 (the paper's sparse table is dropped, as in most modern
re-implementations) and S2/S4 are plain average pools, so the parameter count is
C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850 = 61,706 for a 1x32x32 input.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register


@register("lenet5", "chain", "LeNet-5, tanh + average pooling, 1x32x32 input")
def lenet5(num_classes: int = 10, input_size: int = 32, in_channels: int = 1, seed: int = 0):
    x = dsl.input("image", (in_channels, input_size, input_size))
    y = dsl.tanh(dsl.conv2d(x, 6, 5, init="lecun", name="c1"))
    y = dsl.avg_pool2d(y, 2, name="s2")
    y = dsl.tanh(dsl.conv2d(y, 16, 5, init="lecun", name="c3"))
    y = dsl.avg_pool2d(y, 2, name="s4")
    y = dsl.tanh(dsl.conv2d(y, 120, 5, init="lecun", name="c5"))
    y = dsl.tanh(dsl.linear(dsl.flatten(y), 84, init="lecun", name="f6"))
    y = dsl.linear(y, num_classes, init="lecun", name="output")
    return dsl.Model(x, y, name="lenet5", seed=seed)
