"""RoiPool (ONNX MaxRoiPool) and RoiAlign (ONNX RoiAlign, avg and max) with their backward passes.

RoiAlign is written as per-axis matrices: a bilinear sample mixes two rows and two columns, so a box's
bins are ``Y @ x @ X.T`` with ``Y`` (bins, H) and ``X`` (bins, W) built from the box alone, two BLAS
products per image, and the backward is the transpose. Regions go image by image (the rows whose
batch_index is that image), so no (R, C, H, W) copy of the features is made. RoiPool takes each box's
bins as row and column masks over the crop the box covers: a max over columns, then over rows.
No gradient flows into the boxes (as torchvision's).
"""

from __future__ import annotations

from cnngraph.arrays import to_numpy
from cnngraph.backends.kernels import backward, kernel
from cnngraph.errors import CnnGraphError



def batch_indices(xp, rois, batch: int, op: str):
    """The integer image index of each region, refusing indices outside the batch or not whole numbers."""
    column = rois[:, 0]
    index = column.astype(xp.int64)
    if rois.shape[0] and (bool((index != column).any()) or int(index.min()) < 0 or int(index.max()) >= batch):
        raise CnnGraphError(f"{op}: rois column 0 must hold image indices 0 to {batch - 1}, found values from "
                            f"{float(column.min())} to {float(column.max())}")
    return index


def _zeros_out(xp, x, rois, attrs):
    """The (R, C, ph, pw) output, zero where no sample or cell reaches (ONNX's value there)."""
    return xp.zeros((rois.shape[0], x.shape[1], *attrs["output_size"]), dtype=x.dtype)


def _per_image(xp, index, batch: int):
    """(image, positions of its regions) for each image that has regions."""
    host = to_numpy(index)
    for b in range(batch):
        where = (host == b).nonzero()[0]
        if len(where):
            yield b, xp.asarray(where)


# -- RoiAlign ------------------------------------------------------------------------------------

def _align_axis(xp, start, extent, bins: int, ratio: int, length: int):
    """One axis of every box: the low and high bilinear weight matrices (R, bins * G, length), where G is the
    largest sampling grid, the mask of samples that exist (R, bins, G), and each box's grid size (R,)."""
    dtype = start.dtype
    grid = xp.full(start.shape, ratio, dtype=xp.int64) if ratio else xp.ceil(extent / bins).astype(xp.int64)
    g = max(int(grid.max()), 1) if grid.shape[0] else 1
    step = extent / bins
    k = xp.arange(g, dtype=dtype)
    pos = (start[:, None, None] + xp.arange(bins, dtype=dtype)[None, :, None] * step[:, None, None]
           + (k[None, None, :] + 0.5) * (step / xp.maximum(grid, 1).astype(dtype))[:, None, None])
    exists = k[None, None, :] < grid[:, None, None].astype(dtype)
    inside = (pos >= -1.0) & (pos <= length)
    pos = xp.maximum(pos, 0.0)
    low = xp.floor(pos).astype(xp.int64)
    at_edge = low >= length - 1
    low = xp.where(at_edge, length - 1, low)
    high = xp.where(at_edge, length - 1, low + 1)
    frac = xp.where(at_edge, 0.0, pos - low.astype(dtype))
    keep = (exists & inside).astype(dtype)
    cells = xp.arange(length)
    lo = (low[..., None] == cells) * ((1.0 - frac) * keep)[..., None]
    hi = (high[..., None] == cells) * (frac * keep)[..., None]
    r = start.shape[0]
    return lo.reshape(r, bins * g, length), hi.reshape(r, bins * g, length), exists, grid


def _align_setup(xp, x, rois, attrs):
    n, _, h, w = x.shape
    index = batch_indices(xp, rois, n, "RoiAlign")
    half = attrs["coordinate_mode"] == "half_pixel"
    box = rois[:, 1:] * attrs["spatial_scale"] - (0.5 if half else 0.0)
    size = box[:, 2:] - box[:, :2]
    if not half:
        size = xp.maximum(size, 1.0)
    (ph, pw), ratio = attrs["output_size"], attrs["sampling_ratio"]
    ys = _align_axis(xp, box[:, 1], size[:, 1], ph, ratio, h)
    xs = _align_axis(xp, box[:, 0], size[:, 0], pw, ratio, w)
    return index, ys, xs


def _avg_matrices(ys, xs, bins_y: int, bins_x: int):
    """The bin matrices of average mode: the samples of a bin summed, divided by the box's sample count."""
    (ylo, yhi, _, gy), (xlo, xhi, _, gx) = ys, xs
    r = ylo.shape[0]
    by = (ylo + yhi).reshape(r, bins_y, -1, ylo.shape[-1]).sum(axis=2)
    bx = (xlo + xhi).reshape(r, bins_x, -1, xlo.shape[-1]).sum(axis=2)
    count = (gy * gx).clip(1, None).astype(by.dtype)
    return by / count[:, None, None], bx


