"""Conv2d as im2col + one batched GEMM per conv; ConvTranspose2d as GEMM + col2im; both over 1, 2
or 3 spatial axes (the op names keep the 2-D spelling).

The two are each other's adjoint, so each backward reuses the other's forward for the input
gradient; the weight gradient of both is one GEMM per group with the batch folded into the sum.
"""

from __future__ import annotations

import math

from cnngraph.backends.chunks import on_host, over_chunks, summed_in_order, too_few_images
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


def conv2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, out=None, finish=None):
    """(N, C, *spatial) cross-correlation with torch's (O, C/g, *kernel) weights (1, 2 or 3 spatial
    axes), into ``out`` when given; ``finish(dest, index)`` (``fused.per_chunk``) finishes each chunk.

    A few images at a time (``CHUNK_BYTES`` of im2col columns: they stay in cache), on every core
    (``over_chunks``): the copies are single-threaded NumPy, the chunks are not. With fewer images than
    cores, bands of output rows instead, or where the weights outweigh the columns, shares of the input
    channels, each core copying its own channels' windows, their products summed in order (ResNet-18's
    14x14x256 and 7x7x512 3x3 layers at batch 1, three pairs of processes: 1.50-1.56 against 1.75-1.86 ms
    and 1.63-1.83 against 1.94-2.11 ms, a slow spell aside, with shares of the output channels, which all
    read one copy of the windows made first; on 28x28x128 bands won, 1.6 against 2.3). Into ``out`` the
    bias add (or a copy) moves the GEMM's result: matmul straight into a strided slice measured no faster,
    and a reshape of a slice could silently copy.
    """
    n, c, *size = x.shape
    o, cg, *kernel = weight.shape
    r = len(kernel)
    out_size = conv_out_size(size, kernel, stride, padding, dilation)
    taps, positions = math.prod(kernel), math.prod(out_size)
    macs = n * o * cg * taps * positions
    wmat = weight.reshape(groups, o // groups, cg * taps)
    if taps == 1 and not any(padding):
        if any(s != 1 for s in stride):  # the positions it reads, copied once (ResNet's shortcuts 4-16% faster)
            x = xp.ascontiguousarray(x[(WHOLE, WHOLE, *(slice(None, None, s) for s in stride))])
        return _pointwise(xp, x, wmat, bias, out, macs, finish)
    if out is None:
        out = xp.empty((n, o, *out_size), dtype=xp.result_type(x.dtype, weight.dtype))

    def finished(result, index):
        """``out[index]`` is the GEMM's ``result`` with the bias added, and finished."""
        dest = out[index]
        if bias is None:
            dest[...] = result
        else:
            xp.add(result, bias[index[1]].reshape(_per_channel(result.shape[1], r)), out=dest)
        if finish is not None:
            finish(dest, index)

    def rows_of(padded, images, rows):
        """Output rows ``rows`` (along the first spatial axis) of ``images``, from their padded ``padded``."""
        k, start = rows.stop - rows.start, rows.start * stride[0]
        span = (k - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
        view = windows(xp, padded[:, :, start:start + span], kernel, stride, dilation, (k, *out_size[1:]))
        result = xp.matmul(wmat, view.reshape(len(padded), groups, cg * taps, -1))
        finished(result.reshape(len(padded), o, k, *out_size[1:]), (images, slice(None), rows))

    if too_few_images(xp, n):
        padded = pad_spatial(xp, x, padding)
        if groups == 1 and o >= n * positions:  # more weights than columns: a share of the inputs on each core

            def inputs(part):
                """The sum over input channels ``part``: their windows' share of the columns, and of the weights."""
                view = windows(xp, padded[:, part], kernel, stride, dilation, out_size)
                cols = xp.ascontiguousarray(view).reshape(n, (part.stop - part.start) * taps, positions)
                return xp.matmul(wmat[0, :, part.start * taps:part.stop * taps], cols)

            result = summed_in_order(over_chunks(xp, inputs, c, c, macs))
            finished(result.reshape(n, o, *out_size), (slice(None), slice(None)))
        else:  # bands of output rows, one per core
            over_chunks(xp, lambda rows: rows_of(padded, slice(None), rows), out_size[0], out_size[0], macs)
        return out

    def images(chunk):
        rows_of(pad_spatial(xp, x[chunk], padding), chunk, slice(0, out_size[0]))

    over_chunks(xp, images, n, max(1, CHUNK_BYTES // (c * taps * positions * x.itemsize)), macs)
    return out


def _pointwise(xp, x, wmat, bias, out, macs, finish):
    """A 1x1 stride-1 convolution: a GEMM on the input as it is, no copy. Ungrouped on a host namespace, a
    share of the output channels on each core (each reads the whole input once), each share finished there."""
    n, c, *size = x.shape
    groups, og, _ = wmat.shape
    o = groups * og
    dest = out
    if out is None or not out.flags.c_contiguous:
        dest = xp.empty((n, o, *size), dtype=xp.result_type(x.dtype, wmat.dtype))
    flat = dest.reshape(n, groups, og, -1)  # a view: ``dest`` is contiguous

    def channels(part):
        xp.matmul(wmat[:, part], x.reshape(n, groups, c // groups, -1), out=flat[:, :, part])
        if bias is not None:
            flat[:, :, part] += bias.reshape(groups, og, 1)[:, part]
        if finish is not None:
            index = (slice(None), part if groups == 1 else slice(None))
            finish(dest[index], index)

    if groups == 1 and on_host(xp):
        over_chunks(xp, channels, o, o, macs)
    else:
        channels(slice(None))
    if out is not None and dest is not out:
        out[...] = dest  # a strided destination (a slice of an elided Concat's buffer)
        return out
    return dest


def conv_transpose2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, out_size):
    """Transposed convolution with torch's (C, O/g, *kernel) weights onto an output of spatial size
    ``out_size``: GEMM, then col2im; a few images at a time, on every core, as ``conv2d_forward`` (with
    fewer images than cores, ungrouped, a share of the output channels on each)."""
    n, c, *size = x.shape
    _, og, *kernel = weight.shape
    o, taps, positions = og * groups, math.prod(kernel), math.prod(size)
    wmat = weight.reshape(groups, c // groups, og * taps).transpose(0, 2, 1)  # (g, og*taps, c/g)
    out = xp.empty((n, o, *out_size), dtype=xp.result_type(x.dtype, weight.dtype))
    macs = n * o * taps * c // groups * positions

    def convolved(chunk, channels=slice(None)):
        """Output ``channels`` (all of them, or a share where ungrouped) of images ``chunk``."""
        xs = x[chunk]
        rows = wmat if channels == slice(None) else wmat[:, channels.start * taps:channels.stop * taps]
        k = groups * rows.shape[1] // taps
        cols = xp.matmul(rows, xs.reshape(len(xs), groups, c // groups, positions))  # (n, g, k/g*taps, positions)
        summed = unwindows(xp, cols.reshape(len(xs), k, *kernel, *size), (len(xs), k, *out_size), padding, kernel,
                           stride, dilation)
        if bias is None:
            out[chunk, channels] = summed
        else:
            xp.add(summed, bias[channels].reshape(_per_channel(k, len(kernel))), out=out[chunk, channels])

    if groups == 1 and too_few_images(xp, n):
        over_chunks(xp, lambda channels: convolved(slice(None), channels), o, o, macs)
        return out
    step = max(1, CHUNK_BYTES // (o * taps * positions * x.itemsize))
    over_chunks(xp, convolved, n, step, macs)
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

    parts = over_chunks(xp, products, n, step, n * s * b // g * taps * positions)
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
