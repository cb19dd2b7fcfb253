"""Winograd convolution F(m x m, 3 x 3) for stride-1, undilated, ungrouped 3x3 convolutions on the NumPy backend.

Each m x m output tile comes from an (m+2) x (m+2) input tile through three small linear maps
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): the input tile is
transformed (B^T d B), multiplied element-wise per tile position with the transformed filter
(G g G^T) and summed over channels (one batched GEMM of (m+2)^2 independent (O, C) x (C, tiles)
products), then transformed back (A^T M A). F(4x4, 3x3) does 4x fewer multiplications in the GEMM
than the direct im2col GEMM, F(2x2, 3x3) 2.25x, at the price of the transforms and of larger
rounding error (the transforms' coefficients grow with m). Each separable 2-D transform is two
passes of one small matrix over a whole axis, so everything runs as GEMMs with no Python loop over
tiles or channels.

It is a kernel choice, not a graph change: registered for the ``numpy`` backend (and the ``strict``
one, which runs NumPy's kernels behind device-like arrays) ahead of the generic kernels, it declines what it cannot run (and float64, the reference precision, which keeps
the direct path) and the shapes its cost rule expects the direct GEMM to run faster
(``slower_than_direct``: few input channels), the compile report names it (``numpy/winograd``), and
``check=True`` compares its layers against the float64 reference like any kernel. For inference the filter transform is done
once per node and batch size (the plan: inference weights never change). Training resolves the
``winograd-train`` variant instead, which transforms the current weights on every call and runs the
input gradient (a stride-1 3x3 convolution of the output gradient) through Winograd too.
"""

from __future__ import annotations

import numpy as np

from cnngraph.backends.chunks import over_chunks, summed_in_order, too_few_images
from cnngraph.backends.kernels import backward, into, kernel
from cnngraph.backends.kernels.conv import conv2d, conv2d_backward, input_grad_as_conv, param_grads
from cnngraph.backends.kernels.fused import after_chunks, fused_conv2d, per_chunk
from cnngraph.backends.kernels.windows import pad_spatial
from cnngraph.backends.threads import blas

# (B^T, G, A^T) per output tile size m, from the paper (F(4x4, 3x3) with interpolation points 0, ±1, ±2, inf)
TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)),
}


def supports(node, dtype: str) -> str | None:
    """Why the Winograd kernel cannot run ``node``, or None."""
    attrs = node.attrs
    if attrs["kernel_size"] != (3, 3) or attrs["stride"] != (1, 1) or attrs["dilation"] != (1, 1):
        return "Winograd runs 3x3 convolutions of stride 1 and dilation 1 only"
    if attrs["groups"] != 1:
        return "Winograd runs ungrouped convolutions only"
    if dtype == "float64":
        return "float64 is the reference precision: it keeps the direct convolution"
    return None


def slower_than_direct(node, input_types) -> str | None:
    """The cost rule of both variants (the training one's forward is the same convolution): Winograd saves
    multiplications per input channel but pays its transforms per output, so with few input channels the
    direct GEMM wins. Measured per layer in CPU time on one BLAS thread (32x32 maps at batch 8, 56x56 at 1,
    8x8 at 8; 3 to 128 inputs, 16 to 256 outputs), Winograd was faster where C^2 >= 16 O and up to 7x slower
    below (3 inputs for 256 outputs): SSD's 3->16 and 16->32 stem convs took 4x and 3.4x the direct time."""
    c, o = input_types[0].shape[1], node.attrs["out_channels"]
    if c * c < 16 * o:
        return f"{c} input channels for {o} outputs: the direct GEMM is faster (Winograd wants C^2 >= 16 O)"
    return None


# Tile columns per GEMM below which a plan runs the direct convolution instead: with so few columns each
# of the (m+2)^2 GEMMs is bound by reading its transformed filters, (m+2)^2 / 9 times the weights' bytes.
# In ResNet-18 at batch 1 (16 columns in layer3 and layer4) the direct kernel took 1.6-2.5 ms a layer
# against Winograd's 2.4-4.1 ms; at batch 8 (32 and more) Winograd won (8.2 against 13.7 ms at 7x7x512).
DIRECT_BELOW = 32


