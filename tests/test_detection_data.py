"""Detection data: the generated digit-detection set, Pascal VOC and COCO folders, and their bad files."""

import json

import numpy as np
import pytest
from PIL import Image

from cnngraph.errors import DataError
from cnngraph.train.data import digits
from cnngraph.train.data.detection import load_detection
from cnngraph.train.data.detection_digits import INK, generate, load


@pytest.fixture(scope="module")
def canvases():
    return generate(digits.load().train, 40, (48, 64), np.random.default_rng(5))


def test_digit_canvases_are_deterministic_from_the_seed(canvases):
    again = generate(digits.load().train, 40, (48, 64), np.random.default_rng(5))
    np.testing.assert_array_equal(again.images, canvases.images)
    assert all(np.array_equal(a, b) for a, b in zip(again.boxes, canvases.boxes))
    other = generate(digits.load().train, 40, (48, 64), np.random.default_rng(6))
    assert not np.array_equal(other.images, canvases.images)


def test_each_box_is_the_tight_box_of_its_mask_and_the_mask_is_visible_ink(canvases):
    for image, boxes, masks in zip(canvases.images, canvases.boxes, canvases.masks):
        assert masks.shape == (len(boxes), 48, 64) and len(boxes) >= 1
        for (x1, y1, x2, y2), mask in zip(boxes.astype(int), masks):
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            assert (x1, y1, x2, y2) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
            assert (image[0][mask] >= INK).all()
        assert not (masks.sum(0) > 1).any()  # an ink pixel belongs to the digit on top only


def test_canvases_vary_in_count_scale_and_class_and_overlap(canvases):
    counts = [len(b) for b in canvases.boxes]
    sides = np.concatenate([b[:, 3] - b[:, 1] for b in canvases.boxes])
    assert min(counts) == 1 and max(counts) >= 3
    assert sides.max() > 2 * sides.min()
    assert len(set(np.concatenate(canvases.labels).tolist())) >= 8
    from cnngraph.detection.boxes import iou_matrix
    overlapping = sum(bool((np.triu(iou_matrix(b, b), 1) > 0).any()) for b in canvases.boxes)
    assert overlapping >= 3


def test_test_canvases_use_the_held_out_digits():
    splits = load(size=(32, 32), n_train=4, n_test=4)
    assert len(splits.train) == len(splits.test) == 4 and splits.train.classes == [str(c) for c in range(10)]
    fitted = load_detection("digit-detection", (3, 32, 32))
    assert fitted.train.images.shape[1:] == (3, 32, 32)


def write_image(path, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)


VOC_XML = """<annotation><filename>{name}.jpg</filename>
<object><name>dog</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>
<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>
</annotation>"""


def voc_folder(root, count=5):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for i in range(count):
        (root / "Annotations" / f"{i:03}.xml").write_text(VOC_XML.format(name=f"{i:03}"))
        write_image(root / "JPEGImages" / f"{i:03}.jpg")
    return root


def test_voc_boxes_become_continuous_corners_scaled_to_the_model_input(tmp_path):
    splits = load_detection(str(voc_folder(tmp_path / "VOC")), (3, 60, 80))  # 40x30 images doubled
    assert splits.train.classes == ["cat", "dog"] and len(splits.train) == 4 and len(splits.test) == 1
    np.testing.assert_allclose(splits.train.boxes[0], [[20, 10, 60, 40], [0, 0, 20, 20]])
    assert splits.train.labels[0].tolist() == [1, 0] and splits.train.ignore[0].tolist() == [False, True]


def test_voc_split_lists_are_honoured(tmp_path):
    root = voc_folder(tmp_path / "VOC")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000\n001\n002\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("003\n004\n")
    assert len(load_detection(str(root), (3, 30, 40)).test) == 2


@pytest.mark.parametrize("text,message", [
    ('<!DOCTYPE a [<!ENTITY x "xx">]><annotation/>', "declares a DTD"),
    ("<annotation><object>", "not well-formed XML"),
    ("<annotation><object><name>a</name><bndbox><xmin>q</xmin></bndbox></object></annotation>", "numeric bndbox"),
    ("<annotation><filename>../x.jpg</filename></annotation>", "plain file name"),
    ("<annotation><object><name>a</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", "bad box"),
])
def test_bad_voc_annotations_are_named(tmp_path, text, message):
    root = voc_folder(tmp_path / "VOC")
    (root / "Annotations" / "000.xml").write_text(text)
    with pytest.raises(DataError, match=message):
        load_detection(str(root), (3, 30, 40))


def coco_file(root, count=5, **change):
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    doc = {"images": [], "annotations": [], "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}]}
    for i in range(1, count + 1):
        write_image(root / "images" / f"{i}.jpg")
        doc["images"].append({"id": i, "file_name": f"{i}.jpg", "width": 40, "height": 30})
        doc["annotations"] += [{"id": 2 * i, "image_id": i, "category_id": 3, "bbox": [10, 5, 20, 15], "iscrowd": 0},
                               {"id": 2 * i + 1, "image_id": i, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1}]
    doc.update(change)
    path = root / "instances_all.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_categories_are_numbered_by_id_and_crowds_ignored(tmp_path):
    splits = load_detection(str(coco_file(tmp_path / "coco")), (3, 30, 40))
    assert splits.train.classes == ["person", "car"] and len(splits.test) == 1
    np.testing.assert_allclose(splits.train.boxes[0], [[10, 5, 30, 20], [0, 0, 5, 5]])
    assert splits.train.labels[0].tolist() == [1, 0] and splits.train.ignore[0].tolist() == [False, True]


@pytest.mark.parametrize("change,message", [
    (dict(images="x"), "needs lists"),
    (dict(annotations=[{"id": 1, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}]), "unknown image_id 99"),
    (dict(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}]), "w, h >= 0"),
    (dict(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": "0 0 1 1"}]), "'bbox' as list"),
    (dict(images=[{"id": 1, "file_name": "/etc/passwd"}]), "plain file name"),
])
def test_bad_coco_files_are_named(tmp_path, change, message):
    with pytest.raises(DataError, match=message):
        load_detection(str(coco_file(tmp_path / "coco", **change)), (3, 30, 40))


def test_oversized_and_unknown_data_are_refused(tmp_path, monkeypatch):
    path = coco_file(tmp_path / "coco")
    monkeypatch.setenv("CNNGRAPH_MAX_BYTES", "100")
    with pytest.raises(DataError, match="budget"):
        load_detection(str(path), (3, 30, 40))
    with pytest.raises(DataError, match="not a detection dataset"):
        load_detection(str(tmp_path), (3, 30, 40))
