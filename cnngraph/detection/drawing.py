"""Detections drawn on the image: a coloured rectangle per box, labelled "class score" (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def draw_boxes(image: np.ndarray, detections: tuple, classes: Sequence[str] | None = None, scale: int = 1):
    """A PIL image of ``image`` (C, H, W) in [0, 1] enlarged ``scale`` times, with the detections
    ``(boxes in its pixels, scores, labels)`` outlined and labelled."""
    from PIL import Image, ImageDraw

    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0)).convert("RGB")
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    pen = ImageDraw.Draw(picture)
    boxes, scores, labels = detections
    for box, score, label in zip(boxes, scores, labels):
        colour = PALETTE[int(label) % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=max(1, scale // 2))
        name = classes[int(label)] if classes is not None and int(label) < len(classes) else str(int(label))
        text = f"{name} {float(score):.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text)
        lift = bottom - top + 2
        pen.rectangle([x1, y1 - lift, x1 + right - left + 2, y1], fill=colour)
        pen.text((x1 + 1, y1 - lift), text, fill=(0, 0, 0))
    return picture
