"""Pascal VOC detection folders: ``Annotations/<id>.xml`` with the images in ``JPEGImages/``.

Each XML file lists ``<object>``s with a ``<name>``, a ``<bndbox>`` of 1-based inclusive pixel indices
(xmin..xmax), converted to continuous corners (xmin - 1, ymin - 1, xmax, ymax), and a ``<difficult>``
flag: difficult objects are kept but ignored by evaluation. The classes are the sorted object names
(for VOC itself, its 20 classes in the usual order). ``ImageSets/Main/train.txt`` and ``val.txt`` (or
``test.txt``) give the split when present.

Parsing: every file is size-checked before it is read, and a document with a DTD (``<!DOCTYPE``,
``<!ENTITY``) is refused: VOC annotations have none, and entity declarations are how XML bombs expand
(``xml.etree`` never fetches external entities, and expat 2.4.1 and later also caps entity
amplification; refusing DTDs outright does not depend on the expat version).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.limits import read_bounded
from cnngraph.train.data.detection import DetectionSplits, Record, split_records


def find(path: Path) -> Path | None:
    """The VOC root at ``path`` or one level below (``VOCdevkit/VOC2007``), else None."""
    for candidate in [path, *sorted(p for p in path.iterdir() if p.is_dir())] if path.is_dir() else []:
        if (candidate / "Annotations").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    return None


def parse(path: Path) -> tuple[str, list[tuple[str, list[float], bool]]]:
    """(image file name, [(class name, corners, difficult)]) of one annotation file."""
    text = read_bounded(path, DataError)
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise DataError(f"{path}: refused: the XML declares a DTD or entities (VOC annotations have none)")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise DataError(f"{path}: not well-formed XML ({e})") from None
    filename = (root.findtext("filename") or f"{path.stem}.jpg").strip()
    if Path(filename).name != filename or filename in ("", ".", ".."):
        raise DataError(f"{path}: <filename> must be a plain file name in JPEGImages/, got {filename!r}")
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        try:
            corners = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise DataError(f"{path}: object {name!r} needs numeric bndbox xmin, ymin, xmax, ymax") from None
        if not name or not all(np.isfinite(corners)) or corners[2] < corners[0] or corners[3] < corners[1]:
            raise DataError(f"{path}: object {name!r} has a bad box {corners} (expected xmin <= xmax, ymin <= ymax)")
        corners[0] -= 1
        corners[1] -= 1
        objects.append((name, corners, (obj.findtext("difficult") or "0").strip() == "1"))
    return filename, objects


def _split_list(root: Path) -> set[str] | None:
    main = root / "ImageSets" / "Main"
    for name in ("val.txt", "test.txt"):
        if (main / name).is_file() and (main / "train.txt").is_file():
            return set(read_bounded(main / name, DataError).decode(errors="replace").split())
    return None


def load(root: Path, shape: tuple[int, int, int]) -> DetectionSplits:
    parsed = [(xml, *parse(xml)) for xml in sorted((root / "Annotations").glob("*.xml"))]
    classes = sorted({name for _, _, objects in parsed for name, _, _ in objects})
    index = {c: i for i, c in enumerate(classes)}
    records = []
    for xml, filename, objects in parsed:
        image = root / "JPEGImages" / filename
        if not image.is_file():
            raise DataError(f"{xml}: its image {image} does not exist")
        records.append(Record(image, np.array([c for _, c, _ in objects], np.float32).reshape(-1, 4),
                              np.array([index[n] for n, _, _ in objects], np.int64),
                              np.array([d for _, _, d in objects], bool)))
    return split_records(records, _split_list(root), classes, shape, f"Pascal VOC {root}")
