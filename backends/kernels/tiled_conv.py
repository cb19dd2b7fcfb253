"""Direct 2-D convolution in cache-sized bands, with the epilogue done on each band while it is in cache.

The generic kernel (conv.py) builds the whole im2col matrix of a batch, then one GEMM reads it back,
then the bias, the residual and the activation each pass over the whole output: on ResNet's 7x7/2
stem at batch 8 the im2col copy alone is 59 MB. Here each image's output rows are cut into bands
whose window matrix fits in about ``BAND_BYTES``: the windows of one band are copied into one
preallocated buffer laid out for the GEMM, the GEMM writes straight into the band's slice of the
destination (``matmul(..., out=...)``) with the bias added (one more column of the weights, against a
row of ones under the windows: on ResNet's stem at batch 1, 0.12 to 0.14 ms less than a pass over each
band at the fastest of 80 runs, 0.21 to 0.24 at the median, alternating in one process, twice), and the
residual and a ReLU/Clip finish that slice before the next band evicts it.

A kernel choice on the NumPy backend (``numpy/tiled`` in the compile report; ``check=True`` compares it
with the float64 reference like any kernel), registered after Winograd (imported here first), so
resolution offers Winograd a stride-1 3x3 convolution first (its cost rule passes few-channel ones on).
It declines 1x1 stride-1 convolutions (one GEMM on the input as it is: tiling measured 3-12% slower),
grouped and non-2-D convolutions, float64, the reference precision, which keeps the generic kernel,
and (its cost rule) convolutions whose window matrix per image is small enough for one GEMM to win.
"""

from __future__ import annotations

import math

from cnngraph.backends.chunks import CORES, over_chunks
from cnngraph.backends.kernels import into, kernel, winograd  # noqa: F401 - Winograd registers first
from cnngraph.backends.kernels.conv import conv_out_size
from cnngraph.backends.kernels.fused import after_chunks, per_chunk
from cnngraph.backends.kernels.windows import pad_spatial, windows

# Window-matrix bytes per band: 1 MiB measured fastest on ResNet's stem (16 output rows of 112; 4 and
# 32 rows were slower) on this 2-core machine. BLAS threads stay the executor's per-node choice: choosing
# them per band's GEMM instead made ResNet-18 at batch 1 2.3x slower in wall time (load average 9).
BAND_BYTES = 1 << 20
WINDOW_BYTES = 4 << 20  # one image's window matrix from which bands are used (``small_windows``)


def small_windows(node, input_types) -> str | None:
    """The cost rule: bands pay where one image's window matrix is several times the band budget (ResNet's
    7x7/2 stem: 7.4 MiB; in CPU time 0.42x to 0.86x of the generic kernel's at batch 8 over three runs,
    0.71x to 0.95x at batch 1). Below ``WINDOW_BYTES`` (ResNet's stride-2 3x3 and 1x1 convolutions, 0.8 to 1.8 MiB) the generic kernel's
    one GEMM measured as fast or faster (by 11% on ResNet-18's layer2.0.conv1), so it keeps them."""
    _, c, *size = input_types[0].shape  # arithmetic only: this runs before any size check, so no Plan's band list
    attrs = node.attrs
    out = conv_out_size(size, attrs["kernel_size"], attrs["stride"], attrs["padding"], attrs["dilation"])
    window_bytes = 4 * c * math.prod(attrs["kernel_size"]) * math.prod(out)  # float32
    if window_bytes < WINDOW_BYTES:
        return (f"one image's window matrix ({window_bytes / 2**20:.1f} MiB) is under {WINDOW_BYTES >> 20} MiB: "
                f"the generic kernel's single GEMM is as fast")
    return None


def supports(node, dtype: str) -> str | None:
    """Why the tiled kernel cannot run ``node``, or None."""
    attrs = node.attrs
    if len(attrs["kernel_size"]) != 2:
        return "the tiled kernel runs 2-D convolutions only"
    if attrs["groups"] != 1:
        return "the tiled kernel runs ungrouped convolutions only"
    if dtype == "float64":
        return "float64 is the reference precision: it keeps the generic convolution"
    if pointwise(attrs):
        return "a 1x1 stride-1 convolution is one GEMM on its input as it is (no window copy to tile)"
    return None


def pointwise(attrs) -> bool:
    return attrs["kernel_size"] == (1, 1) and attrs["stride"] == (1, 1) and not any(attrs["padding"])


