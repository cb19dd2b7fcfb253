"""Shape ops: Flatten, Reshape, Concat, Slice, Pad, Identity. No parameters, no MACs."""

from __future__ import annotations

import math

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import IDENTITY_WINDOW, Op, Window, fmt_shape
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, as_list, onnx_table
from cnngraph.types import TensorType



@register
class Flatten(Op):
    """(N, ...) -> (N, features) in row-major order, like ``torch.flatten(x, 1)``."""

    name = "Flatten"

    def infer(self, node, attrs, inputs):
        t = inputs[0]
        return TensorType((t.shape[0], t.per_sample()), t.dtype)


@register
class Reshape(Op):
    """Reshape each sample; the batch stays, and one -1 is resolved from the element count."""

    name = "Reshape"
    required = ("shape",)

    def check(self, node, attrs, inputs):
        t, asked = inputs[0], attrs["shape"]
        dims = self.ints(node, "shape", asked, len(asked) if isinstance(asked, (list, tuple)) else 1, -1)
        if 0 in dims or dims.count(-1) > 1:
            raise self.attr_error(node, f"shape dims must be positive, with at most one -1; got {asked!r}")
        size, known = t.per_sample(), math.prod(d for d in dims if d != -1)
        if -1 in dims and size % known == 0:
            dims = tuple(size // known if d == -1 else d for d in dims)
        if math.prod(dims) != size:
            target = fmt_shape((t.shape[0], *dims))
            raise self.error(node, f"cannot reshape {fmt_shape(t.shape)} ({size} elements per sample) to {target}")
        return {**attrs, "shape": dims}

    def infer(self, node, attrs, inputs):
        return TensorType((inputs[0].shape[0], *attrs["shape"]), inputs[0].dtype)

    def window(self, attrs, inputs):
        """A reshape that keeps the spatial axes last keeps the map: a channel shuffle's (N, C, H, W) to (N, g,
        C/g, H, W) and back. One that folds them away (SSD's (N, H, W, k*4) to (N, H*W*k, 4)) leaves no
        map to align."""
        spatial, out_spatial = tuple(inputs[0].shape[2:]), tuple(attrs["shape"][1:])
        if not spatial or out_spatial and (tuple(attrs["shape"][-len(spatial):]) == spatial
                                           or spatial[-len(out_spatial):] == out_spatial):
            return IDENTITY_WINDOW
        return Window(global_=True)

    def describe(self, attrs):
        """Every dim: the base form would show shape (4, 4) as "shape=4"."""
        return "shape=" + ",".join(map(str, attrs["shape"]))


@register
class Concat(Op):
    """Join along a per-sample axis (channels by default); every other dimension must match.

    ``elide`` (set by the concat_elision pass) lets the executor have producers write straight into
    their slice of the output; it changes no numbers, so the ONNX export leaves it out.
    """

    name = "Concat"
    arity = (1, 64)
    defaults = {"axis": 1, "elide": False}

    def check(self, node, attrs, inputs):
        if not isinstance(attrs["elide"], bool):
            raise self.attr_error(node, f"elide must be True or False, got {attrs['elide']!r}")
        axis = self.sample_axis(node, "axis", attrs["axis"], inputs[0].rank)
        if attrs["elide"] and axis != 1:
            raise self.attr_error(node, f"elide needs the channel axis 1, got axis={axis}")
        return {**attrs, "axis": axis}

    def infer(self, node, attrs, inputs):
        axis, first = attrs["axis"], inputs[0].shape
        if len({(t.rank, t.shape[:axis] + t.shape[axis + 1 :]) for t in inputs}) > 1:
            shapes = ", ".join(fmt_shape(t.shape) for t in inputs)
            raise self.error(node, f"cannot concatenate {shapes} along axis {axis}: all other dimensions must match")
        joined = sum(t.shape[axis] for t in inputs)
        return TensorType((*first[:axis], joined, *first[axis + 1 :]), inputs[0].dtype)


@register
class Slice(Op):
    """ONNX Slice of per-sample axes with steps >= 1; starts and ends are stored clamped into range."""

    name = "Slice"
    required = ("axes", "starts", "ends")
    defaults = {"steps": None}

    def check(self, node, attrs, inputs):
        shape = inputs[0].shape
        n = len(attrs["axes"]) if isinstance(attrs["axes"], (list, tuple)) else 1
        given = {**attrs, "steps": 1 if attrs["steps"] is None else attrs["steps"]}
        axes, starts, ends, steps = (
            self.ints(node, k, given[k], n, -math.inf, math.inf) for k in ("axes", "starts", "ends", "steps")
        )
        axes = tuple(self.sample_axis(node, "axes", a, len(shape)) for a in axes)
        if n == 0 or len(set(axes)) != n:
            raise self.attr_error(node, f"axes must name each sliced axis once, got {attrs['axes']!r}")
        if any(s < 1 for s in steps):
            raise self.attr_error(node, f"steps must be >= 1 (reversing slices are not supported), got {steps}")
        for a, s, e, st in zip(axes, starts, ends, steps):
            if _clamp(e, shape[a]) <= _clamp(s, shape[a]):
                raise self.error(node, f"slice {s}:{e}:{st} of axis {a} is empty for input {fmt_shape(shape)}")
        starts = tuple(_clamp(s, shape[a]) for s, a in zip(starts, axes))
        ends = tuple(_clamp(e, shape[a]) for e, a in zip(ends, axes))
        return {**attrs, "axes": axes, "starts": starts, "ends": ends, "steps": steps}

    def infer(self, node, attrs, inputs):
        shape = list(inputs[0].shape)
        for a, s, e, st in zip(attrs["axes"], attrs["starts"], attrs["ends"], attrs["steps"]):
            shape[a] = -(-(e - s) // st)
        return TensorType(tuple(shape), inputs[0].dtype)

    def window(self, attrs, inputs):
        """Output j of a spatial axis reads input start + j * step: stride step, pad -start."""
        spec = {a: (s, st) for a, s, st in zip(attrs["axes"], attrs["starts"], attrs["steps"])}
        spatial = range(2, inputs[0].rank)  # (L), (H, W) or (D, H, W)
        if inputs[0].rank < 3 or not spec.keys() & set(spatial):
            return IDENTITY_WINDOW
        starts, steps = zip(*(spec.get(a, (0, 1)) for a in spatial))
        return Window(stride=steps, pad=tuple(-s for s in starts))

    def describe(self, attrs):
        """numpy-style: ``[:, :, 1:5, 0:8:2]``."""
        index = [":"] * (max(attrs["axes"]) + 1)
        for a, s, e, st in zip(attrs["axes"], attrs["starts"], attrs["ends"], attrs["steps"]):
            index[a] = f"{s}:{e}" + (f":{st}" if st != 1 else "")
        return "[" + ", ".join(index) + "]"


def _clamp(index: int, size: int) -> int:
    """ONNX (and Python) slice bounds: negative counts from the end, then clamp into [0, size]."""
    return min(max(index + size if index < 0 else index, 0), size)


@register
class Pad(Op):
    """Pad H and W; "reflect" mirrors without repeating the edge (torch ReflectionPad2d)."""

    name = "Pad"
    required = ("padding",)
    defaults = {"mode": "constant", "value": 0.0}
    short = {"padding": "p"}
    modes = ("constant", "reflect", "edge")

    def check(self, node, attrs, inputs):
        _, _, h, w = self.image(node, inputs[0])
        a = {**attrs, "padding": self.pads(node, attrs["padding"])}
        a["value"] = self.real(node, "value", a["value"])
        if a["mode"] not in self.modes:
            raise self.attr_error(node, f"mode must be one of {self.modes}, got {a['mode']!r}")
        if a["mode"] != "constant" and a["value"] != 0:
            raise self.attr_error(node, f"value={a['value']} only applies to mode 'constant', not {a['mode']!r}")
        pt, pl, pb, pr = a["padding"]
        if a["mode"] == "reflect" and (max(pt, pb) >= h or max(pl, pr) >= w):
            raise self.error(
                node, f"reflect padding {a['padding']} must be smaller than the input's {h}x{w} "
                f"(input {fmt_shape(inputs[0].shape)})"
            )
        return a

    def infer(self, node, attrs, inputs):
        n, c, h, w = inputs[0].shape
        pt, pl, pb, pr = attrs["padding"]
        return TensorType((n, c, h + pt + pb, w + pl + pr), inputs[0].dtype)

    def window(self, attrs, inputs):
        return Window(pad=attrs["padding"][:2])


@register
class Identity(Op):
    """Passes its input through: a named placeholder, e.g. for a removed layer."""

    name = "Identity"


# -- ONNX --------------------------------------------------------------------------------
# Flatten, Reshape, Squeeze, Unsqueeze (and Transpose of size-1 axes) only relabel a row-major
# layout: whatever attributes or shape inputs they come with, the importer measures the output
# shape ONNX gives and makes it one IR Reshape (or Flatten).

def _reshape_load(ctx, node, spec=None):
    ctx.reshape_like(node)


def _ints(value) -> tuple[int, ...]:
    return tuple(int(v) for v in np.ravel(value))


SLICE_INPUTS = ("starts", "ends", "axes", "steps")


def _slice_load(ctx, node, spec):
    """Default axes (all) and steps (1); a whole-range slice of the batch axis is dropped."""
    rank = ctx.type(node, 0).rank
    starts, ends, axes, steps = (ctx.table_value(node, a) for a in spec.attrs)
    axes = _ints(range(len(starts)) if axes is None else axes)
    steps = (1,) * len(axes) if steps is None else steps
    keep = [k for k, ax in enumerate(axes) if ax % rank or (starts[k], steps[k]) != (0, 1) or ends[k] < 2**31 - 1]
    if any(axes[k] % rank == 0 for k in keep):
        raise ctx.fail(node, "slices the batch axis; supported: slices of the other axes")
    if not keep:
        return ctx.bind(node, ctx.value(node, 0))
    pick = {name: tuple(v[k] for k in keep) for name, v in zip(SLICE_INPUTS, (starts, ends, axes, steps))}
    ctx.import_table(node, spec, **pick)


def _onnx_pads(padding) -> list[int]:
    t, l, b, r = padding
    return [0, 0, t, l, 0, 0, b, r]


def _ir_pads(pads) -> tuple[int, int, int, int]:
    pads = _ints(pads)
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise ValueError(f"pads {list(pads)} pad more than H and W of a 4-D input")
    return (pads[2], pads[3], pads[6], pads[7])


def _pad_load(ctx, node, spec):
    """Pad-2 to Pad-10 carry ``pads`` and ``value`` as attributes; Pad-18 may name the padded axes."""
    pads, value, _ = (ctx.table_value(node, a) for a in spec.attrs)
    pads = _ints(pads)
    if ctx.has_input(node, 3):
        rank, axes = ctx.type(node, 0).rank, _ints(ctx.constant(node, 3))
        full = [0] * (2 * rank)
        for k, ax in enumerate(axes):
            full[ax % rank], full[ax % rank + rank] = pads[k], pads[k + len(axes)]
        pads = full
    if node.opset < 11:
        value = node.attrs.get("value", 0.0)
    ctx.import_table(node, spec, consumed=("value", 3), padding=ctx.attempt(node, _ir_pads, pads),
                     value=as_float(value))


def _gather_load(ctx, node):
    """Constant indices into a per-sample axis: one index is a slice that drops the axis, evenly
    spaced increasing indices are a strided slice."""
    t = ctx.type(node, 0)
    axis = node.attrs.get("axis", 0) % t.rank
    if axis == 0:
        raise ctx.fail(node, "gathers along the batch axis; supported: constant indices into another axis")
    index = ctx.constant(node, 1)
    flat = np.where(index < 0, index + t.shape[axis], index).astype(np.int64).ravel()
    steps = set(np.diff(flat).tolist())
    if index.ndim > 1 or not flat.size or len(steps) > 1 or min(steps, default=1) < 1:
        raise ctx.fail(node, f"indices {index.tolist()}; supported: one index, or evenly spaced increasing indices")
    step = steps.pop() if steps else 1
    attrs = {"axes": (axis,), "starts": (int(flat[0]),), "ends": (int(flat[-1]) + 1,), "steps": (step,)}
    if index.ndim == 1:
        return ctx.emit(node, "Slice", [ctx.value(node, 0)], attrs)
    y = ctx.emit(node, "Slice", [ctx.value(node, 0)], attrs, output="slice")
    ctx.emit(node, "Reshape", [y], {"shape": t.shape[1:axis] + t.shape[axis + 1:]})


def _split_load(ctx, node):
    """One Slice per output, sized as ONNX splits (by ``split``, or evenly, in any opset's form)."""
    t = ctx.type(node, 0)
    axis = node.attrs.get("axis", 0) % t.rank
    if axis == 0:
        raise ctx.fail(node, "splits the batch axis; supported: splits of another axis")
    start, x = 0, ctx.value(node, 0)
    for k, shape in enumerate(ctx.probe_shapes(node)):
        size = shape[axis - 1]
        if node.outputs[k]:
            ctx.emit(node, "Slice", [x], {"axes": (axis,), "starts": (start,), "ends": (start + size,)}, output=k)
        start += size


ONNX = onnx_table(
    OnnxOp("Flatten", "Flatten", fixed={"axis": 1}, load=_reshape_load),
    OnnxOp("Reshape", "Reshape", (OnnxAttr("shape", "shape", lambda s: [0, *s], input=1, since=5),),
           load=_reshape_load),
    OnnxOp("Concat", "Concat", (OnnxAttr("axis", "axis"),), data=None),
    OnnxOp("Slice", "Slice", tuple(
        OnnxAttr(name, name, as_list, input=i, since=10) for i, name in enumerate(SLICE_INPUTS, start=1)
    ), load=_slice_load),
    OnnxOp("Pad", "Pad", (
        OnnxAttr("padding", "pads", _onnx_pads, input=1, since=11),
        OnnxAttr("value", "constant_value", load=as_float, default=0.0, input=2, since=11, dtype="float"),
        OnnxAttr("mode", "mode", default="constant"),
    ), load=_pad_load),
    OnnxOp("Identity", "Identity"),
    imports={"Squeeze": _reshape_load, "Unsqueeze": _reshape_load, "Gather": _gather_load, "Split": _split_load},
)
