"""Conv2d as im2col + one batched GEMM per conv; ConvTranspose2d as GEMM + col2im; both over 1, 2
or 3 spatial axes (the op names keep the 2-D spelling).

The two are each other's adjoint, so each backward reuses the other's forward for the input
gradient; the weight gradient of both is one GEMM per group with the batch folded into the sum.
"""

from __future__ import annotations

import math

from cnngraph.backends.chunks import over_chunks, summed_in_order
from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.windows import WHOLE, pad_spatial, unwindows, windows


def conv_out_size(size, kernel, stride, padding, dilation):
    """Output size along each spatial axis of a convolution over an input of spatial ``size``."""
    r = len(size)
    return tuple((n + b + e - d * (k - 1) - 1) // s + 1
                 for n, k, s, d, b, e in zip(size, kernel, stride, dilation, padding[:r], padding[r:]))


def _per_channel(o, r):
    """The shape that broadcasts an (O,) bias over (N, O, *spatial) with ``r`` spatial axes."""
    return (1, o) + (1,) * r


# Images per chunk of a convolution and of its weight gradient: the im2col columns of one chunk about this
# size (for the weight gradient at least 4x the weights, whose gradient each chunk writes and the sum adds),
# so that they stay in cache and no step allocates all of them at once. The weight gradient against one
# GEMM over the whole batch at 32 (best of 3, chunks in turn on two BLAS threads): 56x56x64 101 -> 85 ms,
# 28x28x128 78 -> 59 ms, 14x14x256 66 -> 55 ms; 7x7x512 stays one GEMM (4x its 9 MiB weights).
CHUNK_BYTES = 8 << 20


