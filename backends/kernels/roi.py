"""RoiPool (ONNX MaxRoiPool) and RoiAlign (ONNX RoiAlign, avg and max) with their backward passes.

Both are written as per-axis selection matrices: a bin of a box covers a set of rows and a set of
columns, and a bilinear sample mixes two rows and two columns, so a box's output is ``Y @ x @ X.T``
with ``Y`` (bins, H) and ``X`` (bins, W) built from the box alone. The backward is the transpose.
Regions are processed image by image (the rows whose batch_index is that image) so no (R, C, H, W)
copy of the features is ever made. No gradient flows into the boxes (as torchvision's).
"""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.errors import CnnGraphError

_CHUNK_ELEMENTS = 2**24  # RoiPool's masked max works on (rois, C, H, bins, W) blocks of about this size


def batch_indices(xp, rois, batch: int, op: str):
    """The integer image index of each region, refusing indices outside the batch or not whole numbers."""
    column = rois[:, 0]
    index = column.astype(xp.int64)
    if rois.shape[0] and (bool((index != column).any()) or int(index.min()) < 0 or int(index.max()) >= batch):
        raise CnnGraphError(f"{op}: rois column 0 must hold image indices 0 to {batch - 1}, found values from "
                            f"{float(column.min())} to {float(column.max())}")
    return index


def _per_image(xp, index, batch: int):
    """(image, positions of its regions) for each image that has regions."""
    host = index.get() if hasattr(index, "get") else index
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


def _max_terms(xp, feature, ys, xs, rows, attrs):
    """The four weighted corners of every sample, (4, r, C, ph, G, pw, G), padding samples at -inf."""
    (ph, pw) = attrs["output_size"]
    (ylo, yhi, yex, _), (xlo, xhi, xex, _) = ys, xs
    terms = xp.stack([xp.einsum("rih,chw,rjw->rcij", ya[rows], feature, xb[rows])
                      for ya in (ylo, yhi) for xb in (xlo, xhi)])
    t = terms.reshape(4, len(rows), feature.shape[0], ph, yex.shape[-1], pw, xex.shape[-1])
    exists = yex[rows][:, None, :, :, None, None] & xex[rows][:, None, None, None, :, :]
    return xp.where(exists[None], t, -xp.inf)


def _max_flat(xp, t):
    """(r, C, ph, pw, 4 * G * G): each output's candidates in the last axis."""
    return t.transpose(1, 2, 3, 5, 0, 4, 6).reshape(*t.shape[1:3], t.shape[3], t.shape[5], -1)


@kernel("RoiAlign")
def roi_align(xp, inputs, params, attrs, ctx):
    x, rois = inputs
    (ph, pw) = attrs["output_size"]
    out = xp.zeros((rois.shape[0], x.shape[1], ph, pw), dtype=x.dtype)
    index, ys, xs = _align_setup(xp, x, rois, attrs)
    if attrs["mode"] == "avg":
        by, bx = _avg_matrices(ys, xs, ph, pw)
        for b, rows in _per_image(xp, index, x.shape[0]):
            out[rows] = xp.einsum("rph,chw,rqw->rcpq", by[rows], x[b], bx[rows])
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
            dx[b] += xp.einsum("rph,rcpq,rqw->chw", by[rows], grad[rows], bx[rows])
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
            dx[b] += xp.einsum("rih,rcij,rjw->chw", ya[rows], gk, xb[rows])
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


def _pool_max(xp, feature, my, mx):
    """Max of ``feature`` (C, H, W) over each bin of r boxes: values (r, C, ph, pw), and the argmax row and
    column; a bin that covers nothing is -inf."""
    cols = xp.where(mx[:, None, None, :, :], feature[None, :, :, None, :], -xp.inf)  # (r, C, H, pw, W)
    col_best, col_arg = cols.max(axis=-1), cols.argmax(axis=-1)  # (r, C, H, pw)
    rows = xp.where(my[:, None, :, :, None], col_best[:, :, None, :, :], -xp.inf)  # (r, C, ph, H, pw)
    best, row_arg = rows.max(axis=3), rows.argmax(axis=3)  # (r, C, ph, pw)
    col_at = xp.take_along_axis(col_arg[:, :, None, :, :].repeat(my.shape[1], axis=2), row_arg[:, :, :, None, :],
                                axis=3)[:, :, :, 0, :]
    return best, row_arg, col_at


def _chunks(count: int, c: int, h: int, w: int, bins: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, c * h * w * bins))
    return [slice(i, min(i + step, count)) for i in range(0, count, step)]


@kernel("RoiPool")
def roi_pool(xp, inputs, params, attrs, ctx):
    x, rois = inputs
    _, c, h, w = x.shape
    (ph, pw) = attrs["output_size"]
    out = xp.zeros((rois.shape[0], c, ph, pw), dtype=x.dtype)
    index, my, mx = _pool_setup(xp, x, rois, attrs)
    for b, rows in _per_image(xp, index, x.shape[0]):
        for part in _chunks(len(rows), c, h, w, pw):
            sel = rows[part]
            best = _pool_max(xp, x[b], my[sel], mx[sel])[0]
            out[sel] = xp.where(xp.isinf(best), 0.0, best)  # an empty bin gives 0, as ONNX
    return out


@backward("RoiPool", keeps=("inputs",))
def roi_pool_backward(xp, grad, saved, params, attrs):
    """Each output's gradient goes to the cell its maximum came from (none from an empty bin)."""
    x, rois = saved.inputs
    _, c, h, w = x.shape
    (ph, pw) = attrs["output_size"]
    dx = xp.zeros_like(x)
    index, my, mx = _pool_setup(xp, x, rois, attrs)
    for b, rows in _per_image(xp, index, x.shape[0]):
        for part in _chunks(len(rows), c, h, w, pw):
            sel = rows[part]
            best, row, col = _pool_max(xp, x[b], my[sel], mx[sel])
            g = xp.where(xp.isinf(best), 0.0, grad[sel])
            one_row = (row[..., None] == xp.arange(h)) * g[..., None]  # (r, C, ph, pw, H)
            one_col = (col[..., None] == xp.arange(w)).astype(x.dtype)  # (r, C, ph, pw, W)
            dx[b] += xp.einsum("rcpqh,rcpqw->chw", one_row, one_col)
    return [dx, None], {}
