"""YOLO v1 and MultiBox losses: hand-worked cases, finite differences (tests/gradcheck.py) and PyTorch autograd."""

import math

import numpy as np
import pytest

from cnngraph.errors import TrainingError
from cnngraph.train.detection_losses import MultiBoxLoss, YoloLoss
from tests.gradcheck import numeric_gradient

SQRT06 = math.sqrt(0.6)


def yolo_case():
    """One 10x10 image, S=1, B=2, C=2; the truth [2, 2, 8, 8] of class 1 sits in the only cell."""
    boxes = np.array([[[[[0.6, 0.5, SQRT06, SQRT06, 0.3], [0.5, 0.5, 0.1, 0.1, 0.4]]]]])
    classes = np.array([[[[0.2, 0.9]]]])
    return {"boxes": boxes, "classes": classes}, [(np.array([[2.0, 2, 8, 8]]), np.array([1]))]


def test_yolo_loss_by_hand():
    outputs, targets = yolo_case()
    value, _ = YoloLoss((10, 10))(outputs, targets)
    # Predictor 0 is responsible (its box [3, 2, 9, 8] has IoU 30/42 with the truth; predictor 1's is tiny).
    # coord: 5 * 0.1^2; confidence: (0.3 - 30/42)^2; no-object: 0.5 * 0.4^2; classes: 0.2^2 + 0.1^2.
    assert value == pytest.approx(5 * 0.01 + (0.3 - 30 / 42) ** 2 + 0.5 * 0.16 + 0.05)
    value, _ = YoloLoss((10, 10), rescore=False)(outputs, targets)
    assert value == pytest.approx(5 * 0.01 + 0.7 ** 2 + 0.5 * 0.16 + 0.05)


def random_yolo(seed: int, s: int = 3, b: int = 2, c: int = 4, n: int = 2):
    rng = np.random.default_rng(seed)
    outputs = {"boxes": rng.uniform(0.1, 0.9, (n, s, s, b, 5)), "classes": rng.uniform(0, 1, (n, s, s, c))}
    targets = []
    for _ in range(n):
        xy = rng.uniform(0, 20, (3, 2))
        targets.append((np.concatenate([xy, xy + rng.uniform(3, 10, (3, 2))], axis=1), rng.integers(0, c, 3)))
    return outputs, targets


def assert_gradients_match_finite_differences(loss, outputs, targets):
    _, grads = loss(outputs, targets)
    for name in outputs:
        numeric = numeric_gradient(lambda: loss(outputs, targets)[0], outputs[name])
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8)


def test_yolo_gradient_matches_finite_differences():
    outputs, targets = random_yolo(0)
    # with rescore the target moves with the boxes; the papers' code stops its gradient
    assert_gradients_match_finite_differences(YoloLoss((30, 30), rescore=False), outputs, targets)


