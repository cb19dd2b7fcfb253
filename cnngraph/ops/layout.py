"""Layout: the explicit conversion between NCHW and channels-last (NHWC) storage that lowering inserts.

Logically the identity (the IR's types stay NCHW), physically a transpose: ``--print-ir`` shows
every conversion a backend's lowering made. It has no ONNX form: export the graph before lowering.
"""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import LAYOUTS, Op


@register
class Layout(Op):
    name = "Layout"
    required = ("to",)

    def check(self, node, attrs, inputs):
        if attrs["to"] not in LAYOUTS:
            raise self.attr_error(node, f"to must be one of {LAYOUTS}, got {attrs['to']!r}")
        self.image(node, inputs[0])
        return attrs
