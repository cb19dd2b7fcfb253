"""Spatial alignment at joins: do the tensors an Add or a Concat combines describe the same places?

Equal shapes are not enough. Two maps align when they have the same jump (effective stride) and
the same first centre (where pixel 0's receptive field is centred in the input image). Otherwise
pixel (i, j) of one input sits beside a different place of the image than pixel (i, j) of the
other: an encoder-decoder skip taken without the right crop, a stride-2 pool undone by an
upsampler centred half a pixel off. An integer offset is fixed by cropping (U-Net, FCN); a
fractional one by nothing but a change of layer geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnngraph.analysis import Field, receptive_fields, reference_input, spatial_crop
from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph, Node

JOIN_OPS = ("Add", "Concat", "Mul")
TOLERANCE = 1e-6

ALIGNED, OFFSET, SUBPIXEL, STRIDE = "aligned", "offset", "sub-pixel", "stride"


@dataclass(frozen=True)
class JoinInput:
    """One input of a join. ``shift`` is (reference first centre - this first centre) / this jump:
    the rows and columns to crop from this input's top and left (negative: to pad) to align it."""

    value: str
    field: Field
    shift: tuple[float, float]
    crop: tuple[str, tuple[int, int]] | None = None  # (source, (top, left)) when the input is a spatial crop


@dataclass(frozen=True)
class Join:
    node: Node
    inputs: list[JoinInput]  # the spatial ones, the reference (analysis.reference_input) first
    status: str

    def describe(self) -> str:
        """One line: what is wrong (or right) and, where a crop fixes it, which crop."""
        ref = self.inputs[0]
        if self.status == STRIDE:
            jumps = ", ".join(f"'{i.value}' {_pair(i.field.jump)}" for i in self.inputs)
            return f"joins maps of different effective stride ({jumps}): a resampling is missing or wrong"
        notes = []
        for i in self.inputs[1:]:
            if any(abs(s) > TOLERANCE for s in i.shift):
                notes.append(f"pixel {_pair(i.shift)} of '{i.value}' sits where pixel 0 of '{ref.value}' does: "
                             + _remedy(i, ref, self.status))
            elif i.crop:
                source, (top, left) = i.crop
                notes.append(f"'{i.value}' crops '{source}' at ({top}, {left}): aligned")
        return "; ".join(notes) or "aligned"


def joins(graph: Graph, fields: dict[str, Field] | None = None) -> list[Join]:
    """Every join with two or more spatial inputs, checked for alignment."""
    fields = fields or receptive_fields(graph)
    out = []
    for node in graph.nodes:
        if node.op not in JOIN_OPS or (node.op == "Concat" and node.attrs["axis"] != 1):
            continue
        spatial = [v for v in node.inputs if _is_spatial(graph, v, fields[v])]
        if len(spatial) < 2:
            continue
        ref = reference_input(graph, node, fields)
        spatial.sort(key=lambda v: v != ref)
        inputs = [JoinInput(v, fields[v], _shift(fields[ref], fields[v]), spatial_crop(graph, v)) for v in spatial]
        out.append(Join(node, inputs, _status(inputs)))
    return out


def alignment_crop(graph: Graph, source: str, target: str,
                   fields: dict[str, Field] | None = None) -> tuple[int, int, int, int]:
    """The (top, left, bottom, right) crop of value ``source`` that aligns it with ``target``, pixel for
    pixel and size for size: the crop an encoder-decoder skip needs. Raises when no crop can do it."""
    fields = fields or receptive_fields(graph)
    f_src, f_tgt = fields[source], fields[target]
    if f_src.jump != f_tgt.jump:
        raise CnnGraphError(f"'{source}' (stride {_pair(f_src.jump)}) and '{target}' (stride {_pair(f_tgt.jump)}) "
                            "differ in effective stride: no crop aligns them")
    shift = _shift(f_tgt, f_src)
    if not all(_is_integer(s) for s in shift):
        raise CnnGraphError(f"pixel {_pair(shift)} of '{source}' sits where pixel 0 of '{target}' does: "
                            "a sub-pixel offset, no crop aligns them")
    top, left = (round(s) for s in shift)
    (h, w), (th, tw) = graph.type_of(source).shape[2:], graph.type_of(target).shape[2:]
    crop = (top, left, h - th - top, w - tw - left)
    if min(crop) < 0:
        raise CnnGraphError(f"'{source}' ({h}x{w}) must be cropped by {crop} (top, left, bottom, right) to align "
                            f"with '{target}' ({th}x{tw}): it needs padding, not cropping, where negative")
    return crop


def _is_spatial(graph: Graph, value: str, field: Field) -> bool:
    """4-D, not a whole-image (global) field, not a constant, and not a 1x1 map broadcast over the others."""
    t = graph.type_of(value)
    return t.rank == 4 and not field.whole and not field.constant and t.shape[2:] != (1, 1)


def _shift(ref: Field, f: Field) -> tuple[float, float]:
    return tuple((r - s) / j for r, s, j in zip(ref.start, f.start, f.jump))


def _is_integer(v: float) -> bool:
    return abs(v - round(v)) < TOLERANCE


def _status(inputs: list[JoinInput]) -> str:
    if len({i.field.jump for i in inputs}) > 1:
        return STRIDE
    shifts = [s for i in inputs for s in i.shift]
    if all(abs(s) < TOLERANCE for s in shifts):
        return ALIGNED
    return OFFSET if all(_is_integer(s) for s in shifts) else SUBPIXEL


def _remedy(i: JoinInput, ref: JoinInput, status: str) -> str:
    if status == SUBPIXEL:
        return "a sub-pixel offset, which no crop fixes (the resampling layers are centred differently)"
    dy, dx = (round(s) for s in i.shift)
    if i.crop:
        source, (top, left) = i.crop
        return f"crop '{source}' from ({top + dy}, {left + dx}) instead of ({top}, {left})"
    if dy >= 0 and dx >= 0:
        return f"crop ({dy}, {dx}) rows/columns from the top/left of '{i.value}'"
    return f"crop ({-dy}, {-dx}) from the top/left of '{ref.value}' (or pad '{i.value}')"


def _pair(values) -> str:
    a, b = (f"{v:g}" for v in values)
    return a if a == b else f"({a}, {b})"
