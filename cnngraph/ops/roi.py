"""Region-of-interest pooling (Fast R-CNN's RoiPool, Mask R-CNN's RoiAlign): a fixed-size feature per box.

Both read an (N, C, H, W) feature map and a list of regions ``rois`` of shape (R, 5), each row
``(batch_index, x1, y1, x2, y2)`` in input-image pixels (torchvision's and ONNX MaxRoiPool's layout),
and give (R, C, pooled_h, pooled_w): the regions' own dimension ``R`` leads, not the batch.
``spatial_scale`` takes image pixels to feature-map cells (1/16 for VGG-16's conv5).
"""

from __future__ import annotations

import numpy as np

from cnngraph.errors import OnnxExportError
from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_float, as_list, onnx_table
from cnngraph.types import TensorType, fmt_shape

ROI_COLUMNS = 5  # batch_index, x1, y1, x2, y2
ALIGN_MODES = ("avg", "max")
COORDINATE_MODES = ("half_pixel", "output_half_pixel")


class _RoiOp(Op):
    arity = (2, 2)
    required = ("output_size",)
    defaults = {"spatial_scale": 1.0}
    short = {"output_size": "size", "spatial_scale": "scale"}

    def check(self, node, attrs, inputs):
        x, rois = inputs
        self.image(node, x)
        if rois.rank != 2 or rois.shape[1] != ROI_COLUMNS:
            raise self.error(node, f"expects rois of shape (R, 5), rows (batch_index, x1, y1, x2, y2), got "
                                   f"{fmt_shape(rois.shape)}")
        a = dict(attrs)
        a["output_size"] = self.window_ints(node, "output_size", a["output_size"], 2)
        a["spatial_scale"] = self.real(node, "spatial_scale", a["spatial_scale"], lambda v: 0 < v < float("inf"),
                                       "a positive number")
        return a

    def infer(self, node, attrs, inputs):
        x, rois = inputs
        return TensorType((rois.shape[0], x.shape[1], *attrs["output_size"]), x.dtype)

    def probe(self, slot, shape, inputs, attrs, batch, rng):
        """Rows of random image indices and boxes inside the image (feature size / spatial_scale)."""
        if slot != 1:
            return None
        h, w = (size / attrs["spatial_scale"] for size in inputs[0].shape[2:])
        corner = rng.uniform(0, 0.6, (shape[0], 2)) * (w, h)
        extent = rng.uniform(0.1, 0.4, (shape[0], 2)) * (w, h)
        return np.concatenate([rng.integers(0, batch, (shape[0], 1)), corner, corner + extent], axis=1)


@register
class RoiPool(_RoiOp):
    """Fast R-CNN's RoI max pooling, as ONNX MaxRoiPool: box corners rounded to cells, the box split into
    output_size bins of floor/ceil bounds, the maximum of each (0 for an empty bin)."""

    name = "RoiPool"


@register
class RoiAlign(_RoiOp):
    """Mask R-CNN's RoIAlign, as ONNX RoiAlign: no rounding; each bin averages (or maxes) bilinear samples on a
    sampling_ratio x sampling_ratio grid (0: ceil(bin size) per axis, adaptive). ``coordinate_mode``
    "half_pixel" shifts boxes by half a cell (torchvision's aligned=True, ONNX's default since opset 16);
    "output_half_pixel" does not and makes boxes at least one cell wide (the original, opset 10)."""

    name = "RoiAlign"
    defaults = {**_RoiOp.defaults, "sampling_ratio": 0, "mode": "avg", "coordinate_mode": "half_pixel"}

    def check(self, node, attrs, inputs):
        a = super().check(node, attrs, inputs)
        a["sampling_ratio"] = self.ints(node, "sampling_ratio", a["sampling_ratio"], 1, 0, 2**10)[0]
        for key, allowed in (("mode", ALIGN_MODES), ("coordinate_mode", COORDINATE_MODES)):
            if a[key] not in allowed:
                raise self.attr_error(node, f"{key} must be one of {allowed}, got {a[key]!r}")
        return a


# -- ONNX ------------------------------------------------------------------------------------
# MaxRoiPool takes the (R, 5) rows as they are. RoiAlign takes (R, 4) boxes and int64 batch indices:
# the export splits the rows, the import joins them back.

def _roi_align_export(ex, node, spec):
    x, rois = node.inputs
    name = node.name

    def const(key, value):
        return ex.initializer(f"{name}/{key}", np.array(value, np.int64))

    axis = const("axis", [1])
    index = ex.add_node("Slice", [rois, const("index_start", [0]), const("index_end", [1]), axis],
                        [f"{name}/index_column"], f"{name}/index_column")
    index = ex.add_node("Squeeze", [index, axis], [f"{name}/index_float"], f"{name}/squeeze")
    index = ex.add_node("Cast", [index], [f"{name}/batch_indices"], f"{name}/cast", to=7)  # INT64
    boxes = ex.add_node("Slice", [rois, const("box_start", [1]), const("box_end", [5]), axis],
                        [f"{name}/boxes"], f"{name}/boxes")
    a = node.attrs
    kwargs = {"mode": a["mode"], "output_height": a["output_size"][0], "output_width": a["output_size"][1],
              "sampling_ratio": a["sampling_ratio"], "spatial_scale": as_float(a["spatial_scale"])}
    if ex.opset >= 16:
        kwargs["coordinate_transformation_mode"] = a["coordinate_mode"]
    elif a["coordinate_mode"] != "output_half_pixel":
        raise OnnxExportError(f"layer '{name}' (RoiAlign): coordinate_mode 'half_pixel' needs opset 16 or later "
                              f"(RoiAlign before 16 has only 'output_half_pixel'); got opset {ex.opset}")
    ex.add_node("RoiAlign", [x, boxes, index], [name], name, **kwargs)


def _roi_align_load(ctx, node, spec):
    """RoiAlign(X, boxes, batch_indices) -> RoiAlign(X, [batch_indices | boxes]): the indices arrive as a
    float value (an integer Cast that only index inputs read imports as no cast, so the
    ``rois[:, 0].long()`` exporters write stays a float column)."""
    if ctx.is_constant(node, 2):
        index = ctx.constant_value(node, ctx.constant(node, 2).astype(np.float32).reshape(-1, 1), "batch_indices")
    else:
        index = ctx.emit(node, "Reshape", [ctx.value(node, 2)], {"shape": (1,)}, output="index_column")
    rows = ctx.emit(node, "Concat", [index, ctx.value(node, 1)], {"axis": 1}, output="rows")
    a = node.attrs
    mode = a.get("coordinate_transformation_mode", "half_pixel" if node.opset >= 16 else "output_half_pixel")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pooling = a.get("mode", "avg")
    ctx.emit(node, "RoiAlign", [ctx.value(node, 0), rows], {
        "output_size": (a.get("output_height", 1), a.get("output_width", 1)),
        "spatial_scale": as_float(a.get("spatial_scale", 1.0)), "sampling_ratio": a.get("sampling_ratio", 0),
        "mode": pooling.decode() if isinstance(pooling, bytes) else pooling, "coordinate_mode": mode})


ONNX = onnx_table(
    OnnxOp("RoiPool", "MaxRoiPool", (OnnxAttr("output_size", "pooled_shape", as_list, tuple),
                                     OnnxAttr("spatial_scale", "spatial_scale", as_float, float, default=1.0)),
           data=2),
    OnnxOp("RoiAlign", "RoiAlign", export=_roi_align_export, load=_roi_align_load, index_inputs=(2,)),
)
