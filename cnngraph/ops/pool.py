"""Pooling: MaxPool2d, AvgPool2d, GlobalAvgPool and AdaptiveAvgPool2d, PyTorch semantics.

MaxPool2d, AvgPool2d and GlobalAvgPool take one, two or three spatial axes (ONNX's MaxPool,
AveragePool and GlobalAveragePool do; the names keep their 2-D spelling); AdaptiveAvgPool2d is 2-D.

MACs of a pool count one operation (a comparison or an addition) per kernel element per output
element, so pools show up in cost tables next to the convolutions they sit between.
"""

from __future__ import annotations

import math

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op, Window, conv_out, fmt_shape, fmt_sizes, padded_elements, padded_size
from cnngraph.ops.conv import onnx_auto_pads
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_list, onnx_table
from cnngraph.types import TensorType


def pool_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1,
             ceil: bool = False) -> int:
    """Pooled length along one axis; with ``ceil`` a last window starting in the end padding is dropped."""
    out = conv_out(size, kernel, stride, pad_begin + pad_end, dilation, ceil)
    if ceil and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def dilation_of(attrs: dict) -> tuple[int, ...]:
    """MaxPool2d has a dilation; AvgPool2d (like torch's) does not, which is dilation 1."""
    return attrs.get("dilation", (1,) * len(attrs["kernel_size"]))


def pooled_size(attrs: dict, size: tuple[int, ...]) -> tuple[int, ...]:
    """Output spatial size of a MaxPool2d/AvgPool2d with normalised ``attrs`` over an input of spatial ``size``."""
    pads, r = attrs["padding"], len(size)
    return tuple(
        pool_out(n, k, s, p0, p1, d, attrs["ceil_mode"])
        for n, k, s, p0, p1, d in zip(size, attrs["kernel_size"], attrs["stride"], pads[:r], pads[r:],
                                      dilation_of(attrs))
    )


def adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive cells: cell i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


class _Pool2d(Op):
    required = ("kernel_size",)
    short = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d"}

    def check(self, node, attrs, inputs):
        size = self.spatial(node, inputs[0])[2:]
        r = len(size)
        a = dict(attrs)
        a["kernel_size"] = self.window_ints(node, "kernel_size", a["kernel_size"], r)
        stride = a["kernel_size"] if a["stride"] is None else a["stride"]
        a["stride"] = self.window_ints(node, "stride", stride, r)
        a["padding"] = self.pads(node, a["padding"], r)
        if "dilation" in a:
            a["dilation"] = self.window_ints(node, "dilation", a["dilation"], r)
        for flag in ("ceil_mode", "count_include_pad"):
            if flag in a:
                a[flag] = bool(a[flag])
        kernel = self._effective_kernel(a)
        if any(p > k // 2 for p, k in zip(a["padding"], kernel * 2)):
            raise self.attr_error(
                node, f"padding {a['padding']} must be at most half the (effective) kernel {fmt_sizes(kernel)}"
            )
        if min(pooled_size(a, size)) < 1:
            padded = fmt_sizes(padded_size(size, a["padding"]))
            raise self.error(
                node,
                f"kernel {fmt_sizes(kernel)} is larger than its padded input {padded} "
                f"(input {fmt_shape(inputs[0].shape)}, padding {a['padding']})",
            )
        return a

    @staticmethod
    def _effective_kernel(attrs) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(attrs["kernel_size"], dilation_of(attrs)))

    def infer(self, node, attrs, inputs):
        n, c, *size = inputs[0].shape
        return TensorType((n, c, *pooled_size(attrs, tuple(size))), inputs[0].dtype)

    def macs(self, attrs, inputs, output):
        return output.per_sample() * math.prod(attrs["kernel_size"])

    def window(self, attrs, inputs):
        kernel = self._effective_kernel(attrs)
        return Window(kernel, attrs["stride"], attrs["padding"][:len(kernel)])

    def workspace(self, attrs, inputs, output):
        """The padded input the windows are viewed over (a kernel of 65,536 padded to fit 8 pixels)."""
        return padded_elements(inputs[0], attrs["padding"])


@register
class MaxPool2d(_Pool2d):
    """Max over each window; padding counts as -inf, so it never wins."""

    name = "MaxPool2d"
    defaults = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}


@register
class AvgPool2d(_Pool2d):
    """Mean over each window; ``count_include_pad`` decides whether padding counts in the divisor."""

    name = "AvgPool2d"
    defaults = {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True}


@register
class GlobalAvgPool(Op):
    """Mean over every spatial axis, each kept as size 1: (N, C, H, W) -> (N, C, 1, 1), and likewise
    (N, C, L) and (N, C, D, H, W)."""

    name = "GlobalAvgPool"

    def check(self, node, attrs, inputs):
        self.spatial(node, inputs[0])
        return attrs

    def infer(self, node, attrs, inputs):
        n, c = inputs[0].shape[:2]
        return TensorType((n, c, *(1,) * (inputs[0].rank - 2)), inputs[0].dtype)

    def macs(self, attrs, inputs, output):
        return inputs[0].per_sample()

    def window(self, attrs, inputs):
        return Window(global_=True)


