"""Where an SSD graph's boxes come from: one row per feature map that predicts boxes, for `cnngraph summary`.

SSD's ``loc`` output concatenates, per level, a 3x3 convolution's (N, k * 4, H, W) map laid out as (N, H * W
* k, 4). Walking back from that Concat through each input's Reshape and Transpose finds the convolution,
whose map size, boxes per cell (k = channels / 4) and receptive field describe the level; SSD300 has
38x38x4 + 19x19x6 + 10x10x6 + 5x5x6 + 3x3x4 + 1x1x4 = 8,732 default boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnngraph.analysis import Field
from cnngraph.detection.predict import SSD_OUTPUTS
from cnngraph.ir import Graph

LAYOUT_OPS = ("Reshape", "Transpose", "Flatten")  # what lies between a head's convolution and the Concat


@dataclass(frozen=True)
class Level:
    head: str  # the convolution predicting this level's box offsets
    map_size: tuple[int, ...]
    per_cell: int  # default boxes per map position
    field: Field

    @property
    def boxes(self) -> int:
        count = self.per_cell
        for n in self.map_size:
            count *= n
        return count


def box_levels(graph: Graph, fields: dict[str, Field]) -> list[Level]:
    """The levels of an SSD graph, in the order its outputs list their boxes; [] for any other graph."""
    if not SSD_OUTPUTS <= set(graph.outputs) or graph.node("loc").op != "Concat":
        return []
    levels = []
    for value in graph.node("loc").inputs:
        while value not in graph.inputs and graph.node(value).op in LAYOUT_OPS:
            value = graph.node(value).inputs[0]
        if value in graph.inputs or graph.type_of(value).rank < 3:
            return []  # not laid out as SSD's heads: nothing to say per level
        channels, *size = graph.type_of(value).shape[1:]
        levels.append(Level(value, tuple(size), channels // 4, fields[value]))
    return levels