def _sandwich(xp, left, feature, right):
    """``left[r] @ feature[c] @ right[r].T`` for every region r and channel c: (r, i, H), (C, H, W), (r, j, W) ->
    (r, C, i, j), as two matrix products (BLAS), not a three-way einsum."""
    r, i, h = left.shape
    c, _, w = feature.shape
    rows = (left.reshape(r * i, h) @ feature.transpose(1, 0, 2).reshape(h, c * w)).reshape(r, i, c, w)
    return (rows @ right.transpose(0, 2, 1)[:, None]).transpose(0, 2, 1, 3)


def _sandwich_grad(xp, left, grad, right):
    """The gradient of :func:`_sandwich` w.r.t. the feature: sum over r of ``left[r].T @ grad[r, c] @ right[r]``."""
    r, i, h = left.shape
    c, w = grad.shape[1], right.shape[2]
    cols = (grad @ right[:, None]).transpose(0, 2, 1, 3).reshape(r * i, c * w)  # (r, C, i, W) -> (r i, C W)
    return (left.reshape(r * i, h).T @ cols).reshape(h, c, w).transpose(1, 0, 2)


def _max_terms(xp, feature, ys, xs, rows, attrs):
    """The four weighted corners of every sample, (4, r, C, ph, G, pw, G), padding samples at -inf."""
    (ph, pw) = attrs["output_size"]
    (ylo, yhi, yex, _), (xlo, xhi, xex, _) = ys, xs
    terms = xp.stack([_sandwich(xp, ya[rows], feature, xb[rows]) for ya in (ylo, yhi) for xb in (xlo, xhi)])
    t = terms.reshape(4, len(rows), feature.shape[0], ph, yex.shape[-1], pw, xex.shape[-1])
    exists = yex[rows][:, None, :, :, None, None] & xex[rows][:, None, None, None, :, :]
    return xp.where(exists[None], t, -xp.inf)


def _max_flat(xp, t):
    """(r, C, ph, pw, 4 * G * G): each output's candidates in the last axis."""
    return t.transpose(1, 2, 3, 5, 0, 4, 6).reshape(*t.shape[1:3], t.shape[3], t.shape[5], -1)


@kernel("RoiAlign")
def roi_align(xp, inputs, params, attrs, ctx):
    x, rois = inputs
    (ph, pw), out = attrs["output_size"], _zeros_out(xp, x, rois, attrs)
    index, ys, xs = _align_setup(xp, x, rois, attrs)
    if attrs["mode"] == "avg":
        by, bx = _avg_matrices(ys, xs, ph, pw)
        for b, rows in _per_image(xp, index, x.shape[0]):
            out[rows] = _sandwich(xp, by[rows], x[b], bx[rows])
        return out
    for b, rows in _per_image(xp, index, x.shape[0]):
        best = _max_flat(xp, _max_terms(xp, x[b], ys, xs, rows, attrs)).max(axis=-1)
        out[rows] = xp.where(xp.isinf(best), 0.0, best)  # a box with no samples gives 0, as onnxruntime
    return out


@backward("RoiAlign", keeps=("inputs",))
def roi_align_backward(xp, grad, saved, params, attrs):
    x, rois = saved.inputs
    (ph, pw) = attrs["output_size"]
    dx = xp.zeros_like(x)
    index, ys, xs = _align_setup(xp, x, rois, attrs)
    if attrs["mode"] == "avg":
        by, bx = _avg_matrices(ys, xs, ph, pw)
        for b, rows in _per_image(xp, index, x.shape[0]):
            dx[b] += _sandwich_grad(xp, by[rows], grad[rows], bx[rows])
        return [dx, None], {}
    for b, rows in _per_image(xp, index, x.shape[0]):
        t = _max_terms(xp, x[b], ys, xs, rows, attrs)
        flat = _max_flat(xp, t)
        winner = flat.argmax(axis=-1)
        picked = (xp.arange(flat.shape[-1]) == winner[..., None]) & ~xp.isinf(flat.max(axis=-1))[..., None]
        g = (picked * grad[rows][..., None]).reshape(*flat.shape[:4], 4, t.shape[4], t.shape[6])
        g = g.transpose(4, 0, 1, 2, 5, 3, 6).reshape(4, len(rows), x.shape[1], -1, t.shape[5] * t.shape[6])
        (ylo, yhi, _, _), (xlo, xhi, _, _) = ys, xs
        corners = [(ya, xb) for ya in (ylo, yhi) for xb in (xlo, xhi)]
        for (ya, xb), gk in zip(corners, g):
            dx[b] += _sandwich_grad(xp, ya[rows], gk, xb[rows])
    return [dx, None], {}


