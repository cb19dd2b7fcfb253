"""A detector's default boxes per feature map in `cnngraph summary`: SSD300's published layout (Liu et al.,
Table/Fig. 2: 38, 19, 10, 5, 3 and 1 cells with 4, 6, 6, 6, 4 and 4 boxes, 8,732 in all), and the
flattened head outputs no longer mistaken for misaligned maps."""

from __future__ import annotations

from cnngraph import models
from cnngraph.analysis import receptive_fields
from cnngraph.detection.heads import box_levels
from cnngraph.frontends import dsl
from cnngraph.ops import get_op
from tests.test_cli import run_cli


def test_ssd300_levels_are_the_papers():
    graph = models.build("ssd")
    levels = box_levels(graph, receptive_fields(graph))
    assert [(lv.map_size, lv.per_cell) for lv in levels] == [
        ((38, 38), 4), ((19, 19), 6), ((10, 10), 6), ((5, 5), 6), ((3, 3), 4), ((1, 1), 4)]
    assert sum(lv.boxes for lv in levels) == 8_732 == graph.type_of("loc").shape[1]
    assert [lv.field.jump for lv in levels][:3] == [(8, 8), (16, 16), (32, 32)]  # conv4_3, fc7, conv8_2


def test_summary_lists_the_levels_and_every_join_aligned(capsys):
    code, out, _ = run_cli(capsys, "summary", "ssd")
    assert code == 0 and "Default boxes per level" in out and "Default boxes: 8,732" in out
    assert "Joins: 3 checked, all aligned" in out  # the Concat of flattened heads is no join of maps


def test_classifiers_have_no_levels():
    graph = models.build("lenet5")
    assert box_levels(graph, receptive_fields(graph)) == []


def test_a_reshape_keeps_the_map_only_when_the_spatial_axes_stay_last():
    x = dsl.input("x", (8, 6, 6))
    reshape = get_op("Reshape")
    shuffled = reshape.window({"shape": (2, 4, 6, 6)}, [x.type])  # a channel shuffle's split
    back = reshape.window({"shape": (8, 6, 6)}, [dsl.input("y", (4, 2, 6, 6)).type])  # and merge
    folded = reshape.window({"shape": (72, 4)}, [dsl.input("z", (6, 6, 8)).type])  # SSD's (N, H*W*k, 4)
    assert not shuffled.global_ and not back.global_ and folded.global_
