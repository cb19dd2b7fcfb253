"""The context module of Yu & Koltun (2016), "Multi-scale context aggregation by dilated convolutions".

Seven 3x3 convolutions dilated 1, 1, 2, 4, 8, 16, 1 (each followed by the pointwise truncation
max(., 0)) and a 1x1 output layer aggregate context over a 67x67 field without losing resolution:
the fields after each layer are the paper's Table 1, 3, 5, 9, 17, 33, 65, 67, 67. The module reads
and writes C score maps (C = ``num_classes``, 21 for PASCAL VOC); the basic module keeps C channels,
the large one widens to 2C, 2C, 4C, 8C, 16C, 32C, 32C. Weights start as the paper's (generalised)
identity, so the untrained module passes its input through.

Parameters by hand: basic 7 * (9C^2 + C) + (C^2 + C) = 64C^2 + 8C, 28,392 for C = 21; large
9C(C*2 + 2C*2 + 2C*4 + 4C*8 + 8C*16 + 16C*32 + 32C*32) + 32C*C + (2+2+4+8+16+32+32+1)C
= 15,422C^2 + 97C, 6,803,139 for C = 21.
"""

import numpy as np

from cnngraph.frontends import dsl
from cnngraph.models import register

DILATIONS = (1, 1, 2, 4, 8, 16, 1)
LARGE_WIDTHS = (2, 2, 4, 8, 16, 32, 32)  # multiples of C


def identity_kernel(c_out: int, c_in: int, k: int, classes: int) -> np.ndarray:
    """The paper's initialisation: C / c_out at the kernel's centre where floor(a C / c_in) equals
    floor(b C / c_out) (plain identity when c_in = c_out = C), zero elsewhere."""
    a, b = np.arange(c_in), np.arange(c_out)
    w = np.zeros((c_out, c_in, k, k), dtype=np.float32)
    w[:, :, k // 2, k // 2] = ((a * classes // c_in)[None, :] == (b * classes // c_out)[:, None]) * classes / c_out
    return w


@register("context_module", "dense prediction", "Yu & Koltun's dilated context module (large=True: the large one)")
def context_module(num_classes: int = 21, input_size: int = 64, large: bool = False, seed: int = 0):
    c = num_classes
    x = dsl.input("scores", (c, input_size, input_size))
    widths = [w * c for w in LARGE_WIDTHS] if large else [c] * len(DILATIONS)
    y = x
    for i, (d, width) in enumerate(zip(DILATIONS, widths), start=1):
        y = dsl.relu(dsl.conv2d(y, width, 3, padding=d, dilation=d, init="zeros", name=f"layer{i}"))
    y = dsl.conv2d(y, c, 1, init="zeros", name=f"layer{len(DILATIONS) + 1}")
    graph = dsl.Model(x, y, name="context_module" + ("_large" if large else ""), seed=seed)
    for node in graph.nodes:
        if node.op == "Conv2d":
            w = graph.params[node.params["weight"]]
            graph.params[node.params["weight"]] = identity_kernel(*w.shape[:3], c)
            graph.params[node.params["bias"]][...] = 0.0
    return graph
