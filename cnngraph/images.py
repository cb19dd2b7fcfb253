"""Decoding one image file a user hands us: pixels bounded before decoding, any decoder failure typed.

Pillow reads only the header on open, so the size an image claims is checked against the size
budget before its pixels are decoded or resized. The file is read into memory first (within the
budget): Pillow's decoders read as many bytes as a chunk's length field claims, and from a file
object that allocates the claimed gigabytes before finding a few bytes there. Its decoders raise whatever a corrupt file
provokes (OSError, SyntaxError, ValueError, DecompressionBombError, struct.error, ...); all of it
becomes the caller's typed error naming the file. Image-folder datasets and ``--input photo.jpg``
both read through here.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Callable

import numpy as np

from cnngraph.errors import CnnGraphError
from cnngraph.limits import array_bytes, check_bytes, read_bounded

Size = Callable[[int, int], tuple[int, int]]  # (width, height) found -> (width, height) wanted


def read_image(path: str | os.PathLike, mode: str, size: Size, error: type[CnnGraphError],
               where: str) -> np.ndarray:
    """The image at ``path`` converted to ``mode`` ("L" or "RGB") and resized bilinearly to
    ``size(width, height)``, as a uint8 (H, W) or (H, W, 3) array."""
    from PIL import Image, UnidentifiedImageError

    bands = len(mode)
    data = io.BytesIO(read_bounded(path, error))  # a corrupt chunk length then reads what is there, not 4 GB
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the budget below decides
            with Image.open(data) as img:
                w, h = img.size
                check_bytes(array_bytes((w, h, max(bands, len(img.getbands()))), 4), f"{where}: {w}x{h} pixels",
                            error)
                out_w, out_h = size(w, h)
                check_bytes(array_bytes((out_w, out_h, bands), 4), f"{where}: resized to {out_w}x{out_h}", error)
                img = img.convert(mode).resize((out_w, out_h), Image.BILINEAR)
                return np.asarray(img, np.uint8)
    except (CnnGraphError, MemoryError):
        raise
    except UnidentifiedImageError:  # its message would name the in-memory copy, not the file
        raise error(f"{where}: cannot decode as an image (not a format Pillow reads)") from None
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise any type on a corrupt file
        raise error(f"{where}: cannot decode as an image ({type(e).__name__}: {e})") from None
