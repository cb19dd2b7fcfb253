"""COCO instance annotations: ``instances_<split>.json`` with its images in a folder.

The JSON's ``images`` (id, file_name), ``annotations`` (image_id, category_id, bbox [x, y, w, h],
iscrowd) and ``categories`` (id, name) are read; categories are numbered in ascending id order
(COCO's ids 1..90 with gaps become 0..79). Crowd regions are kept and ignored by evaluation, as
pycocotools does. Images are looked for in the folder named after the split beside ``annotations/``
(``val2017/`` for ``annotations/instances_val2017.json``), in ``images/``, or beside the file.

A folder holding ``annotations/instances_train*.json`` and ``instances_val*.json`` gives both splits;
one file alone gets a fixed 20% held out. Files are size-checked before reading; JSON carries no code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnngraph.errors import DataError
from cnngraph.limits import read_bounded
from cnngraph.train.data.detection import DetectionSplits, Record, assemble, split_records


def find(path: Path) -> list[Path] | None:
    """The instances files ``path`` names (a .json, or a folder with annotations/instances_*.json)."""
    if path.is_file():
        return [path] if path.suffix == ".json" else None
    files = sorted((path / "annotations").glob("instances_*.json")) if (path / "annotations").is_dir() else []
    return files or None


def _image_folder(path: Path) -> Path:
    split = path.stem.removeprefix("instances_")
    for folder in (path.parent.parent / split, path.parent.parent / "images", path.parent / "images", path.parent):
        if folder.is_dir():
            return folder
    return path.parent


def _field(item, key: str, kind, where: str):
    if not isinstance(item, dict) or not isinstance(item.get(key), kind) or isinstance(item.get(key), bool):
        raise DataError(f"{where}: expected '{key}' as {getattr(kind, '__name__', 'a number')}, found "
                        f"{type(item.get(key)).__name__ if isinstance(item, dict) else type(item).__name__}")
    return item[key]


def read(path: Path) -> tuple[list[Record], list[str]]:
    """The records and class names of one instances file."""
    try:
        doc = json.loads(read_bounded(path, DataError))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: a COCO instances file needs lists 'images', 'annotations' and 'categories'")
    number = (int, float)
    cats = sorted((_field(c, "id", int, f"{path}: category"), str(c.get("name", c["id"]))) for c in doc["categories"])
    index = {cid: i for i, (cid, _) in enumerate(cats)}
    folder = _image_folder(path)
    images = {}
    for im in doc["images"]:
        name = _field(im, "file_name", str, f"{path}: image")
        if Path(name).name != name:
            raise DataError(f"{path}: image file_name must be a plain file name, got {name!r}")
        images[_field(im, "id", int, f"{path}: image")] = (folder / name, [], [], [])
    for ann in doc["annotations"]:
        where = f"{path}: annotation {ann.get('id') if isinstance(ann, dict) else '?'}"
        image_id, cat = _field(ann, "image_id", int, where), _field(ann, "category_id", int, where)
        bbox = _field(ann, "bbox", list, where)
        if image_id not in images or cat not in index:
            raise DataError(f"{where}: unknown image_id {image_id} or category_id {cat}")
        if len(bbox) != 4 or not all(isinstance(v, number) and not isinstance(v, bool) and np.isfinite(v) for v in bbox) \
                or bbox[2] < 0 or bbox[3] < 0:
            raise DataError(f"{where}: bbox must be 4 finite numbers [x, y, w, h] with w, h >= 0, got {bbox}")
        entry = images[image_id]
        entry[1].append([bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]])
        entry[2].append(index[cat])
        entry[3].append(bool(ann.get("iscrowd", 0)))
    records = [Record(file, np.array(b, np.float32).reshape(-1, 4), np.array(y, np.int64), np.array(c, bool))
               for _, (file, b, y, c) in sorted(images.items())]
    return records, [name for _, name in cats]


def load(files: list[Path], shape: tuple[int, int, int]) -> DetectionSplits:
    train = [f for f in files if "train" in f.stem]
    held = [f for f in files if "val" in f.stem or "test" in f.stem]
    if train and held:
        (train_records, classes), (test_records, test_classes) = read(train[0]), read(held[0])
        if test_classes != classes:
            raise DataError(f"{held[0]}: its categories differ from {train[0]}'s")
        source = f"COCO {train[0].name} / {held[0].name}"
        return DetectionSplits(assemble(train_records, classes, shape, source),
                               assemble(test_records, classes, shape, source), source)
    records, classes = read(files[0])
    return split_records(records, None, classes, shape, f"COCO {files[0]}")
