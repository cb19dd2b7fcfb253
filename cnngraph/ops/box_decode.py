"""BoxDecode: box regression deltas (dx, dy, dw, dh) applied to anchors, giving corner boxes, as
``cnngraph.detection.boxes.decode`` (R-CNN's parameterisation, with SSD's variances).

deltas (N, K, 4) and anchors (K, 4) (a constant: the detector's anchors or default boxes) or (N, K, 4)
(per-image proposals) in; (N, K, 4) boxes (x1, y1, x2, y2) out. ONNX has no such op: it exports as
Slice, Mul, Exp, Min, Add, Sub and Concat.
"""

from __future__ import annotations

import numpy as np

from cnngraph.detection.boxes import MAX_LOG_SCALE
from cnngraph.ops import register
from cnngraph.ops.base import Op
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import fmt_shape


@register
class BoxDecode(Op):
    name = "BoxDecode"
    arity = (2, 2)
    defaults = {"variances": (1.0, 1.0, 1.0, 1.0), "max_log_scale": MAX_LOG_SCALE}

    def check(self, node, attrs, inputs):
        deltas, anchors = inputs
        if deltas.rank != 3 or deltas.shape[2] != 4 or anchors.shape not in (deltas.shape[1:], deltas.shape):
            raise self.error(node, f"expects deltas (N, K, 4) and anchors (K, 4) or (N, K, 4), got "
                                   f"{fmt_shape(deltas.shape)} and {fmt_shape(anchors.shape)}")
        a = dict(attrs)
        variances = tuple(a["variances"]) if isinstance(a["variances"], (list, tuple)) else ()
        if len(variances) != 4:
            raise self.attr_error(node, f"variances must be 4 positive numbers, got {a['variances']!r}")
        a["variances"] = tuple(self.real(node, "variances", v, lambda f: f > 0, "positive numbers") for v in variances)
        a["max_log_scale"] = self.real(node, "max_log_scale", a["max_log_scale"])
        return a

    def infer(self, node, attrs, inputs):
        return inputs[0]


def _export(ex, node, spec):
    """The decode as standard ONNX nodes (the names say which step of ``boxes.decode`` each is)."""
    deltas, anchors = node.inputs
    name = node.name

    def step(op_type, inputs, key, **attrs):
        return ex.add_node(op_type, inputs, [f"{name}/{key}"], f"{name}/{key}", **attrs)

    def const(key, value, dtype=None):
        return ex.initializer(f"{name}/{key}", np.asarray(value, dtype or np.float32))

    last = const("last_axis", [-1], np.int64)

    def half_of(value, key, first):
        start, stop = (0, 2) if first else (2, 4)
        return step("Slice", [value, const(f"{key}_start", [start], np.int64), const(f"{key}_stop", [stop], np.int64),
                              last], key)

    d = step("Mul", [deltas, const("variances", node.attrs["variances"])], "scaled")
    a_lo, a_hi = half_of(anchors, "anchor_lo", True), half_of(anchors, "anchor_hi", False)
    a_size = step("Sub", [a_hi, a_lo], "anchor_size")
    half = const("half", 0.5)
    a_centre = step("Add", [a_lo, step("Mul", [a_size, half], "anchor_half")], "anchor_centre")
    centre = step("Add", [a_centre, step("Mul", [half_of(d, "d_centre", True), a_size], "shift")], "centre")
    log_scale = step("Min", [half_of(d, "d_size", False), const("max_log_scale", node.attrs["max_log_scale"])],
                     "log_scale")
    size_half = step("Mul", [step("Mul", [a_size, step("Exp", [log_scale], "scale")], "size"), half], "size_half")
    lo, hi = step("Sub", [centre, size_half], "lo"), step("Add", [centre, size_half], "hi")
    ex.add_node("Concat", [lo, hi], [name], name, axis=-1)


ONNX = onnx_table(OnnxOp("BoxDecode", None, export=_export))
