"""Max-unpooling driven by pooling indices (SegNet): MaxPool2dIndices and MaxUnpool2d.

Nodes have one output each, so the argmax positions of a max pool are a node of their own,
``MaxPool2dIndices``, next to the ``MaxPool2d`` that yields the values (the executor computes
both from the same windows). Indices follow torch's ``return_indices`` convention: int64,
flattened over each (H, W) plane of the pool's input, so they do not depend on the batch size.
"""

from __future__ import annotations

import numpy as np

from cnngraph.ops import get_op, register
from cnngraph.ops.base import Op, fmt_shape
from cnngraph.ops.onnx_mapping import OnnxOp, export_spec, onnx_table
from cnngraph.ops.pool import MaxPool2d
from cnngraph.types import TensorType

INDEX_DTYPE = "int64"


@register
class MaxPool2dIndices(MaxPool2d):
    """Where each window's maximum sits in its input plane (row * W + column); the first maximum wins."""

    name = "MaxPool2dIndices"

    def infer(self, node, attrs, inputs):
        return TensorType(super().infer(node, attrs, inputs).shape, INDEX_DTYPE)


@register
class MaxUnpool2d(Op):
    """Scatter ``x`` into zeros at ``indices`` (from MaxPool2dIndices): the partial inverse of a max pool.

    ``output_size`` defaults to (H - 1) * stride - pad + kernel; give the pool input's size when the
    pool dropped a last row or column (odd sizes), as torch's ``output_size`` argument does.
    """

    name = "MaxUnpool2d"
    arity = (2, 2)
    required = ("kernel_size",)
    defaults = {"stride": None, "padding": 0, "output_size": None}
    short = {"kernel_size": "k", "stride": "s", "padding": "p", "output_size": "size"}

    def check(self, node, attrs, inputs):
        x, indices = inputs
        self.image(node, x)
        self.image(node, indices, "indices")
        if indices.dtype != INDEX_DTYPE:
            raise self.error(node, f"indices must be {INDEX_DTYPE} (the output of MaxPool2dIndices), got {indices.dtype}")
        if x.shape != indices.shape:
            raise self.error(node, f"input {fmt_shape(x.shape)} and indices {fmt_shape(indices.shape)} differ in shape")
        a = dict(attrs)
        a["kernel_size"] = self.window_ints(node, "kernel_size", a["kernel_size"], 2)
        a["stride"] = self.window_ints(node, "stride", a["kernel_size"] if a["stride"] is None else a["stride"], 2)
        a["padding"] = self.pads(node, a["padding"])
        smallest = _default_size(a, x.shape[2:])
        if a["output_size"] is None:
            a["output_size"] = smallest
        a["output_size"] = self.ints(node, "output_size", a["output_size"], 2, 1)
        for n, lo, s in zip(a["output_size"], smallest, a["stride"]):
            if not lo <= n < lo + s:
                raise self.attr_error(
                    node, f"output_size {a['output_size']} must lie between {smallest} and that plus stride - 1 "
                    f"for input {fmt_shape(x.shape)}"
                )
        return a

    def infer(self, node, attrs, inputs):
        n, c = inputs[0].shape[:2]
        return TensorType((n, c, *attrs["output_size"]), inputs[0].dtype)

    def window(self, attrs, inputs):
        """Inverse of the pool's window: the transposed conv of the same kernel, stride and padding."""
        like = {"kernel_size": attrs["kernel_size"], "stride": attrs["stride"], "dilation": (1, 1),
                "padding": attrs["padding"]}
        return get_op("ConvTranspose2d").window(like, inputs[:1])


def _default_size(attrs: dict, hw: tuple[int, int]) -> tuple[int, int]:
    pads = attrs["padding"]
    return tuple((n - 1) * s - p0 - p1 + k for n, s, k, p0, p1 in
                 zip(hw, attrs["stride"], attrs["kernel_size"], pads[:2], pads[2:]))


# -- ONNX (export) ------------------------------------------------------------------------
# ONNX's MaxPool second output and MaxUnpool count indices over the whole (N, C, H, W) tensor, ours
# over one plane: the export converts both ways (Mod on the way out of MaxPool; on the way into
# MaxUnpool, plus (n * C + c) * H * W built from the runtime batch, so no batch size is baked in).

def _indices_export(ex, node, spec):
    h, w = ex.type(node.inputs[0]).shape[2:]
    flat = f"{node.name}/flat"
    ex.export_table(node, export_spec("MaxPool2d"), outputs=[f"{node.name}/values", flat])
    plane = ex.initializer(f"{node.name}/plane", np.array(h * w, np.int64))
    ex.add_node("Mod", [flat, plane], [node.name], f"{node.name}/mod")


def _unpool_export(ex, node, spec):
    x, indices = node.inputs
    _, c, _, _ = ex.type(x).shape
    oh, ow = node.attrs["output_size"]
    name = node.name

    def const(key, value):
        return ex.initializer(f"{name}/{key}", np.array(value, np.int64))

    shape = ex.add_node("Shape", [x], [f"{name}/shape"], f"{name}/shape")
    batch = ex.add_node("Gather", [shape, const("batch_axis", 0)], [f"{name}/batch"], f"{name}/batch")
    samples = ex.add_node("Range", [const("zero", 0), batch, const("one", 1)], [f"{name}/samples"], f"{name}/samples")
    sample_offset = ex.add_node("Mul", [samples, const("sample_size", c * oh * ow)], [f"{name}/sample_offset"],
                                f"{name}/sample_offset")
    sample_offset = ex.add_node("Reshape", [sample_offset, const("column", [-1, 1, 1, 1])],
                                [f"{name}/sample_offset4"], f"{name}/sample_offset4")
    offsets = ex.add_node("Add", [sample_offset, const("plane_offset", np.arange(c).reshape(1, c, 1, 1) * oh * ow)],
                          [f"{name}/offsets"], f"{name}/offsets")
    flat = ex.add_node("Add", [indices, offsets], [f"{name}/flat"], f"{name}/flat")
    nc = ex.add_node("Slice", [shape, const("nc_start", [0]), const("nc_end", [2])], [f"{name}/nc"], f"{name}/nc")
    out_shape = ex.add_node("Concat", [nc, const("size", [oh, ow])], [f"{name}/out_shape"], f"{name}/out_shape", axis=0)
    a = node.attrs
    ex.add_node("MaxUnpool", [x, flat, out_shape], [name], name, kernel_shape=list(a["kernel_size"]),
                strides=list(a["stride"]), pads=list(a["padding"]))


ONNX = onnx_table(
    OnnxOp("MaxPool2dIndices", None, export=_indices_export),
    OnnxOp("MaxUnpool2d", None, export=_unpool_export),
)
