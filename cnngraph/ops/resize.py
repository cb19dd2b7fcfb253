"""Upsample: nearest or (bi/tri)linear resizing of the spatial axes, PyTorch ``F.interpolate`` semantics.

One, two or three spatial axes; as in PyTorch the linear mode is named for them: "linear" for
(N, C, L), "bilinear" for (N, C, H, W), "trilinear" for (N, C, D, H, W).

Exactly one of ``scale_factor`` and ``size`` is given; normalisation stores both (scale = out/in
when a size was given, size = floor(in * scale) when a scale was), so kernels, exporters and the
text form read whichever they need. The kernel tells the two apart by ``scale == size / in``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import MAX_DIM, Op, Window, fmt_shape
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType

LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}  # by the number of spatial axes
MODES = ("nearest", *LINEAR_MODES.values())


def size_given(size: int, in_size: int, scale: float) -> bool:
    """Whether ``scale`` is exactly out/in, i.e. the output size decides the sampling grid."""
    return scale == size / in_size


@register
class Upsample(Op):
    """Resize the spatial axes; the output size is fixed at build time, as everywhere in the graph."""

    name = "Upsample"
    defaults = {"scale_factor": None, "size": None, "mode": "nearest", "align_corners": False}
    short = {"scale_factor": "scale"}

    def check(self, node, attrs, inputs):
        in_size = self.spatial(node, inputs[0])[2:]
        r = len(in_size)
        a = dict(attrs)
        allowed = ("nearest", LINEAR_MODES[r])
        if a["mode"] not in allowed:
            raise self.attr_error(node, f"mode must be one of {allowed} for {r} spatial axes, got {a['mode']!r}")
        a["align_corners"] = bool(a["align_corners"])
        if a["align_corners"] and a["mode"] == "nearest":
            raise self.attr_error(node, f"align_corners=True needs mode {LINEAR_MODES[r]!r}, got 'nearest'")
        scale, size = a["scale_factor"], a["size"]
        if scale is None and size is None:
            raise self.attr_error(node, "give exactly one of scale_factor or size")
        size = None if size is None else self.ints(node, "size", size, r, 1)
        scale = None if scale is None else self._scales(node, scale, r)
        if scale is None:
            scale = tuple(o / n for o, n in zip(size, in_size))
        elif size is None:
            floors = tuple(math.floor(n * s) for n, s in zip(in_size, scale))
            size = self.ints(node, "size from scale_factor", floors, r, 0)
            if min(size) < 1:
                raise self.error(node, f"scale_factor {scale} leaves no output for input {fmt_shape(inputs[0].shape)}")
        elif not all(o == math.floor(n * s) or size_given(o, n, s) for o, n, s in zip(size, in_size, scale)):
            raise self.attr_error(
                node, f"give exactly one of scale_factor or size (got {scale} and {size}, which disagree)"
            )
        a["scale_factor"], a["size"] = scale, size
        return a

    def _scales(self, node: str, value, r: int) -> tuple[float, ...]:
        scales = value if isinstance(value, (list, tuple)) else (value,) * r
        if len(scales) != r:
            raise self.attr_error(node, f"scale_factor must be a number or {r}, got {value!r}")
        return tuple(
            self.real(node, "scale_factor", v, lambda v: 0 < v <= MAX_DIM,
                      f"a positive number or {r}, at most {MAX_DIM:,}")
            for v in scales
        )

    def infer(self, node, attrs, inputs):
        n, c = inputs[0].shape[:2]
        return TensorType((n, c, *attrs["size"]), inputs[0].dtype)

    def macs(self, attrs, inputs, output):
        """Linear modes weigh two neighbours per axis (bilinear four) per output element; nearest only copies."""
        return 0 if attrs["mode"] == "nearest" else 2 ** len(attrs["size"]) * output.per_sample()

    def window(self, attrs, inputs):
        """Output i centres on input (i + 0.5) / scale - 0.5 (i * (in-1)/(out-1) with align_corners);
        bilinear reads two pixels per axis, nearest one (on average at that centre)."""
        kernel = 1 if attrs["mode"] == "nearest" else 2
        r = len(attrs["size"])
        if attrs["align_corners"]:
            stride = tuple((n - 1) / (o - 1) if o > 1 else 0.0 for n, o in zip(inputs[0].shape[2:], attrs["size"]))
            first = (0.0,) * r
        else:
            stride = tuple(1 / s for s in attrs["scale_factor"])
            first = tuple(j / 2 - 0.5 for j in stride)
        return Window((kernel,) * r, stride, tuple((kernel - 1) / 2 - c for c in first))


# -- ONNX --------------------------------------------------------------------------------
# Upsample exports as Resize: nearest is asymmetric + floor, (bi/tri)linear is pytorch_half_pixel (or
# align_corners). Import accepts any nearest rules that pick the same pixels for the given sizes.

def _resize_export(ex, node, spec):
    a = node.attrs
    t = ex.type(node.inputs[0])
    if a["mode"] == "nearest":
        rules = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        transform = "align_corners" if a["align_corners"] else "pytorch_half_pixel"
        rules = dict(mode="linear", coordinate_transformation_mode=transform)
    inputs = [node.inputs[0], ""]
    if all(size_given(o, n, s) for o, n, s in zip(a["size"], t.shape[2:], a["scale_factor"])):
        inputs += ["", _runtime_sizes(ex, node, a["size"])]
        rules.update({"axes": list(range(2, t.rank))} if ex.opset >= 18 else {})
    else:
        inputs.append(ex.initializer(f"{node.name}/scales", np.array([1, 1, *a["scale_factor"]])))
    ex.add_node("Resize", inputs, [node.name], node.name, **rules)


def _runtime_sizes(ex, node, size) -> str:
    """Resize's ``sizes`` covers every axis before opset 18 (which has ``axes``): the batch and
    channels come from Shape at run time, so no batch size is baked in."""
    spatial = ex.initializer(f"{node.name}/size", np.array(size, np.int64))
    if ex.opset >= 18:
        return spatial
    shape = ex.add_node("Shape", [node.inputs[0]], [f"{node.name}/shape"], f"{node.name}/shape")
    begin, end = (ex.initializer(f"{node.name}/{k}", np.array([v], np.int64)) for k, v in (("begin", 0), ("end", 2)))
    nc = ex.add_node("Slice", [shape, begin, end], [f"{node.name}/nc"], f"{node.name}/nc")
    return ex.add_node("Concat", [nc, spatial], [f"{node.name}/sizes"], f"{node.name}/sizes", axis=0)


def _source_index(transform: str, rounding: str, n: int, o: int, scale: Fraction) -> list[int]:
    """The input pixel each output pixel copies under ONNX Resize's nearest rules, in exact arithmetic."""
    half = Fraction(1, 2)
    rounds = {"floor": math.floor, "ceil": math.ceil, "round_prefer_floor": lambda v: math.ceil(v - half),
              "round_prefer_ceil": lambda v: math.floor(v + half)}
    sources = {
        "asymmetric": lambda x: x / scale,
        "half_pixel": lambda x: (x + half) / scale - half,
        "pytorch_half_pixel": lambda x: (x + half) / scale - half if o > 1 else Fraction(0),
        "tf_half_pixel_for_nn": lambda x: (x + half) / scale,
        "align_corners": lambda x: Fraction(x * (n - 1), o - 1) if o > 1 else Fraction(0),
    }
    if transform not in sources or rounding not in rounds:
        raise KeyError(transform if transform not in sources else rounding)
    return [min(max(rounds[rounding](sources[transform](x)), 0), n - 1) for x in range(o)]


