"""ReduceMean, ReduceSum, ReduceMax, ReduceMin over per-sample axes (``x.mean([2, 3])`` pooling in
ShuffleNet and MnasNet exports, attention statistics). The batch axis is never reduced: samples
stay independent, as for every op here."""

from __future__ import annotations

from cnngraph.ops import register
from cnngraph.ops.base import IDENTITY_WINDOW, Op, Window
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, onnx_table
from cnngraph.types import TensorType


class _Reduce(Op):
    """``axes``: per-sample axes (negative count from the end), kept as size 1 with ``keepdims``."""

    required = ("axes",)
    defaults = {"keepdims": True}

    def check(self, node, attrs, inputs):
        rank, axes = inputs[0].rank, attrs["axes"]
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if not axes:
            raise self.attr_error(node, "axes must name at least one per-sample axis")
        resolved = tuple(sorted(self.sample_axis(node, "axes", a, rank) for a in axes))
        if len(set(resolved)) != len(resolved):
            raise self.attr_error(node, f"axes {axes} name an axis twice")
        return {"axes": resolved, "keepdims": bool(attrs["keepdims"])}

    def infer(self, node, attrs, inputs):
        shape = inputs[0].shape
        kept = [1 if i in attrs["axes"] else d for i, d in enumerate(shape)]
        if not attrs["keepdims"]:
            kept = [d for i, d in enumerate(shape) if i not in attrs["axes"]]
        return TensorType(tuple(kept), inputs[0].dtype)

    def window(self, attrs, inputs):
        """Reducing over H or W of an image sees the whole of it, as global pooling does."""
        spatial = inputs[0].rank >= 3 and any(a >= 2 for a in attrs["axes"])
        return Window(global_=True) if spatial else IDENTITY_WINDOW


class _Accumulate(_Reduce):
    def macs(self, attrs, inputs, output):
        """One add per input element."""
        return inputs[0].per_sample()


@register
class ReduceMean(_Accumulate):
    name = "ReduceMean"


@register
class ReduceSum(_Accumulate):
    name = "ReduceSum"


@register
class ReduceMax(_Reduce):
    name = "ReduceMax"


@register
class ReduceMin(_Reduce):
    name = "ReduceMin"


# -- ONNX --------------------------------------------------------------------------------

def _load(ctx, node, spec):
    """No axes means every axis, the batch's too (refused), or with ``noop_with_empty_axes`` the identity."""
    axes = ctx.table_value(node, spec.attrs[0])
    if axes is None or len(axes) == 0:
        if node.attrs.get("noop_with_empty_axes", 0):
            return ctx.bind(node, ctx.value(node, 0))
        raise ctx.fail(node, "no axes: it reduces every axis, the batch's too; supported: per-sample axes")
    ctx.import_table(node, spec, consumed=("noop_with_empty_axes",))


def _entry(ir: str, since: int) -> OnnxOp:
    """Axes became an input in opset 13 for ReduceSum, in 18 for the others."""
    return OnnxOp(ir, ir, (
        OnnxAttr("axes", "axes", save=list, load=tuple, input=1, since=since),
        OnnxAttr("keepdims", "keepdims", save=int, load=bool, default=1),
    ), load=_load)


ONNX = onnx_table(_entry("ReduceMean", 18), _entry("ReduceSum", 13), _entry("ReduceMax", 18),
                  _entry("ReduceMin", 18))