def conv2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, out=None):
    """(N, C, *spatial) cross-correlation with torch's (O, C/g, *kernel) weights (1, 2 or 3 spatial
    axes), into ``out`` when given.

    A few images at a time (``CHUNK_BYTES`` of im2col columns: they stay in cache), on every core
    (``over_chunks``): the copies are single-threaded NumPy, the chunks are not. Into ``out`` the bias
    add (or a copy) moves the GEMM's result: matmul straight into a strided slice measured no faster,
    and a reshape of a slice could silently copy.
    """
    n, c, *size = x.shape
    o, cg, *kernel = weight.shape
    r = len(kernel)
    out_size = conv_out_size(size, kernel, stride, padding, dilation)
    taps, positions = math.prod(kernel), math.prod(out_size)
    plain = taps == 1 and all(s == 1 for s in stride) and not any(padding)  # a 1x1 conv is a plain GEMM: no copy
    wmat = weight.reshape(groups, o // groups, cg * taps)
    if out is None and not plain:
        out = xp.empty((n, o, *out_size), dtype=xp.result_type(x.dtype, weight.dtype))

    def images(chunk):
        xs = x[chunk]
        if plain:
            cols = xs.reshape(len(xs), groups, cg, positions)
        else:
            view = windows(xp, pad_spatial(xp, xs, padding), kernel, stride, dilation, out_size)
            cols = view.reshape(len(xs), groups, cg * taps, positions)
        result = xp.matmul(wmat, cols).reshape(len(xs), o, *out_size)
        dest = result if out is None else out[chunk]  # no destination: the GEMM's own array
        if bias is not None:
            xp.add(result, bias.reshape(_per_channel(o, r)), out=dest)
        elif out is not None:
            dest[...] = result
        return dest

    if plain:  # a 1x1 convolution copies nothing: one batched GEMM on the node's BLAS threads, as chunks
        return images(slice(None))  # (in turn or on two workers) ran ResNet-50 at batch 8 up to 10% slower
    step = max(1, CHUNK_BYTES // (c * taps * positions * x.itemsize))
    over_chunks(xp, images, n, step, n * o * cg * taps * positions)
    return out


def conv_transpose2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, out_size):
    """Transposed convolution with torch's (C, O/g, *kernel) weights onto an output of spatial size
    ``out_size``: GEMM, then col2im; a few images at a time, on every core, as ``conv2d_forward``."""
    n, c, *size = x.shape
    _, og, *kernel = weight.shape
    o, taps, positions = og * groups, math.prod(kernel), math.prod(size)
    wmat = weight.reshape(groups, c // groups, og * taps).transpose(0, 2, 1)  # (g, og*taps, c/g)
    out = xp.empty((n, o, *out_size), dtype=xp.result_type(x.dtype, weight.dtype))

    def images(chunk):
        xs = x[chunk]
        cols = xp.matmul(wmat, xs.reshape(len(xs), groups, c // groups, positions))  # (k, g, og*taps, positions)
        cols = cols.reshape(len(xs), o, *kernel, *size)
        summed = unwindows(xp, cols, (len(xs), o, *out_size), padding, kernel, stride, dilation)
        if bias is None:
            out[chunk] = summed
        else:
            xp.add(summed, bias.reshape(_per_channel(o, len(kernel))), out=out[chunk])

    step = max(1, CHUNK_BYTES // (o * taps * positions * x.itemsize))
    over_chunks(xp, images, n, step, n * o * taps * c // groups * positions)
    return out


def weight_grad(xp, small, big, attrs):
    """Sum over the batch of ``small`` (N, S, *out) against the windows of ``big`` (N, B, *in): (S, B/g, *kernel).

    For Conv2d ``small`` is the output gradient and ``big`` the input; for ConvTranspose2d the roles
    swap (its input against the windows of its output gradient), which gives its (C, O/g) layout.
    A few images at a time (``CHUNK_BYTES``), each chunk's GEMM added to the sum.
    """
    n, s, *out_size = small.shape
    b, g, kernel = big.shape[1], attrs["groups"], attrs["kernel_size"]
    r, taps, positions = len(kernel), math.prod(kernel), math.prod(out_size)
    step = max(1, max(CHUNK_BYTES, 4 * s * b // g * taps * big.itemsize) // (b * taps * positions * big.itemsize))

    def products(chunk):
        view = windows(xp, pad_spatial(xp, big[chunk], attrs["padding"]), kernel, attrs["stride"],
                       attrs["dilation"], out_size)
        columns = view.shape[0] * positions
        cols = view.transpose(1, *range(2, 2 + r), 0, *range(2 + r, 2 + 2 * r)).reshape(g, b // g * taps, columns)
        rows = small[chunk].transpose(1, 0, *range(2, 2 + r)).reshape(g, s // g, columns)
        return xp.matmul(rows, cols.transpose(0, 2, 1))

    parts = over_chunks(xp, products, n, step, n * s * b // g * taps * positions, training=True)
    return summed_in_order(parts).reshape(s, b // g, *kernel)


def param_grads(xp, saved, grad, small, big, attrs, weight=True):
    """The bias and weight gradients that are wanted (``small`` and ``big`` as for ``weight_grad``); the
    bias alone with ``weight=False``, for kernels that compute the weight's their own way."""
    grads = {}
    if "bias" in saved.need_params:
        grads["bias"] = grad.sum(axis=(0, *range(2, grad.ndim)))
    if weight and "weight" in saved.need_params:
        grads["weight"] = weight_grad(xp, small, big, attrs)
    return grads


def _geometry(attrs):
    return attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"]


@kernel("Conv2d", writes_into=True)
def conv2d(xp, inputs, params, attrs, ctx):
    return conv2d_forward(xp, inputs[0], params["weight"], params.get("bias"), *_geometry(attrs), out=ctx.out)


def input_grad_as_conv(weight, attrs):
    """For stride 1, the input gradient is a plain convolution of ``grad`` with the flipped, transposed
    kernel and the complementary padding d(k-1) - p: the im2col GEMM path, 2-3x faster than GEMM +
    col2im's scattered adds. Returns that kernel (a view) and padding, or None where the padding would
    be negative (p > d(k-1)) or stride > 1."""
    kernel, dilation, g = attrs["kernel_size"], attrs["dilation"], attrs["groups"]
    r = len(kernel)
    full = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
    pads = tuple(f - p for f, p in zip(full * 2, attrs["padding"]))
    if any(s != 1 for s in attrs["stride"]) or min(pads) < 0:
        return None
    o, cg = weight.shape[:2]
    flipped = weight.reshape(g, o // g, cg, *kernel).transpose(0, 2, 1, *range(3, 3 + r)).reshape(g * cg, o // g, *kernel)
    return flipped[(WHOLE, WHOLE, *(slice(None, None, -1),) * r)], pads


def _input_grad_as_conv(xp, grad, weight, attrs):
    found = input_grad_as_conv(weight, attrs)
    if found is None:
        return None
    flipped, pads = found
    return conv2d_forward(xp, grad, xp.ascontiguousarray(flipped), None, (1,) * (len(pads) // 2), pads,
                          attrs["dilation"], attrs["groups"])


@backward("Conv2d", keeps=("inputs",))
def conv2d_backward(xp, grad, saved, params, attrs):
    x = saved.inputs[0]
    dx = None
    if saved.need_inputs[0]:
        dx = _input_grad_as_conv(xp, grad, params["weight"], attrs)
        if dx is None:
            dx = conv_transpose2d_forward(xp, grad, params["weight"], None, *_geometry(attrs), x.shape[2:])
    return [dx], param_grads(xp, saved, grad, grad, x, attrs)


def conv_transpose_out_size(size, attrs):
    """Output size along each spatial axis of a transposed convolution over an input of spatial ``size``."""
    r = len(size)
    pads = attrs["padding"]
    return tuple((n - 1) * s - b - e + d * (k - 1) + op + 1
                 for n, k, s, d, b, e, op in zip(size, attrs["kernel_size"], attrs["stride"], attrs["dilation"],
                                                 pads[:r], pads[r:], attrs["output_padding"]))


@kernel("ConvTranspose2d")
def conv_transpose2d(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    return conv_transpose2d_forward(xp, x, params["weight"], params.get("bias"), *_geometry(attrs),
                                    conv_transpose_out_size(x.shape[2:], attrs))


@backward("ConvTranspose2d", keeps=("inputs",))
def conv_transpose2d_backward(xp, grad, saved, params, attrs):
    """The input gradient is a convolution of ``grad``; with output_padding >= stride (possible when
    dilation > stride) it yields extra trailing positions that belong to no input, dropped here."""
    x = saved.inputs[0]
    dx = None
    if saved.need_inputs[0]:
        dx = conv2d_forward(xp, grad, params["weight"], None, *_geometry(attrs))
        dx = dx[(WHOLE, WHOLE, *(slice(0, n) for n in x.shape[2:]))]
    return [dx], param_grads(xp, saved, grad, x, grad, attrs)
