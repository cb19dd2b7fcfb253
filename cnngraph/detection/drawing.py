"""Detections drawn on the image: a coloured rectangle per box, labelled "class score" (Pillow), and for
Mask R-CNN each detection's mask laid over the image, translucent, in its box's colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MASK_OPACITY = 0.5
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def _colour(label) -> tuple[int, int, int]:
    return PALETTE[int(label) % len(PALETTE)]


def _overlay(pixels: np.ndarray, masks: np.ndarray, labels) -> np.ndarray:
    """(H, W, 3) uint8 pixels with each (H, W) mask blended in its label's colour."""
    blended = pixels.astype(np.float64)
    for mask, label in zip(np.asarray(masks, bool), labels):
        blended[mask] = (1 - MASK_OPACITY) * blended[mask] + MASK_OPACITY * np.array(_colour(label))
    return np.round(blended).astype(np.uint8)


def draw_boxes(image: np.ndarray, detections: tuple, classes: Sequence[str] | None = None, scale: int = 1):
    """A PIL image of ``image`` (C, H, W) in [0, 1] enlarged ``scale`` times, with the detections
    ``(boxes in its pixels, scores, labels[, masks (k, H, W)])`` outlined, labelled and their masks overlaid."""
    from PIL import Image, ImageDraw

    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    pixels = np.repeat(pixels, 3, axis=0) if len(pixels) == 1 else pixels
    boxes, scores, labels, *masks = detections
    if masks:
        pixels = _overlay(pixels.transpose(1, 2, 0), masks[0], labels).transpose(2, 0, 1)
    picture = Image.fromarray(pixels.transpose(1, 2, 0)).convert("RGB")
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    pen = ImageDraw.Draw(picture)
    for box, score, label in zip(boxes, scores, labels):
        colour = _colour(label)
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=max(1, scale // 2))
        name = classes[int(label)] if classes is not None and int(label) < len(classes) else str(int(label))
        text = f"{name} {float(score):.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text)
        lift = bottom - top + 2
        pen.rectangle([x1, y1 - lift, x1 + right - left + 2, y1], fill=colour)
        pen.text((x1 + 1, y1 - lift), text, fill=(0, 0, 0))
    return picture