class Plan:
    """One node at one input shape: the output size and the bands of output rows.

    Each image's bands are about ``BAND_BYTES`` of windows, as many as make the batch's bands a multiple of
    the cores' count, all as even as the rows allow: the bands go a core's share at a time, and at batch 1
    ResNet's stem cut 15 rows at a time gave one core 60 rows and the other 52 (14 at a time: 56 each)."""

    def __init__(self, shape, attrs, itemsize: int):
        n, c, *size = shape
        kh, kw = attrs["kernel_size"]
        self.out_hw = conv_out_size(size, (kh, kw), attrs["stride"], attrs["padding"], attrs["dilation"])
        self.depth = c * kh * kw  # rows of the window matrix: the GEMM's inner dimension
        oh, ow = self.out_hw
        count = -(-oh // max(1, min(oh, BAND_BYTES // (self.depth * ow * itemsize))))
        while n * count % CORES and count < oh:
            count += 1
        edges = [oh * i // count for i in range(count + 1)]
        self.bands = list(zip(edges[:-1], edges[1:]))
        self._params, self._matrix = None, None

    def matrix(self, xp, weight, bias):
        """The GEMM's weights, with the bias as one more column (against a row of ones under the windows: the
        GEMM adds it), made on first use and kept with the arrays they came from (inference weights never
        change; made on every call, SSD's fc6 copied its 19 MB of weights on every run: 1.5-1.7 ms)."""
        if self._params is None or self._params[0] is not weight or self._params[1] is not bias:
            o = weight.shape[0]
            self._matrix = weight.reshape(o, self.depth) if bias is None else \
                xp.concatenate([weight.reshape(o, self.depth), bias[:, None]], 1)
            self._params = (weight, bias)
        return self._matrix


def prepare(xp, node, shapes, dtype) -> Plan:
    return Plan(shapes[0], node.attrs, 4)  # float32 only: float16 storage is widened around this kernel


def tiled_conv2d(xp, x, weight, bias, attrs, plan: Plan, out=None, finish=None):
    """Cross-correlation of NCHW ``x`` with (O, C, kh, kw) ``weight``, band by band, each band finished
    with the bias and ``finish(dest, index)`` (``fused.per_chunk``) while in cache."""
    n = x.shape[0]
    o = weight.shape[0]
    (oh, ow), (sh, sw), (dh, dw) = plan.out_hw, attrs["stride"], attrs["dilation"]
    kernel_hw = weight.shape[2:]
    if out is None or not out[:1].flags.c_contiguous:
        out = xp.empty((n, o, oh, ow), dtype=x.dtype)
    wmat = plan.matrix(xp, weight, bias)
    depth = wmat.shape[1]
    padded = pad_spatial(xp, x, attrs["padding"])
    bands = [(i, rows) for i in range(n) for rows in plan.bands]
    widest = max(r1 - r0 for r0, r1 in plan.bands) * ow

    def finished(part):
        buffer = xp.empty(depth * widest, dtype=x.dtype)  # this chunk's, band after band
        for i, (r0, r1) in bands[part]:
            top = padded[i:i + 1, :, r0 * sh:(r1 - 1) * sh + dh * (kernel_hw[0] - 1) + 1]
            view = windows(xp, top, kernel_hw, (sh, sw), (dh, dw), (r1 - r0, ow))[0]
            cols = buffer[:depth * (r1 - r0) * ow].reshape(depth, -1)
            cols[:plan.depth].reshape(view.shape)[...] = view  # the band's window matrix, laid out for the GEMM
            cols[plan.depth:] = 1  # the bias's row
            dest = out[i].reshape(o, oh * ow)[:, r0 * ow:r1 * ow]
            xp.matmul(wmat, cols, out=dest)
            if finish is not None:
                index = (slice(i, i + 1), slice(None), slice(r0, r1))
                finish(out[index], index)

    # bands of every image, a core's share at a time: at batch 1 the stem's eight bands go four to each core
    over_chunks(xp, finished, len(bands), len(bands), n * o * plan.depth * oh * ow)
    return out


def conv2d_tiled(xp, inputs, params, attrs, ctx):
    out = tiled_conv2d(xp, inputs[0], params["weight"], params.get("bias"), attrs, ctx.plan, ctx.out)
    return into(ctx, out)


def fused_conv2d_tiled(xp, inputs, params, attrs, ctx):
    out = tiled_conv2d(xp, inputs[0], params["weight"], params.get("bias"), attrs, ctx.plan, ctx.out,
                       per_chunk(xp, inputs, attrs))
    return into(ctx, after_chunks(xp, out, attrs, ctx))


for _backend in ("numpy", "strict"):
    for _op, _forward in (("Conv2d", conv2d_tiled), ("FusedConv2d", fused_conv2d_tiled)):
        kernel(_op, writes_into=True, backend=_backend, variant="tiled", dtypes=("float32",), supports=supports,
               prepare=prepare, cost_rule=small_windows)(_forward)