def test_yolo_loss_matches_torch_with_rescoring():
    torch = pytest.importorskip("torch")
    outputs, targets = random_yolo(1)
    loss = YoloLoss((30, 30))
    value, grads = loss(outputs, targets)
    t = loss.assign(outputs["boxes"], targets)
    boxes = torch.tensor(outputs["boxes"], requires_grad=True)
    classes = torch.tensor(outputs["classes"], requires_grad=True)
    resp = torch.tensor(t["responsible"])
    obj = torch.tensor(t["obj"])
    coords = torch.tensor(t["coords"])[:, :, :, None, :].expand_as(boxes[..., :4])
    mse = torch.nn.functional.mse_loss
    expected = (5 * mse(boxes[..., :4][resp], coords[resp], reduction="sum")
                + mse(boxes[..., 4][resp], torch.tensor(t["confidence"])[resp], reduction="sum")
                + 0.5 * (boxes[..., 4][~resp] ** 2).sum()
                + mse(classes[obj], torch.nn.functional.one_hot(torch.tensor(t["cls"])[obj], 4).double(),
                      reduction="sum")) / len(targets)
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(grads["boxes"], boxes.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["classes"], classes.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert t["responsible"].sum() == t["obj"].sum() > 0


def test_yolo_keeps_the_largest_of_boxes_sharing_a_cell():
    loss = YoloLoss((10, 10))
    out = np.zeros((1, 1, 1, 1, 5))
    t = loss.assign(out, [(np.array([[4.0, 4, 6, 6], [1, 1, 9, 9], [4, 4, 5, 5]]), np.array([0, 1, 2]))])
    assert t["cls"][0, 0, 0] == 1 and t["coords"][0, 0, 0, 2] == pytest.approx(math.sqrt(0.8))


def test_yolo_assigns_each_box_to_the_cell_of_its_centre():
    """S = 4 on a 40x20 (H x W) image: cells are 10 rows by 5 columns of pixels; offsets and sqrt sizes by hand."""
    loss = YoloLoss((40, 20))
    boxes = np.array([[1.0, 2, 5, 12], [12, 25, 20, 40]])  # centres (3, 7) and (16, 32.5)
    t = loss.assign(np.zeros((1, 4, 4, 2, 5)), [(boxes, np.array([3, 7]))])
    assert sorted(zip(*np.nonzero(t["obj"][0]))) == [(0, 0), (3, 3)]
    np.testing.assert_allclose(t["coords"][0, 0, 0], [3 / 5, 7 / 10, math.sqrt(4 / 20), math.sqrt(10 / 40)])
    np.testing.assert_allclose(t["coords"][0, 3, 3], [16 / 5 - 3, 32.5 / 10 - 3, math.sqrt(8 / 20), math.sqrt(15 / 40)])
    assert t["cls"][0, 0, 0] == 3 and t["cls"][0, 3, 3] == 7 and t["responsible"].sum() == 2


ANCHORS = np.array([[0, 0, .5, .5], [.5, .5, 1, 1], [0, .5, .5, 1], [.5, 0, 1, .5]])


def test_multibox_by_hand_with_hard_negatives():
    loc = np.zeros((1, 4, 4))
    loc[0, 0] = [0.1, 0, 0, 2]  # smooth L1 against zero offsets: 0.5 * 0.01 + (2 - 0.5)
    conf = np.array([[[0.0, 0], [0, 2], [0, 0], [1, 0]]])
    targets = [(np.array([[0.0, 0, 5, 5]]), np.array([0]))]  # exactly anchor 0: class 1, zero offsets
    outputs = {"loc": loc, "conf": conf}
    value, _ = MultiBoxLoss(ANCHORS, (10, 10), neg_pos_ratio=1)(outputs, targets)
    # One match; the one hard negative is anchor 1, whose background loss log(1 + e^2) is the highest.
    assert value == pytest.approx(math.log(2) + math.log(1 + math.e ** 2) + 0.005 + 1.5)
    value, _ = MultiBoxLoss(ANCHORS, (10, 10))(outputs, targets)  # 3:1 takes all three negatives
    negatives = math.log(1 + math.e ** 2) + math.log(2) + math.log(1 + math.e ** -1)
    assert value == pytest.approx(math.log(2) + negatives + 1.505)


def test_multibox_matching_forces_the_best_default_box_and_thresholds_the_rest():
    loss = MultiBoxLoss(ANCHORS, (10, 10))
    # [0, 0, 4, 4] overlaps anchor 0 with IoU 16/25 = 0.64; [5, 5, 7, 9.5] overlaps anchor 1 with IoU 0.36 < 0.5,
    # still matched, being its truth's best.
    labels, offsets = loss.match([(np.array([[0.0, 0, 4, 4], [5, 5, 7, 9.5]]), np.array([2, 0]))], 1)
    assert labels.tolist() == [[3, 1, 0, 0]]
    # offsets of [0, 0, .4, .4] on anchor [0, 0, .5, .5] with variances .1, .2: centre -0.05/.5/.1, log(.8)/.2
    np.testing.assert_allclose(offsets[0, 0], [-1, -1, math.log(0.8) / 0.2, math.log(0.8) / 0.2])
    assert not offsets[0, 2:].any()


def random_ssd(seed: int, n: int = 2, c: int = 3):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (6, 2))
    anchors = np.clip(np.concatenate([xy - 0.2, xy + 0.2], axis=1), 0, 1)
    outputs = {"loc": rng.normal(0, 1, (n, 6, 4)) * 1.5, "conf": rng.normal(0, 2, (n, 6, c + 1))}
    targets = [(anchors[i:i + 1] * 20 + rng.normal(0, 0.5, (1, 4)), rng.integers(0, c, 1)) for i in range(n)]
    return anchors, outputs, targets


def test_multibox_gradient_matches_finite_differences():
    anchors, outputs, targets = random_ssd(0)
    assert_gradients_match_finite_differences(MultiBoxLoss(anchors, (20, 20), neg_pos_ratio=1), outputs, targets)


def test_multibox_matches_torch():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    anchors, outputs, targets = random_ssd(1)
    loss = MultiBoxLoss(anchors, (20, 20))
    value, grads = loss(outputs, targets)
    labels, offsets = (torch.tensor(a) for a in loss.match(targets, 2))
    loc = torch.tensor(outputs["loc"], requires_grad=True)
    conf = torch.tensor(outputs["conf"], requires_grad=True)
    pos = labels > 0
    ce = f.cross_entropy(conf.permute(0, 2, 1), labels, reduction="none")
    with torch.no_grad():  # hard negatives as in ssd.pytorch: rank background losses, positives excluded
        ranked = ce.masked_fill(pos, -float("inf")).argsort(dim=1, descending=True, stable=True).argsort(dim=1)
        neg = ranked < torch.minimum(3 * pos.sum(1, keepdim=True), (~pos).sum(1, keepdim=True))
    expected = (ce[pos | neg].sum() + f.smooth_l1_loss(loc[pos], offsets[pos], reduction="sum")) / pos.sum()
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(grads["loc"], loc.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["conf"], conf.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_targets_are_named():
    anchors, outputs, targets = random_ssd(0)
    with pytest.raises(TrainingError, match="multibox: 1 target lists for a batch of 2"):
        MultiBoxLoss(anchors, (20, 20))(outputs, targets[:1])
    with pytest.raises(TrainingError, match="do not fit the 4 default boxes"):
        MultiBoxLoss(ANCHORS, (20, 20))(outputs, targets)
    with pytest.raises(TrainingError, match="yolo_v1: image 0 has 1 boxes but 2 labels"):
        YoloLoss((10, 10))(yolo_case()[0], [(np.zeros((1, 4)), [0, 1])])