# -- RoiPool -------------------------------------------------------------------------------------

def _round_half_away(xp, v):
    """C's round(): halves go away from zero (onnxruntime's MaxRoiPool rounds box corners so)."""
    return xp.sign(v) * xp.floor(xp.abs(v) + 0.5)


def _pool_axis(xp, start, end, bins: int, length: int):
    """(R, bins, length) masks of the cells each bin of each box covers (floor/ceil bin bounds, clipped)."""
    size = xp.maximum(end - start + 1, 1)
    step = size / bins
    p = xp.arange(bins, dtype=start.dtype)
    lo = xp.clip(xp.floor(p[None] * step[:, None]) + start[:, None], 0, length)
    hi = xp.clip(xp.ceil((p[None] + 1) * step[:, None]) + start[:, None], 0, length)
    cells = xp.arange(length, dtype=start.dtype)
    return (cells >= lo[..., None]) & (cells < hi[..., None])


def _pool_setup(xp, x, rois, attrs):
    n, _, h, w = x.shape
    index = batch_indices(xp, rois, n, "RoiPool")
    corners = _round_half_away(xp, rois[:, 1:] * attrs["spatial_scale"])
    (ph, pw) = attrs["output_size"]
    return index, _pool_axis(xp, corners[:, 1], corners[:, 3], ph, h), _pool_axis(xp, corners[:, 0], corners[:, 2], pw, w)


def _spans(my, mx):
    """Per box, the rows and columns its bins cover, on the host: (first, stop) pairs, empty when none."""
    def span(mask):
        covered = to_numpy(mask).any(axis=1)  # (R, length)
        first, last = covered.argmax(axis=1), covered.shape[1] - covered[:, ::-1].argmax(axis=1)
        return [(int(a), int(b)) if row.any() else (0, 0) for a, b, row in zip(first, last, covered)]

    return list(zip(span(my), span(mx)))


def _pool_box(xp, feature, my, mx, span):
    """Max of ``feature`` (C, H, W) over each bin of one box, on the crop its bins cover: values (C, ph, pw)
    (-inf for an empty bin) and the argmax row and column in the whole map."""
    (r0, r1), (c0, c1) = span
    crop, my, mx = feature[:, r0:r1, c0:c1], my[:, r0:r1], mx[:, c0:c1]
    cols = xp.where(mx[None, None, :, :], crop[:, :, None, :], -xp.inf)  # (C, h, pw, w)
    col_best, col_arg = cols.max(axis=-1), cols.argmax(axis=-1)  # (C, h, pw)
    rows = xp.where(my[None, :, :, None], col_best[:, None, :, :], -xp.inf)  # (C, ph, h, pw)
    best, row_arg = rows.max(axis=2), rows.argmax(axis=2)  # (C, ph, pw)
    return best, row_arg + r0, xp.take_along_axis(col_arg, row_arg, axis=1) + c0


@kernel("RoiPool")
def roi_pool(xp, inputs, params, attrs, ctx):
    x, rois = inputs
    out = _zeros_out(xp, x, rois, attrs)
    index, my, mx = _pool_setup(xp, x, rois, attrs)
    host = to_numpy(index)
    for k, span in enumerate(_spans(my, mx)):
        if span[0][1] > span[0][0] and span[1][1] > span[1][0]:  # a box off the map stays 0
            best = _pool_box(xp, x[int(host[k])], my[k], mx[k], span)[0]
            out[k] = xp.where(xp.isinf(best), 0.0, best)  # an empty bin gives 0, as ONNX
    return out


@backward("RoiPool", keeps=("inputs",))
def roi_pool_backward(xp, grad, saved, params, attrs):
    """Each output's gradient goes to the cell its maximum came from (none from an empty bin)."""
    x, rois = saved.inputs
    c, h, w = x.shape[1:]
    dx = xp.zeros_like(x).reshape(x.shape[0], c, h * w)
    index, my, mx = _pool_setup(xp, x, rois, attrs)
    host = to_numpy(index)
    channels = xp.arange(c)[:, None]
    for k, span in enumerate(_spans(my, mx)):
        if span[0][1] > span[0][0] and span[1][1] > span[1][0]:
            b = int(host[k])
            best, row, col = _pool_box(xp, x[b], my[k], mx[k], span)
            g = xp.where(xp.isinf(best), 0.0, grad[k]).reshape(c, -1)
            cells = (row * w + col).reshape(c, -1)
            # scatter-add without ufunc.at (not on every backend): one bincount over (channel, cell) slots
            dx[b] += xp.bincount((channels * (h * w) + cells).ravel(), weights=g.ravel(),
                                 minlength=c * h * w).reshape(c, h * w).astype(x.dtype)
    return [dx.reshape(x.shape), None], {}
