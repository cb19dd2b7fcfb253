"""RoiPool (ONNX MaxRoiPool) and RoiAlign (ONNX RoiAlign, avg and max) with their backward passes.

RoiAlign is written as per-axis matrices: a bilinear sample mixes two rows and two columns, so a box's
bins are ``Y @ x @ X.T`` with ``Y`` (bins, H) and ``X`` (bins, W) built from the box alone, two BLAS
products per image, and the backward is the transpose. Regions go image by image (the rows whose
batch_index is that image), so no (R, C, H, W) copy of the features is made. RoiPool is separable too:
every column window's max (each start, each width up to the widest bin) is computed once per image, each
box's column bins gathered from it on its rows, then the same over rows; no loop runs over boxes or bins.
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


def _pool_bins(xp, start, end, bins: int, length: int):
    """Each box's bins along one axis: first cell (R, bins) and cell count (0: an empty bin), from onnxruntime's
    floor/ceil bin bounds clipped to the map."""
    size = xp.maximum(end - start + 1, 1)
    step = size / bins
    p = xp.arange(bins, dtype=start.dtype)
    lo = xp.clip(xp.floor(p[None] * step[:, None]) + start[:, None], 0, length)
    hi = xp.clip(xp.ceil((p[None] + 1) * step[:, None]) + start[:, None], 0, length)
    return lo.astype(xp.int64), (hi - lo).astype(xp.int64)


def _pool_setup(xp, x, rois, attrs):
    n, _, h, w = x.shape
    index = batch_indices(xp, rois, n, "RoiPool")
    corners = _round_half_away(xp, rois[:, 1:] * attrs["spatial_scale"])
    (ph, pw) = attrs["output_size"]
    ys = _pool_bins(xp, corners[:, 1], corners[:, 3], ph, h)
    return index, ys, _pool_bins(xp, corners[:, 0], corners[:, 2], pw, w)


def _window_max(xp, v, widths: int, offsets: bool = False):
    """Max of ``v[i:i + k]`` (along the first axis) for every start i and width k = 1..widths: (widths, *v.shape),
    a window past the end holding what is left of it, and with ``offsets`` where in its window the first
    maximum is. Bins of any size are then one gather (width, start), with no loop over boxes or bins; the
    first axis keeps each step's slices contiguous."""
    values = xp.empty((widths, *v.shape), dtype=v.dtype)
    where = xp.zeros((widths, *v.shape), dtype=xp.int8) if offsets else None
    values[0] = v
    for k in range(1, widths):
        inside = len(v) - k
        values[k, inside:] = values[k - 1, inside:]
        xp.maximum(values[k - 1, :inside], v[k:], out=values[k, :inside])
        if offsets:
            where[k] = where[k - 1]
            where[k, :inside][v[k:] > values[k - 1, :inside]] = k
    return values, where


def _pool_image(xp, feature, ys, xs, offsets: bool = False):
    """Max of ``feature`` (C, H, W) over every bin of the boxes of one image, separably: the column bins' maxima
    on each box's rows, then the row bins' maxima of those. Returns values (R, C, ph, pw), 0 in an empty bin, and
    with ``offsets`` each maximum's row and column in the map and the empty bins' mask (for the backward)."""
    (ly, ny), (lx, nx) = ys, xs
    c, h, w = feature.shape
    top = ly.min(axis=1)
    span = max(int((ly + ny - top[:, None]).max()), 1)  # rows any box covers, from its first
    rows = xp.minimum(top[:, None] + xp.arange(span), h - 1)  # (R, span)
    col_max, col_off = _window_max(xp, xp.ascontiguousarray(feature.transpose(2, 1, 0)), max(int(nx.max()), 1),
                                   offsets)  # (kx, W, H, C)
    width, first = xp.maximum(nx - 1, 0), xp.minimum(lx, w - 1)  # (R, pw)
    cols = col_max[width[None], first[None], rows.T[:, :, None]]  # (span, R, pw, C)
    row_max, row_off = _window_max(xp, cols, max(int(ny.max()), 1), offsets)  # (ky, span, R, pw, C)
    r, j = xp.arange(len(ly))[:, None, None], xp.arange(lx.shape[1])[None, :, None]
    height, rel = xp.maximum(ny - 1, 0)[:, None, :], xp.minimum(ly - top[:, None], span - 1)[:, None, :]
    empty = ((nx == 0)[:, :, None] | (ny == 0)[:, None, :])[..., None]  # (R, pw, ph, 1)
    best = xp.where(empty, 0.0, row_max[height, rel, r, j]).transpose(0, 3, 2, 1)  # (R, C, ph, pw)
    if not offsets:
        return best, None, None, None
    row = rows[r[..., None], rel[..., None] + row_off[height, rel, r, j]]  # (R, pw, ph, C)
    col = first[..., None, None] + col_off[width[..., None, None], first[..., None, None], row, xp.arange(c)]
    return best, row.transpose(0, 3, 2, 1), col.transpose(0, 3, 2, 1), empty.transpose(0, 3, 2, 1)


@kernel("RoiPool")
def roi_pool(xp, inputs, params, attrs, ctx):
    x, rois = inputs
    out = _zeros_out(xp, x, rois, attrs)
    index, ys, xs = _pool_setup(xp, x, rois, attrs)
    for b, rows in _per_image(xp, index, x.shape[0]):
        out[rows] = _pool_image(xp, x[b], [a[rows] for a in ys], [a[rows] for a in xs])[0]
    return out


@backward("RoiPool", keeps=("inputs",))
def roi_pool_backward(xp, grad, saved, params, attrs):
    """Each output's gradient goes to the cell its maximum came from (none from an empty bin)."""
    x, rois = saved.inputs
    c, h, w = x.shape[1:]
    dx = xp.zeros_like(x).reshape(x.shape[0], c, h * w)
    index, ys, xs = _pool_setup(xp, x, rois, attrs)
    channels = xp.arange(c)[None, :, None, None]
    for b, rows in _per_image(xp, index, x.shape[0]):
        _, row, col, empty = _pool_image(xp, x[b], [a[rows] for a in ys], [a[rows] for a in xs], offsets=True)
        g = xp.where(empty, 0.0, grad[rows])
        # scatter-add without ufunc.at (not on every backend): one bincount over (channel, cell) slots
        slots = (channels * (h * w) + row * w + col).ravel()
        dx[b] += xp.bincount(slots, weights=g.ravel(), minlength=c * h * w).reshape(c, h * w).astype(x.dtype)
    return [dx.reshape(x.shape), None], {}
