"""Tile: each sample repeated ``repeats[i]`` times along its axis i + 1 (ONNX Tile without the batch)."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import IDENTITY_WINDOW, Op, Window
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, onnx_table
from cnngraph.types import TensorType


@register
class Tile(Op):
    """``repeats`` has one count per per-sample axis; the batch is never repeated."""

    name = "Tile"
    required = ("repeats",)

    def check(self, node, attrs, inputs):
        n = inputs[0].rank - 1
        return {"repeats": self.ints(node, "repeats", attrs["repeats"], n, 1)}

    def infer(self, node, attrs, inputs):
        shape = inputs[0].shape
        return TensorType((shape[0], *(d * r for d, r in zip(shape[1:], attrs["repeats"]))), inputs[0].dtype)

    def window(self, attrs, inputs):
        """Copies side by side put far-apart pixels next to each other: no local window describes it."""
        spatial = inputs[0].rank >= 3 and any(r > 1 for r in attrs["repeats"][1:])
        return Window(global_=True) if spatial else IDENTITY_WINDOW


def _load_repeats(repeats) -> tuple:
    repeats = [int(r) for r in repeats]
    if repeats[0] != 1:
        raise ValueError(f"repeats {repeats} repeat the batch; supported: 1 along the batch axis")
    return tuple(repeats[1:])


def _expand_load(ctx, node):
    """Expand broadcasts size-1 axes: a Tile of them, or nothing where the shape stays (PyTorch writes
    Expand to ones before a Tile). A shape of another rank, or the batch's growing, has no IR form."""
    before, (after,) = ctx.type(node, 0).shape[1:], ctx.probe_shapes(node)
    if len(after) != len(before):
        raise ctx.fail(node, f"expands per-sample shape {before} to {after}; supported: the same rank")
    x = ctx.value(node, 0)
    if after == before:
        return ctx.bind(node, x)
    ctx.emit(node, "Tile", [x], {"repeats": tuple(a // b for a, b in zip(after, before))})


ONNX = onnx_table(OnnxOp("Tile", "Tile", (
    OnnxAttr("repeats", "repeats", save=lambda r: [1, *r], load=_load_repeats, input=1, since=6),
)), imports={"Expand": _expand_load})
