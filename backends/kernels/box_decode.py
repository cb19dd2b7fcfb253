"""BoxDecode: ``cnngraph.detection.boxes.decode`` forward; its backward through centre and size by hand."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.detection.boxes import corners_to_centres, decode


@kernel("BoxDecode")
def box_decode(xp, inputs, params, attrs, ctx):
    deltas, anchors = inputs
    return decode(deltas, anchors, attrs["variances"], attrs["max_log_scale"])


@backward("BoxDecode", keeps=("inputs",))
def box_decode_backward(xp, grad, saved, params, attrs):
    """Corners are centre -/+ size / 2, centre = anchor centre + d_xy * anchor size, size = anchor size *
    exp(min(d_wh, max_log_scale)): no gradient past the clip, none into the anchors."""
    deltas, anchors = saved.inputs
    var = xp.asarray(attrs["variances"], dtype=deltas.dtype)
    d = deltas * var
    a_size = corners_to_centres(anchors)[..., 2:]
    clipped = d[..., 2:] < attrs["max_log_scale"]
    size = a_size * xp.exp(xp.minimum(d[..., 2:], attrs["max_log_scale"]))
    d_centre = grad[..., :2] + grad[..., 2:]
    d_size = 0.5 * (grad[..., 2:] - grad[..., :2])
    dd = xp.concatenate([d_centre * a_size, d_size * size * clipped], axis=-1)
    return [dd * var, None], {}
