"""GridNet (Fourure et al., 2017): a residual conv-deconv grid for semantic segmentation.

``rows`` streams at halving resolutions and doubling channels (``channels`` at the top) cross
``columns`` columns. Along a row, consecutive nodes are joined by residual units
(x + BN-ReLU-conv-BN-ReLU-conv). In the first half of the columns each node also receives the
stream above through a stride-2 block (BN-ReLU-conv/2-BN-ReLU-conv); in the second half the
stream below through a transposed block (BN-ReLU-deconv x2-BN-ReLU-conv). The prediction
reads the top-right node. ``disabled`` switches edges off as (row, column, kind), kind "lateral"
or "vertical" (the edge entering that node), as in the paper's total dropout or a pruned grid.
The stride-2 conv and the transposed conv share their geometry (kernel 3, padding 1), so the
vertical sums are pixel-aligned, which ``cnngraph summary`` confirms.

Parameters by hand, defaults (5 rows, 6 columns, 16 channels doubling to 256, 19 classes), convs
before BN without bias: stem 3x3 conv 3 -> 16 with bias 448; lateral units 2(2c + 9c^2) per row
and column gap, summed over c = 16 .. 256: 1,573,312, times 5 gaps 7,866,560; stride-2 blocks
from c to 2c 2c + 18c^2 + 4c + 36c^2, over c = 16 .. 128 1,176,480 per column, 3,529,440 for three;
transposed blocks from 2c to c 4c + 18c^2 + 2c + 9c^2: 588,960 per column, 1,766,880 for three;
head BN 32 + 3x3 conv 16 -> 19 with bias 2,755. Total 13,166,115.
"""

from cnngraph.errors import GraphError
from cnngraph.frontends import dsl
from cnngraph.models import register
from cnngraph.models.edges import disabled_set, live_sum, require

KINDS = ("lateral", "vertical")


def bn_relu_conv(x, out, name, stride=1, transposed=False):
    y = dsl.relu(dsl.batch_norm(x, name=f"{name}.bn"))
    if transposed:
        return dsl.conv_transpose2d(y, out, 3, 2, padding=1, output_padding=1, bias=False, name=f"{name}.conv")
    return dsl.conv2d(y, out, 3, stride=stride, padding=1, bias=False, name=f"{name}.conv")


def lateral(x):
    with dsl.scope("lateral"):
        return dsl.add(x, bn_relu_conv(bn_relu_conv(x, x.shape[1], "0"), x.shape[1], "1"))


def vertical(x, out, down: bool):
    with dsl.scope("down" if down else "up"):
        y = bn_relu_conv(x, out, "0", stride=2 if down else 1, transposed=not down)
        return bn_relu_conv(y, out, "1")


@register("gridnet", "grid", "GridNet: residual conv-deconv grid for segmentation, prunable edges")
def gridnet(num_classes: int = 19, input_size: int = 64, in_channels: int = 3, rows: int = 5, columns: int = 6,
            channels: int = 16, disabled=(), seed: int = 0):
    if columns < 2 or columns % 2:
        raise GraphError(f"gridnet: columns must be even (half down, half up) and at least 2, got {columns}")
    if input_size % 2 ** (rows - 1):
        raise GraphError(f"gridnet: {rows} rows halve the input {rows - 1} times, so its size must be a multiple "
                         f"of {2 ** (rows - 1)}, got {input_size}")
    off = disabled_set("gridnet", disabled, KINDS, {"row": rows, "column": columns})
    width = [channels * 2 ** r for r in range(rows)]
    x = dsl.input("image", (in_channels, input_size, input_size))
    grid: dict[tuple[int, int], object] = {}
    for c in range(columns):
        down = c < columns // 2
        for r in (range(rows) if down else range(rows - 1, -1, -1)):
            source = grid.get((r - 1, c) if down else (r + 1, c))
            with dsl.scope(f"node{r}_{c}"):
                if (r, c) == (0, 0):
                    grid[r, c] = dsl.conv2d(x, width[0], 3, padding=1, name="stem")
                    continue
                terms = [
                    None if c == 0 or grid[r, c - 1] is None or (r, c, "lateral") in off else lateral(grid[r, c - 1]),
                    None if source is None or (r, c, "vertical") in off else vertical(source, width[r], down),
                ]
                grid[r, c] = live_sum(terms)
    y = require(grid[0, columns - 1], "gridnet", (0, columns - 1), off)
    y = dsl.conv2d(dsl.relu(dsl.batch_norm(y, name="head.bn")), num_classes, 3, padding=1, name="head.conv")
    return dsl.Model(x, y, name="gridnet", seed=seed)
