"""Box augmentations: the moved boxes must frame the moved pixels (rendered rectangles as the oracle)."""

import numpy as np
import pytest

from cnngraph.train.data.detection_augment import BoxAugment, flip, window


def rendered(boxes, size=(40, 60)):
    """An image with each (integer) box filled, so where the pixels go is where the boxes must go."""
    image = np.zeros((1, *size), np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        image[0, y1:y2, x1:x2] = 1.0
    return image


def tight(image, threshold=0.5):
    rows, cols = np.flatnonzero((image[0] > threshold).any(1)), np.flatnonzero((image[0] > threshold).any(0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


BOX = np.array([[10, 8, 30, 24]], np.float32)


def test_flip_moves_the_box_with_the_pixels_and_twice_is_identity():
    image, boxes = flip(rendered(BOX), BOX)
    np.testing.assert_array_equal(boxes, tight(image)[None])
    again, back = flip(image, boxes)
    np.testing.assert_array_equal(back, BOX)
    np.testing.assert_array_equal(again, rendered(BOX))


@pytest.mark.parametrize("top,left,height,width", [(0, 0, 20, 30), (4, 6, 30, 40), (-10, -15, 60, 90)])
def test_window_maps_boxes_like_pixels(top, left, height, width):
    image, boxes, labels = window(rendered(BOX), BOX, np.array([3]), top, left, height, width)
    assert labels.tolist() == [3]
    np.testing.assert_allclose(boxes[0], tight(image), atol=1.0)  # bilinear edges: within a pixel


def test_boxes_whose_centre_leaves_the_image_are_dropped_and_the_rest_clipped():
    boxes = np.array([[2, 2, 10, 10], [30, 20, 58, 38]], np.float32)
    _, moved, labels = window(rendered(boxes), boxes, np.array([0, 1]), 0, 0, 20, 30)
    assert labels.tolist() == [0]
    np.testing.assert_allclose(moved, [[4, 4, 20, 20]])


@pytest.mark.parametrize("augment", [BoxAugment(flip=True), BoxAugment(scale=(0.6, 1.5)), BoxAugment(crop=0.6),
                                     BoxAugment(True, (0.7, 1.3), 0.7)])
def test_random_augmentations_keep_boxes_on_their_pixels_and_replay_from_a_seed(augment):
    for seed in range(8):
        image, boxes, labels = augment(rendered(BOX), BOX, np.array([1]), np.random.default_rng(seed))
        assert image.shape == (1, 40, 60)
        if len(labels):
            np.testing.assert_allclose(boxes[0], tight(image), atol=1.0)
        again = augment(rendered(BOX), BOX, np.array([1]), np.random.default_rng(seed))
        np.testing.assert_array_equal(again[1], boxes)


@pytest.mark.parametrize("augment", [BoxAugment(flip=True), BoxAugment(scale=(0.6, 1.5)), BoxAugment(crop=0.6),
                                     BoxAugment(True, (0.7, 1.3), 0.7)])
def test_instance_masks_move_with_their_boxes_and_leave_with_them(augment):
    """Two objects with their masks: each kept mask still frames its box (a mask is its object's pixels), a
    dropped box takes its mask along, and the image, boxes and labels are what they are without masks."""
    boxes = np.array([[10, 8, 30, 24], [40, 26, 58, 38]], np.float32)
    masks = np.stack([rendered(b[None])[0] > 0 for b in boxes])
    kept_any = 0
    for seed in range(8):
        image, moved, labels, out = augment(rendered(boxes), boxes, np.array([4, 7]), np.random.default_rng(seed),
                                            masks)
        plain = augment(rendered(boxes), boxes, np.array([4, 7]), np.random.default_rng(seed))
        np.testing.assert_array_equal(image, plain[0])
        np.testing.assert_array_equal(moved, plain[1])
        np.testing.assert_array_equal(labels, plain[2])
        assert out.dtype == bool and out.shape == (len(labels), 40, 60)
        for box, mask in zip(moved, out):
            if mask.any():
                kept_any += 1
                np.testing.assert_allclose(box, tight(mask[None].astype(np.float32)), atol=1.0)
    assert kept_any
