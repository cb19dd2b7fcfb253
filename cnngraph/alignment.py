"""Spatial alignment at joins: do the tensors an Add or a Concat combines describe the same places?

Equal shapes are not enough. Two maps align when they have the same jump (effective stride) and
the same first centre (where pixel 0's receptive field is centred in the input image). Otherwise
pixel (i, j) of one input sits beside a different place of the image than pixel (i, j) of the
other: an encoder-decoder skip taken without the right crop, a stride-2 pool undone by an
upsampler centred half a pixel off. An integer offset is fixed by cropping (U-Net, FCN); a
fractional one by nothing but a change of layer geometry.

Sequences (1-D maps) have a second convention: causal layers (padded on the left only) centre output t
before t, and a residual join is right when every input's field ends at the same step ("causal").
"""

from __future__ import annotations

from dataclasses import dataclass

from cnngraph.analysis import Field, receptive_fields, reference_input, spatial_crop
from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph, Node
from cnngraph.ops.base import fmt_sizes

JOIN_OPS = ("Add", "Concat", "Mul")
TOLERANCE = 1e-6

ALIGNED, CAUSAL, OFFSET, SUBPIXEL, STRIDE = "aligned", "causal", "offset", "sub-pixel", "stride"
WELL_ALIGNED = (ALIGNED, CAUSAL)


@dataclass(frozen=True)
class JoinInput:
    """One input of a join. ``shift`` is (reference first centre - this first centre) / this jump:
    the rows and columns to crop from this input's top and left (negative: to pad) to align it."""

    value: str
    field: Field
    shift: tuple[float, ...]
    crop: tuple[str, tuple[int, ...]] | None = None  # (source, (top, left)) when the input is a spatial crop


@dataclass(frozen=True)
class Join:
    node: Node
    inputs: list[JoinInput]  # the spatial ones, the reference (analysis.reference_input) first
    status: str

    def describe(self) -> str:
        """One line: what is wrong (or right) and, where a crop fixes it, which crop."""
        ref = self.inputs[0]
        if self.status == CAUSAL:
            return "every input's field ends at the same step: aligned"
        if self.status == STRIDE:
            jumps = ", ".join(f"'{i.value}' {_pair(i.field.jump)}" for i in self.inputs)
            return f"joins maps of different effective stride ({jumps}): a resampling is missing or wrong"
        notes = []
        for i in self.inputs[1:]:
            if any(abs(s) > TOLERANCE for s in i.shift):
                notes.append(f"pixel {_pair(i.shift)} of '{i.value}' sits where pixel 0 of '{ref.value}' does: "
                             + _remedy(i, ref, self.status))
            elif i.crop:
                source, starts = i.crop
                notes.append(f"'{i.value}' crops '{source}' at {_tuple(starts)}: aligned")
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
    begins = tuple(round(s) for s in shift)
    have, want = graph.type_of(source).shape[2:], graph.type_of(target).shape[2:]
    crop = (*begins, *(n - t - b for n, t, b in zip(have, want, begins)))
    if min(crop) < 0:
        raise CnnGraphError(f"'{source}' ({fmt_sizes(have)}) must be cropped by {crop} (begins, then ends; "
                            f"top, left, bottom, right in 2-D) to align with '{target}' ({fmt_sizes(want)}): "
                            "it needs padding, not cropping, where negative")
    return crop


def _is_spatial(graph: Graph, value: str, field: Field) -> bool:
    """With spatial axes (3-D to 5-D), not a whole-image (global) field, not a constant, and not a
    1x1 map broadcast over the others."""
    t = graph.type_of(value)
    return t.rank >= 3 and not field.whole and not field.constant and any(d != 1 for d in t.shape[2:])


def _shift(ref: Field, f: Field) -> tuple[float, float]:
    return tuple((r - s) / j for r, s, j in zip(ref.start, f.start, f.jump))


def _last(field: Field) -> float:
    """Where pixel 0's field ends along a 1-D map's only axis."""
    return field.start[0] + (field.size[0] - 1) / 2


def _is_integer(v: float) -> bool:
    return abs(v - round(v)) < TOLERANCE


def _status(inputs: list[JoinInput]) -> str:
    if len({i.field.jump for i in inputs}) > 1:
        return STRIDE
    shifts = [s for i in inputs for s in i.shift]
    if all(abs(s) < TOLERANCE for s in shifts):
        return ALIGNED
    if all(len(i.field.jump) == 1 for i in inputs) and len({round(_last(i.field), 6) for i in inputs}) == 1:
        return CAUSAL
    return OFFSET if all(_is_integer(s) for s in shifts) else SUBPIXEL


def _remedy(i: JoinInput, ref: JoinInput, status: str) -> str:
    if status == SUBPIXEL:
        return "a sub-pixel offset, which no crop fixes (the resampling layers are centred differently)"
    shift = tuple(round(s) for s in i.shift)
    if i.crop:
        source, starts = i.crop
        return f"crop '{source}' from {_tuple(s + d for s, d in zip(starts, shift))} instead of {_tuple(starts)}"
    if min(shift) >= 0:
        return f"crop {_tuple(shift)} rows/columns from the top/left of '{i.value}'"
    return f"crop {_tuple(-d for d in shift)} from the top/left of '{ref.value}' (or pad '{i.value}')"


def _tuple(values) -> str:
    return f"({', '.join(map(str, values))})"


def _pair(values) -> str:
    texts = [f"{v:g}" for v in values]
    return texts[0] if len(set(texts)) == 1 else f"({', '.join(texts)})"
