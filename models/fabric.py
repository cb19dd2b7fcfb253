"""Convolutional neural fabrics (Saxena & Verbeek, 2016): a trellis of ``scales`` x ``layers`` nodes.

Node (s, l) sums three 3x3 convolutions of the previous layer: of (s, l-1) at its own scale, of
the finer (s-1, l-1) with stride 2, and of the coarser (s+1, l-1) after nearest upsampling, then
applies BatchNorm and ReLU. Layer 0 is the image's conv at scale 0 and strided convs down the
scales. Channels are constant or double per scale (``policy``). The classifier reads the coarsest
node of the last layer (``task="classify"``), the segmenter the finest (``"segment"``); nodes that
cannot reach it are not built. ``disabled`` switches edges off as (scale, layer, kind) with kind
"same", "finer" or "coarser" (the edge entering node (scale, layer) from that neighbour), so weak
connections can be pruned; a node left without inputs disappears with its outgoing edges.

Parameters by hand, defaults (4 scales, 8 layers, 32 channels constant, classification, 10
classes). Working back from the output (3, 7), the live nodes per layer are {3}, {2, 3}, {1, 2, 3}
and then all four: 26 nodes, BN 26 * 64 = 1,664. Live 32 -> 32 edges: into layer 7 2 (same, finer),
layer 6 5, layer 5 8, layers 4 to 1 10 each, layer 0 3 strided: 58 * 9 * 32^2 = 534,528; the image
conv 9 * 3 * 32 = 864; the classifier 32 * 10 + 10 = 330. Total 537,386.
"""

from cnngraph.errors import GraphError
from cnngraph.frontends import dsl
from cnngraph.models import register
from cnngraph.models.edges import disabled_set, live_sum, require

KINDS = ("same", "finer", "coarser")
POLICIES = ("constant", "doubling")
TASKS = ("classify", "segment")


def conv(x, out, name, stride=1):
    return dsl.conv2d(x, out, 3, stride=stride, padding=1, bias=False, name=name)


@register("fabric", "grid", "convolutional neural fabric: scales x layers trellis, prunable edges")
def fabric(num_classes: int = 10, input_size: int = 32, in_channels: int = 3, scales: int = 4, layers: int = 8,
           channels: int = 32, policy: str = "constant", task: str = "classify", disabled=(), seed: int = 0):
    if policy not in POLICIES or task not in TASKS:
        raise GraphError(f"fabric: policy must be one of {POLICIES} and task one of {TASKS}, got {policy!r}, {task!r}")
    if input_size < 2 ** (scales - 1):
        raise GraphError(f"fabric: {scales} scales need an input of at least {2 ** (scales - 1)} pixels, got {input_size}")
    off = disabled_set("fabric", disabled, KINDS, {"scale": scales, "layer": layers})
    width = [channels * (2 ** s if policy == "doubling" else 1) for s in range(scales)]
    sizes = [input_size]
    for _ in range(scales - 1):
        sizes.append((sizes[-1] + 1) // 2)  # a 3x3 conv with stride 2 and padding 1 halves, rounding up
    x = dsl.input("image", (in_channels, input_size, input_size))
    grid: dict[tuple[int, int], object] = {}
    for layer in range(layers):
        for s in range(scales):
            with dsl.scope(f"node{s}_{layer}"):
                grid[s, layer] = _node(x, grid, s, layer, width, sizes[s], off)
    target = (scales - 1, layers - 1) if task == "classify" else (0, layers - 1)
    y = require(grid[target], "fabric", target, off)
    if task == "classify":
        y = dsl.linear(dsl.flatten(dsl.global_avg_pool(y)), num_classes, name="classifier")
    else:
        y = dsl.conv2d(y, num_classes, 1, name="classifier")
    return dsl.Model(x, y, name="fabric", seed=seed)


def _node(image, grid, s, layer, width, size, off):
    """Sum the live incoming edges of node (s, layer), then BN and ReLU; None when none is live."""
    def edge(kind, source, make):
        return None if source is None or (s, layer, kind) in off else make(source)

    if layer == 0:
        terms = [conv(image, width[0], "input")] if s == 0 else [
            edge("finer", grid.get((s - 1, 0)), lambda t: conv(t, width[s], "finer", stride=2))]
    else:
        prev = layer - 1
        same = grid[s, prev]
        terms = [
            edge("same", same, lambda t: conv(t, width[s], "same")),
            edge("finer", grid.get((s - 1, prev)), lambda t: conv(t, width[s], "finer", stride=2)),
            edge("coarser", grid.get((s + 1, prev)),
                 lambda t: conv(dsl.upsample(t, size=size), width[s], "coarser")),
        ]
    total = live_sum(terms)
    return None if total is None else dsl.relu(dsl.batch_norm(total, name="bn"), name="relu")

