"""Temporal convolutional network (Bai, Kolter & Koltun, 2018): a 1-D CNN classifier of sequences (N, C, L).

Each residual block holds two causal convolutions of dilation 2^i (padded on the left only by
(k - 1) * 2^i, so position t sees no later position), each followed by ReLU and dropout, and adds its
input back, through a 1x1 convolution where the channels change. The class scores are a linear
layer on the last time step, which sees 1 + 2 (k - 1) (2^levels - 1) steps: 61 for the default
four levels of kernel 3 (the paper's receptive-field formula). The paper's weight normalisation is
left out (it reparametrises the same weights).

A causal block's output t is centred (k - 1) d steps before t, where its skip is centred on t; both
fields end at step t, so ``cnngraph summary`` reports the residual joins as causal, not offset.

Parameters of the default build (1 input channel, 10 classes, four levels of 16 channels, kernel 3), a
conv holding k * in * out + out: block0 64 + 784 + downsample 32; blocks 1-3 784 + 784 each;
linear 170. Total 5,754.
"""

from cnngraph.frontends import dsl
from cnngraph.models import register


def causal_conv(x, out: int, kernel: int, dilation: int, name: str):
    """Padding (k - 1) * d at the start only: output t reads inputs t - (k - 1) d .. t."""
    return dsl.conv1d(x, out, kernel, padding=((kernel - 1) * dilation, 0), dilation=dilation, name=name)


def temporal_block(x, out: int, kernel: int, dilation: int, dropout: float):
    y = x
    for k in (1, 2):
        y = dsl.relu(causal_conv(y, out, kernel, dilation, f"conv{k}"), name=f"relu{k}")
        if dropout:
            y = dsl.dropout(y, dropout, name=f"dropout{k}")
    skip = x if x.shape[1] == out else dsl.conv1d(x, out, 1, name="downsample")
    return dsl.relu(dsl.add(y, skip, name="add"), name="relu")


@register("temporal_cnn", "classification", "TCN: dilated causal 1-D convolutions on sequences (N, C, L)")
def temporal_cnn(num_classes: int = 10, input_size: int = 64, in_channels: int = 1, levels: int = 4,
                 channels: int = 16, kernel_size: int = 3, dropout: float = 0.0, seed: int = 0):
    x = dsl.input("sequence", (in_channels, input_size))
    y = x
    for level in range(levels):
        with dsl.scope(f"block{level}"):
            y = temporal_block(y, channels, kernel_size, 2**level, dropout)
    last = dsl.slice(y, axes=(2,), starts=(input_size - 1,), ends=(input_size,), name="last")
    y = dsl.linear(dsl.flatten(last), num_classes, name="fc")
    return dsl.Model(x, y, name="temporal_cnn", seed=seed)