def _resize_load(ctx, node):
    a = node.attrs
    rank = len(ctx.spatial(node, 0))
    c = ctx.spatial(node, 0)[1]
    if node.opset < 11:
        return _load_resize(ctx, node, a.get("mode", "nearest"), "asymmetric", "floor", ctx.constant(node, 1), None)
    every, spatial = list(range(rank)), list(range(2, rank))
    axes = [int(ax) % rank for ax in a.get("axes", every)]
    if axes not in (every, spatial):
        raise ctx.fail(node, f"axes {a['axes']}; supported: all {rank}, or the spatial ones {spatial}")
    if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise ctx.fail(node, f"keep_aspect_ratio_policy {a['keep_aspect_ratio_policy']!r}; supported: 'stretch'")
    scales = ctx.constant(node, 2) if ctx.has_input(node, 2) and ctx.constant(node, 2).size else None
    if scales is not None and axes == spatial:
        scales = np.array([1, 1, *scales])
    sizes = None
    if ctx.has_input(node, 3):
        sizes = (c, *ctx.constant(node, 3)) if axes == spatial else ctx.folded(node, 3).per_sample()
    if a.get("antialias", 0) and a.get("mode") == "linear" and (scales is None or min(scales) < 1):
        raise ctx.fail(node, "antialias=1 filters when shrinking; supported: antialias=0")
    _load_resize(ctx, node, a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel"),
                 a.get("nearest_mode", "round_prefer_floor"), scales, sizes)


