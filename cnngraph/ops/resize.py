"""Upsample: nearest or bilinear resizing of H and W, PyTorch ``F.interpolate`` semantics.

Exactly one of ``scale_factor`` and ``size`` is given; normalisation stores both (scale = out/in
when a size was given, size = floor(in * scale) when a scale was), so kernels, exporters and the
text form read whichever they need. The kernel tells the two apart by ``scale == size / in``.
"""

from __future__ import annotations

import math

from cnngraph.ir import TensorType
from cnngraph.ops import register
from cnngraph.ops.base import Op, Window, fmt_shape

MODES = ("nearest", "bilinear")


def size_given(size: int, in_size: int, scale: float) -> bool:
    """Whether ``scale`` is exactly out/in, i.e. the output size decides the sampling grid."""
    return scale == size / in_size


@register
class Upsample(Op):
    """Resize H and W; the output size is fixed at build time, as everywhere in the graph."""

    name = "Upsample"
    defaults = {"scale_factor": None, "size": None, "mode": "nearest", "align_corners": False}
    short = {"scale_factor": "scale"}

    def check(self, node, attrs, inputs):
        _, _, h, w = self.image(node, inputs[0])
        a = dict(attrs)
        if a["mode"] not in MODES:
            raise self.attr_error(node, f"mode must be one of {MODES}, got {a['mode']!r}")
        a["align_corners"] = bool(a["align_corners"])
        if a["align_corners"] and a["mode"] != "bilinear":
            raise self.attr_error(node, f"align_corners=True needs mode 'bilinear', got {a['mode']!r}")
        scale, size = a["scale_factor"], a["size"]
        if scale is None and size is None:
            raise self.attr_error(node, "give exactly one of scale_factor or size")
        size = None if size is None else self.ints(node, "size", size, 2, 1)
        scale = None if scale is None else self._scales(node, scale)
        if scale is None:
            scale = tuple(o / n for o, n in zip(size, (h, w)))
        elif size is None:
            size = tuple(math.floor(n * s) for n, s in zip((h, w), scale))
            if min(size) < 1:
                raise self.error(node, f"scale_factor {scale} leaves no output for input {fmt_shape(inputs[0].shape)}")
        elif not all(o == math.floor(n * s) or size_given(o, n, s) for o, n, s in zip(size, (h, w), scale)):
            raise self.attr_error(
                node, f"give exactly one of scale_factor or size (got {scale} and {size}, which disagree)"
            )
        a["scale_factor"], a["size"] = scale, size
        return a

    def _scales(self, node: str, value) -> tuple[float, float]:
        pair = value if isinstance(value, (list, tuple)) else (value, value)
        if len(pair) != 2:
            raise self.attr_error(node, f"scale_factor must be a number or two, got {value!r}")
        return tuple(
            self.real(node, "scale_factor", v, lambda v: 0 < v < math.inf, "a positive number or two")
            for v in pair
        )

    def infer(self, node, attrs, inputs):
        n, c = inputs[0].shape[:2]
        return TensorType((n, c, *attrs["size"]), inputs[0].dtype)

    def macs(self, attrs, inputs, output):
        """Bilinear weighs four neighbours per output element; nearest only copies."""
        return 4 * output.per_sample() if attrs["mode"] == "bilinear" else 0

    def window(self, attrs, inputs):
        """Output i centres on input (i + 0.5) / scale - 0.5 (i * (in-1)/(out-1) with align_corners);
        bilinear reads two pixels per axis, nearest one (on average at that centre)."""
        kernel = 1 if attrs["mode"] == "nearest" else 2
        if attrs["align_corners"]:
            stride = tuple((n - 1) / (o - 1) if o > 1 else 0.0 for n, o in zip(inputs[0].shape[2:], attrs["size"]))
            first = (0.0, 0.0)
        else:
            stride = tuple(1 / s for s in attrs["scale_factor"])
            first = tuple(r / 2 - 0.5 for r in stride)
        return Window((kernel, kernel), stride, tuple((kernel - 1) / 2 - c for c in first))