def tile_size(batch: int, out_hw: tuple[int, int]) -> int:
    """F(4x4) when it gives each of the 36 GEMMs at least 16 tile columns; else F(2x2). With few columns a
    GEMM is bound by reading its transformed filters, which F(2x2) keeps smaller (16 per 9 weights, not 36):
    on a 7x7 map at batch 1 F(4x4) took 1.8x F(2x2)'s time, at batch 8 0.7x (512 channels, one thread)."""
    return 4 if batch * -(-out_hw[0] // 4) * -(-out_hw[1] // 4) >= 16 else 2


class Plan:
    """One node at one input shape: the tile size, the padding that makes whole tiles, and the
    transformed filters (kept with the weight array they came from)."""

    def __init__(self, shape: tuple[int, ...], padding: tuple[int, int, int, int]):
        n, c, h, w = shape
        pt, pl, pb, pr = padding
        self.out_hw = (h + pt + pb - 2, w + pl + pr - 2)
        self.m = tile_size(n, self.out_hw)
        self.tiles = tuple(-(-size // self.m) for size in self.out_hw)  # ceil: the last tile may overhang
        # the bottom/right padding that gives every tile its whole (m+2)-wide window
        self.padding = (pt, pl, self.tiles[0] * self.m + 2 - h - pt, self.tiles[1] * self.m + 2 - w - pl)
        columns = n * self.tiles[0] * self.tiles[1]
        self.direct = columns < DIRECT_BELOW
        # what reports add to the kernel's name (``Executor.kernels``): this batch runs the direct kernel
        self.label = f"direct at batch {n}: {columns} tile columns" if self.direct else ""
        self._weight, self._filters = None, None

    def filters(self, xp, weight):
        """The transformed ``weight``, computed on first use and kept (inference weights never change)."""
        if self._weight is not weight:
            self._filters, self._weight = transform_filters(xp, weight, self.m), weight
        return self._filters


# G (x) G: row (a, b), column (i, j) holds G[a, i] G[b, j], so G g G^T for every filter at once is one GEMM
FILTER_TRANSFORMS = {m: np.kron(g, g) for m, (_, g, _) in TRANSFORMS.items()}


def transform_filters(xp, weight, m: int):
    """G g G^T for every (output, input) channel pair of (O, C, 3, 3) ``weight``, as ((m+2)^2, O, C).

    One ((m+2)^2, 9) x (9, O*C) GEMM whose result is already laid out as the products want it; the
    einsum it replaces took 66 ms for 512x512 filters against 24 ms (one thread), and training
    transforms every step's weights twice (forward, and the flipped ones for the input gradient).
    In the weights' precision: in float64 with one rounding at the end it took 28 ms for 512x512
    filters against 11 ms, and differed by 3e-8 of the largest transformed weight, where Winograd's own
    error is 2e-5 (F(4x4)).
    """
    kron = xp.asarray(FILTER_TRANSFORMS[m], dtype=weight.dtype)
    o, c = weight.shape[:2]
    blas.use(1)  # an inner dimension of 9: memory-bound, and a second thread only spins
    return (kron @ weight.reshape(o * c, 9).T).reshape(-1, o, c)  # a flipped view's reshape copies once


def prepare(xp, node, shapes, dtype) -> Plan:
    return Plan(shapes[0], node.attrs["padding"])


def two_sided(xp, matrix, values):
    """``matrix`` applied along the first two axes of ``values`` (a, a, R): ``matrix @ v @ matrix^T`` per R."""
    rows = (matrix @ values.reshape(values.shape[0], -1)).reshape(matrix.shape[0], values.shape[1], -1)
    return xp.matmul(matrix, rows)  # batched over the first axis: the second contraction


def untransformed(xp, at, products):
    """A^T M A for every tile's (a, a, R) ``products``, as (m, R, m): a tile's columns last, so that the
    scatter into the output reads rows of whole tile rows (``two_sided``'s (m, m, R) left a tile's
    columns R apart: ResNet's 56x56x64 at batch 1 took 0.33 against 0.10 ms a band for this and the
    scatter, 14 tile columns by 7 tile rows, one thread)."""
    rows = (at @ products.reshape(products.shape[0], -1)).reshape(at.shape[0], products.shape[1], -1)
    return xp.matmul(rows.transpose(0, 2, 1), at.T)  # the second contraction, batched over the tile's rows


# Images per pass through the pipeline (gather, transforms, products, scatter), so that one pass's
# transformed tiles stay about this size, in cache. Over the whole batch at once, the gather walked the
# input (m+2)^2 times: 63 ms at batch 32 on 56x56x64, where a copy of the same bytes took 4 ms.
CHUNK_BYTES = 4 << 20


def images_per_chunk(plan: Plan, channels: int, itemsize: int, whole_bytes: int) -> int:
    """About ``CHUNK_BYTES`` of transformed tiles over ``channels``, and at least ``whole_bytes``: what every
    chunk reads or writes whole (the transformed filters, the weight gradient's products), which small
    chunks would go through again and again (14x14x256 at batch 32 took 1.1x longer in 4 MiB chunks)."""
    per_image = (plan.m + 2) ** 2 * channels * plan.tiles[0] * plan.tiles[1] * itemsize
    return max(1, max(CHUNK_BYTES, whole_bytes) // per_image)


def winograd_conv2d(xp, x, filters, bias, plan: Plan, out=None, finish=None):
    """Cross-correlation of NCHW ``x`` with transformed ``filters`` (``transform_filters``) through
    F(m x m, 3 x 3), into ``out`` when given; a few images at a time (``images_per_chunk``) on every core
    (``chunks.over_chunks``), each finished by ``finish(dest, index)`` (``fused.per_chunk``) when given.
    With fewer images than cores (batch 1) the chunks are bands of tile rows instead, so that every core
    has one."""
    n, c = x.shape[:2]
    o = filters.shape[1]
    th, tw = plan.tiles
    if out is None:
        out = xp.empty((n, o) + plan.out_hw, dtype=x.dtype)
    transforms = tuple(xp.asarray(t, dtype=x.dtype) for t in TRANSFORMS[plan.m])
    macs = 9 * o * c * n * th * tw * plan.m ** 2  # the direct convolution's: the transforms weigh in too
    if too_few_images(xp, n):
        padded = pad_spatial(xp, x, plan.padding)
        per_row = (plan.m + 2) ** 2 * c * n * tw * x.itemsize

        def bands(rows):
            _winograd_tiles(xp, padded, filters, bias, plan, transforms, out, slice(None), rows, finish)

        over_chunks(xp, bands, th, max(1, CHUNK_BYTES // per_row), macs, o * c * n * tw)
        return out
    step = images_per_chunk(plan, c, x.itemsize, filters.nbytes)

    def images(chunk):
        padded = pad_spatial(xp, x[chunk], plan.padding)
        _winograd_tiles(xp, padded, filters, bias, plan, transforms, out[chunk], chunk, slice(0, th), finish)

    over_chunks(xp, images, n, step, macs, o * c * step * th * tw)
    return out


def transformed_tiles(xp, padded, plan: Plan, bt, rows: slice | None = None):
    """B^T d B for every (m+2) x (m+2) tile of NCHW ``padded`` (``plan.padding`` applied), or for the tile
    rows ``rows``: ((m+2)^2, C, N * tile rows * tile columns)."""
    n, c = padded.shape[:2]
    m, (th, tw) = plan.m, plan.tiles
    first, last = (0, th) if rows is None else (rows.start, rows.stop)
    a = m + 2
    s_n, s_c, s_h, s_w = padded.strides
    view = xp.lib.stride_tricks.as_strided(padded[:, :, first * m:], (a, a, c, n, last - first, tw),
                                           (s_h, s_w, s_c, s_n, s_h * m, s_w * m))
    tiles = xp.ascontiguousarray(view).reshape(a, a, -1)
    return two_sided(xp, bt, tiles).reshape(a * a, c, -1)


def _winograd_tiles(xp, padded, filters, bias, plan: Plan, transforms, out, images: slice, rows: slice, finish):
    """The tile rows ``rows`` of every image of ``padded`` (``images`` of the batch) into ``out``, and finished."""
    n = padded.shape[0]
    o = filters.shape[1]
    m, tw, (oh, ow) = plan.m, plan.tiles[1], plan.out_hw
    k = rows.stop - rows.start
    bt, _, at = transforms
    a = m + 2
    products = xp.matmul(filters, transformed_tiles(xp, padded, plan, bt, rows))
    y = untransformed(xp, at, products.reshape(a, a, o * n * k * tw)).reshape(m, o, n, k, tw, m)
    y = y.transpose(2, 1, 3, 0, 4, 5)  # (n, o, k, m, tw, m): tile rows, then rows within a tile
    top, bottom = rows.start * m, min(oh, rows.stop * m)
    if (oh, ow) == (plan.tiles[0] * m, tw * m) and out.flags.c_contiguous:
        dest = out.reshape(n, o, plan.tiles[0], m, tw, m)[:, :, rows]  # a view: the tiles land in the output
    else:
        dest = out[:, :, top:bottom]
        y = y.reshape(n, o, k * m, tw * m)[:, :, :bottom - top, :ow]
    if bias is None:
        dest[...] = y
    else:
        xp.add(y, bias.reshape((1, o) + (1,) * (dest.ndim - 2)), out=dest)
    if finish is not None:
        finish(out[:, :, top:bottom], (images, slice(None), slice(top, bottom)))


# The weight gradient's products have the tile columns as their inner dimension and an (O, C) result per tile
# position: with few columns per channel they are bound by writing those results. Against the direct GEMM
# (one run each, best of 3, two BLAS threads) Winograd took 0.70x its time with 98 tile columns per channel
# (56x56x64 at batch 32), 0.80x with 12 (28x28x128), 1.07x with 2 (14x14x256) and 1.43x with 1/4 (7x7x512).
WEIGHT_GRAD_COLUMNS_PER_CHANNEL = 8


def weight_grad_pays(plan: Plan, batch: int, outputs: int, inputs: int) -> bool:
    return batch * plan.tiles[0] * plan.tiles[1] >= WEIGHT_GRAD_COLUMNS_PER_CHANNEL * max(outputs, inputs)


def winograd_weight_grad(xp, x, grad, plan: Plan):
    """The weight gradient of ``winograd_conv2d``'s convolution, by the adjoint of each of its linear maps:
    G^T [sum over tiles of (A dy A^T) (.) (B^T d B)] G, per (output, input) channel pair. The products are
    one batched GEMM of (m+2)^2 (O, tiles) x (tiles, C), 4x fewer multiplications for F(4x4) than the
    direct (O, N*H*W) x (N*H*W, 9C) GEMM; the output gradient is zero-padded to whole tiles."""
    n, c = x.shape[:2]
    o = grad.shape[1]
    m, (th, tw), (oh, ow) = plan.m, plan.tiles, plan.out_hw
    a = m + 2
    bt, _, at = (xp.asarray(t, dtype=x.dtype) for t in TRANSFORMS[m])
    step = images_per_chunk(plan, c + o, x.itemsize, a * a * o * c * x.itemsize)

    def products(chunk):
        dy = grad[chunk]
        k = dy.shape[0]
        if (oh, ow) != (th * m, tw * m):
            dy = pad_spatial(xp, dy, (0, 0, th * m - oh, tw * m - ow))
        dy = xp.ascontiguousarray(dy.reshape(k, o, th, m, tw, m).transpose(3, 5, 1, 0, 2, 4))
        grads = two_sided(xp, at.T, dy.reshape(m, m, o * k * th * tw)).reshape(a * a, o, k * th * tw)
        tiles = transformed_tiles(xp, pad_spatial(xp, x[chunk], plan.padding), plan, bt)
        return xp.matmul(grads, tiles.transpose(0, 2, 1))

    parts = over_chunks(xp, products, n, step, a * a * o * c * n * th * tw, o * c * step * th * tw)
    total = summed_in_order(parts)
    blas.use(1)
    weight = xp.asarray(FILTER_TRANSFORMS[m], dtype=x.dtype).T @ total.reshape(a * a, o * c)
    return xp.ascontiguousarray(weight.reshape(3, 3, o, c).transpose(2, 3, 0, 1))


def conv2d_winograd(xp, inputs, params, attrs, ctx):
    if ctx.plan.direct:
        return conv2d(xp, inputs, params, attrs, ctx)
    w = params["weight"]
    return winograd_conv2d(xp, inputs[0], ctx.plan.filters(xp, w), params.get("bias"), ctx.plan, out=ctx.out)


def fused_conv2d_winograd(xp, inputs, params, attrs, ctx):
    if ctx.plan.direct:
        return fused_conv2d(xp, inputs, params, attrs, ctx)
    w = params["weight"]
    out = winograd_conv2d(xp, inputs[0], ctx.plan.filters(xp, w), params.get("bias"), ctx.plan, out=ctx.out,
                          finish=per_chunk(xp, inputs, attrs))
    return into(ctx, after_chunks(xp, out, attrs, ctx))


# -- training: the weights change every step, so the filters are transformed on every call ------------------
def trainable(node, dtype: str) -> str | None:
    """The training variant also runs the input gradient through Winograd: a convolution of the output
    gradient with padding 2 - p, which must not be negative."""
    return supports(node, dtype) or (None if max(node.attrs["padding"]) <= 2 else
                                     "the input gradient's padding 2 - p would be negative (padding > 2)")


def conv2d_winograd_train(xp, inputs, params, attrs, ctx):
    if ctx.plan.direct:
        return conv2d(xp, inputs, params, attrs, ctx)
    w = params["weight"]
    return winograd_conv2d(xp, inputs[0], transform_filters(xp, w, ctx.plan.m), params.get("bias"), ctx.plan)


def conv2d_winograd_train_backward(xp, grad, saved, params, attrs):
    """The input gradient is a stride-1 3x3 convolution of ``grad`` too (conv.input_grad_as_conv), so it
    runs through Winograd on its own plan; so does the weight gradient, on the forward's
    (``winograd_weight_grad``). Where either plan is direct, the generic backward runs."""
    x, dx = saved.inputs[0], None
    forward = Plan(x.shape, attrs["padding"])
    if forward.direct:
        return conv2d_backward(xp, grad, saved, params, attrs)
    if saved.need_inputs[0]:
        flipped, pads = input_grad_as_conv(params["weight"], attrs)
        plan = Plan(grad.shape, pads)
        if plan.direct:
            return conv2d_backward(xp, grad, saved, params, attrs)
        dx = winograd_conv2d(xp, grad, transform_filters(xp, flipped, plan.m), None, plan)
    winograd_weight = weight_grad_pays(forward, x.shape[0], grad.shape[1], x.shape[1])
    grads = param_grads(xp, saved, grad, grad, x, attrs, weight=not winograd_weight)
    if winograd_weight and "weight" in saved.need_params:
        grads["weight"] = winograd_weight_grad(xp, x, grad, forward)
    return [dx], grads


# The NumPy backend's kernels, and the strict backend's, which runs the same code behind device-like arrays
# (so CI checks that no host array mixes in, and strict training equals NumPy training step for step).
for _backend in ("numpy", "strict"):
    for _op, _forward in (("Conv2d", conv2d_winograd), ("FusedConv2d", fused_conv2d_winograd)):
        kernel(_op, writes_into=True, backend=_backend, variant="winograd", dtypes=("float32",), supports=supports,
               prepare=prepare, cost_rule=slower_than_direct)(_forward)
    backward("Conv2d", keeps=("inputs",), backend=_backend, variant="winograd-train")(conv2d_winograd_train_backward)
    kernel("Conv2d", backend=_backend, variant="winograd-train", dtypes=("float32",), supports=trainable,
           prepare=prepare, cost_rule=slower_than_direct)(conv2d_winograd_train)