@register
class AdaptiveAvgPool2d(Op):
    """Average pooling to a fixed output size, whatever the input size (torchvision's classifier heads)."""

    name = "AdaptiveAvgPool2d"
    required = ("output_size",)

    def check(self, node, attrs, inputs):
        self.image(node, inputs[0])
        return {"output_size": self.ints(node, "output_size", attrs["output_size"], 2, 1)}

    def infer(self, node, attrs, inputs):
        n, c = inputs[0].shape[:2]
        return TensorType((n, c, *attrs["output_size"]), inputs[0].dtype)

    def _cells(self, attrs, inputs) -> list[list[tuple[int, int]]]:
        return [adaptive_bounds(n, o) for n, o in zip(inputs[0].shape[2:], attrs["output_size"])]

    def macs(self, attrs, inputs, output):
        rows, cols = self._cells(attrs, inputs)
        return inputs[0].shape[1] * sum(e - s for s, e in rows) * sum(e - s for s, e in cols)

    def window(self, attrs, inputs):
        """Exact for divisible sizes; otherwise the largest cell at the mean stride."""
        if attrs["output_size"] == (1, 1):
            return Window(global_=True)
        kernel = tuple(max(e - s for s, e in cells) for cells in self._cells(attrs, inputs))
        stride = tuple(n / o for n, o in zip(inputs[0].shape[2:], attrs["output_size"]))
        return Window(kernel, stride)


def adaptive_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) float32 matrix whose row i averages adaptive cell i: A @ x pools one axis."""
    m = np.zeros((out, size), np.float32)
    for i, (s, e) in enumerate(adaptive_bounds(size, out)):
        m[i, s:e] = 1 / (e - s)
    return m


# -- ONNX --------------------------------------------------------------------------------

def _pool_load(ctx, node, spec):
    a = node.attrs
    auto = a.get("auto_pad", "NOTSET")
    size = ctx.spatial(node, 0)[2:]
    ones = (1,) * len(size)
    pads = ctx.attempt(node, onnx_auto_pads, auto, size, a.get("kernel_shape"),
                       a.get("strides", ones), a.get("dilations", ones)) if auto != "NOTSET" else None
    ctx.import_table(node, spec, consumed=("auto_pad",), stride=a.get("strides", ones),
                     **({} if pads is None else {"padding": pads}))


def _global_max_pool_load(ctx, node):
    ctx.emit(node, "MaxPool2d", [ctx.value(node, 0)], {"kernel_size": ctx.spatial(node, 0)[2:]})


def _adaptive_export(ex, node, spec):
    """Standard ONNX has no adaptive pooling: a global pool, an average pool when the cells are equal,
    else averaging matrices on H (rows @ x) and W (x @ cols), whichever axes need them."""
    (h, w), (oh, ow) = ex.type(node.inputs[0]).shape[2:], node.attrs["output_size"]
    x = node.inputs[0]
    if (oh, ow) == (1, 1):
        return ex.add_node("GlobalAveragePool", [x], [node.name], node.name)
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return ex.add_node("AveragePool", [x], [node.name], node.name, kernel_shape=k, strides=k)
    pool_rows, pool_cols = h != oh, w != ow
    if pool_rows:
        out = f"{node.name}/pooled_rows" if pool_cols else node.name
        x = ex.add_node("MatMul", [ex.initializer(f"{node.name}/rows", adaptive_matrix(h, oh)), x], [out], out)
    if pool_cols:
        cols = ex.initializer(f"{node.name}/cols", adaptive_matrix(w, ow).T)
        ex.add_node("MatMul", [x, cols], [node.name], node.name)


def adaptive_pool_load(ctx, node) -> bool:
    """MatMul of a runtime (N, C, H, W) with a constant averaging matrix: an adaptive pool of one axis."""
    left, right = (ctx.is_constant(node, i) for i in (0, 1))
    if left == right:
        return False
    x = 1 if left else 0
    if ctx.type(node, x).rank != 4 or ctx.constant(node, 1 - x).ndim != 2:
        return False
    _, _, h, w = ctx.type(node, x).shape
    m = ctx.constant(node, 1 - x) if left else ctx.constant(node, 1 - x).T
    size = (m.shape[0], w) if left else (h, m.shape[0])
    if m.shape[1] != (h if left else w) or not np.allclose(m, adaptive_matrix(m.shape[1], m.shape[0]), atol=1e-6):
        return False
    ctx.emit(node, "AdaptiveAvgPool2d", [ctx.value(node, x)], {"output_size": size})
    return True


POOL_ATTRS = (
    OnnxAttr("kernel_size", "kernel_shape", as_list),
    OnnxAttr("stride", "strides", as_list),  # ONNX's default (1 per axis) is given by _pool_load
    OnnxAttr("padding", "pads", as_list),
    OnnxAttr("ceil_mode", "ceil_mode", int, bool, default=0),
)
ONNX = onnx_table(
    OnnxOp("MaxPool2d", "MaxPool", (*POOL_ATTRS, OnnxAttr("dilation", "dilations", as_list)),
           ignore=("storage_order",), load=_pool_load),
    OnnxOp("AvgPool2d", "AveragePool", (*POOL_ATTRS, OnnxAttr("count_include_pad", "count_include_pad", int, bool,
                                                              default=0)), load=_pool_load),
    OnnxOp("GlobalAvgPool", "GlobalAveragePool"),
    OnnxOp("AdaptiveAvgPool2d", None, export=_adaptive_export),
    imports={"GlobalMaxPool": _global_max_pool_load},
)
