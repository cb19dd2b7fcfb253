"""Anchor boxes: SSD's default boxes on several feature maps, and Faster R-CNN's RPN anchors.

Both return corner boxes ``(x1, y1, x2, y2)`` ordered as a head's output is flattened: row by row over
the feature map, and within a cell one box per (scale, aspect ratio), so anchor ``i`` lines up with the
``i``-th prediction of an ``(N, A * k, H, W)`` head transposed to ``(N, H, W, A, k)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SSD_VARIANCES = (0.1, 0.1, 0.2, 0.2)  # SSD's offsets scaled to about unit variance: encoding, loss and decoding


def _positive(values: Sequence[float], name: str) -> None:
    if len(values) == 0 or any(not v > 0 for v in values):
        raise ValueError(f"{name}: expected one or more positive numbers, found {tuple(values)}")


def _cell_centres(height: int, width: int, step_y: float, step_x: float) -> np.ndarray:
    """(H * W, 2) centres (cx, cy) of the cells of an H x W map, row-major."""
    ys, xs = np.meshgrid((np.arange(height) + 0.5) * step_y, (np.arange(width) + 0.5) * step_x, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _place(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Every size (A, 2) as (w, h) at every centre (P, 2): (P * A, 4) corners, centre-major."""
    half = 0.5 * sizes[None, :, :]
    c = centres[:, None, :]
    return np.concatenate([c - half, c + half], axis=-1).reshape(-1, 4)


def ssd_scales(levels: int, s_min: float = 0.2, s_max: float = 0.9) -> list[float]:
    """SSD's per-level scales ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)``, plus one past the
    last level (for the extra square box of the last level): ``levels + 1`` numbers."""
    if levels < 1 or not 0 < s_min <= s_max:
        raise ValueError(f"ssd_scales: expected levels >= 1 and 0 < s_min <= s_max, found {levels}, {s_min}, {s_max}")
    step = (s_max - s_min) / (levels - 1) if levels > 1 else 0.0
    return [s_min + step * k for k in range(levels + 1)] if levels > 1 else [s_min, s_max]


def ssd_boxes_per_cell(aspect_ratios: Sequence[float]) -> int:
    """Default boxes per cell for one level: one per ratio, plus the extra square box ``sqrt(s_k s_k+1)``."""
    return len(aspect_ratios) + 1


def ssd_default_boxes(feature_sizes: Sequence[tuple[int, int]], aspect_ratios: Sequence[Sequence[float]],
                      scales: Sequence[float] | None = None, clip: bool = True) -> np.ndarray:
    """SSD default boxes, normalised to the image ([0, 1] corners), all levels concatenated.

    Level ``k`` with an ``(H, W)`` map and scale ``s_k`` has, per cell centred at ``((j + .5) / W,
    (i + .5) / H)``, a box ``(s_k sqrt(a), s_k / sqrt(a))`` (w, h) per aspect ratio ``a`` in
    ``aspect_ratios[k]`` (include 1 and each ratio's reciprocal, as the paper's {1, 2, 3, 1/2, 1/3}), and
    the extra square box of side ``sqrt(s_k s_{k+1})``. ``scales`` has one more entry than levels
    (default :func:`ssd_scales`). ``clip`` clips the boxes to the image, as the reference implementation.
    """
    if len(feature_sizes) != len(aspect_ratios):
        raise ValueError(f"ssd_default_boxes: {len(feature_sizes)} feature maps but {len(aspect_ratios)} lists "
                         f"of aspect ratios")
    scales = list(ssd_scales(len(feature_sizes)) if scales is None else scales)
    if len(scales) != len(feature_sizes) + 1:
        raise ValueError(f"ssd_default_boxes: expected {len(feature_sizes) + 1} scales (one per level and one "
                         f"past the last), found {len(scales)}")
    _positive(scales, "ssd_default_boxes scales")
    levels = []
    for (height, width), ratios, s, s_next in zip(feature_sizes, aspect_ratios, scales, scales[1:]):
        _positive(ratios, "ssd_default_boxes aspect_ratios")
        sizes = [(s * math.sqrt(a), s / math.sqrt(a)) for a in ratios] + [(math.sqrt(s * s_next),) * 2]
        levels.append(_place(_cell_centres(height, width, 1.0 / height, 1.0 / width), np.asarray(sizes)))
    boxes = np.concatenate(levels, axis=0)
    return np.clip(boxes, 0.0, 1.0) if clip else boxes


def rpn_anchors(feature_size: tuple[int, int], stride: int | tuple[int, int],
                sizes: Sequence[float] = (128, 256, 512), ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
    """Faster R-CNN anchors in image pixels: per cell of an ``(H, W)`` map with ``stride`` pixels per cell,
    centred at ``((j + .5) stride, (i + .5) stride)``, one box of area ``size**2`` and height / width
    ``ratio`` per (size, ratio), sizes outer and ratios inner (the paper's 3 scales x 3 ratios = 9).
    """
    _positive(sizes, "rpn_anchors sizes")
    _positive(ratios, "rpn_anchors ratios")
    sy, sx = (stride, stride) if isinstance(stride, int) else stride
    shapes = np.asarray([(size / math.sqrt(r), size * math.sqrt(r)) for size in sizes for r in ratios])
    return _place(_cell_centres(*feature_size, sy, sx), shapes)