def _upsample_load(ctx, node):
    """The deprecated Upsample (opsets 7-9): asymmetric coordinates, floor for nearest."""
    scales = np.asarray(node.attrs["scales"]) if node.opset < 9 else ctx.constant(node, 1)
    _load_resize(ctx, node, node.attrs.get("mode", "nearest"), "asymmetric", "floor", scales, None)


def _load_resize(ctx, node, mode, transform, rounding, scales, sizes):
    """The Upsample that resizes like ONNX's rules here, or an error naming what differs."""
    shape = ctx.spatial(node, 0)
    c, size = shape[1], shape[2:]
    if sizes is not None:
        if len(sizes) != 1 + len(size) or sizes[0] != c:
            raise ctx.fail(node, f"sizes {list(sizes)} resize more than the spatial axes of a "
                                 f"{fmt_shape(shape)} input")
        out, scale = tuple(sizes[1:]), tuple(Fraction(o, n) for o, n in zip(sizes[1:], size))
        attrs = {"size": out}
    else:
        if scales is None or len(scales) != len(shape) or tuple(scales[:2]) != (1, 1):
            raise ctx.fail(node, f"scales {None if scales is None else list(scales)}: supported: "
                                 f"[1, 1, {', '.join('s' * len(size))}] (one scale per spatial axis)")
        scale = tuple(Fraction(float(s)) for s in scales[2:])
        out = tuple(math.floor(n * s) for n, s in zip(size, scale))
        attrs = {"scale_factor": tuple(float(s) for s in scales[2:])}  # exactly: the IR then sizes as ONNX does
    if mode == "nearest":
        try:
            same = all(_source_index(transform, rounding, n, o, s) == _source_index("asymmetric", "floor", n, o, s)
                       for n, o, s in zip(size, out, scale))
        except KeyError as e:
            raise ctx.fail(node, f"unknown nearest rule {e}") from None
        if not same:
            raise ctx.fail(node, f"nearest with {transform} coordinates and {rounding} rounding picks other pixels "
                                 "than PyTorch's nearest here; supported: rules that pick the same (asymmetric + floor)")
    elif mode == "linear" and transform in LINEAR:
        attrs.update(mode=LINEAR_MODES[len(size)], align_corners=transform == "align_corners")
        if transform == "half_pixel" and 1 in out:
            raise ctx.fail(node, "half_pixel to an output of size 1 samples off-centre; supported: pytorch_half_pixel")
    else:
        raise ctx.fail(node, f"mode {mode!r} with {transform} coordinates; supported: nearest, or linear with "
                             f"{', '.join(LINEAR)}")
    ctx.emit(node, "Upsample", [ctx.value(node, 0)], attrs)


LINEAR = ("pytorch_half_pixel", "half_pixel", "align_corners")
ONNX = onnx_table(
    OnnxOp("Upsample", "Resize", export=_resize_export, load=lambda ctx, node, spec: _resize_load(ctx, node)),
    imports={"Upsample": _upsample_load},
)
