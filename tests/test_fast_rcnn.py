"""Fast R-CNN: its targets on a hand-made image, its multi-task loss against PyTorch's autograd, its export
with the regions dimension through onnxruntime, and a few training steps in which both losses fall."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.backends.onnx_export import export
from cnngraph.backends.onnx_verify import verify
from cnngraph.detection.boxes import decode
from cnngraph.detection.losses import ClassBoxLoss
from cnngraph.detection.targets import IGNORE, rcnn_targets, rpn_targets
from cnngraph.train.optim import Adam


def test_rcnn_targets_follow_the_papers_thresholds():
    gt = np.array([[10, 10, 30, 30], [40, 40, 60, 50]], float)
    proposals = np.array([
        [10, 10, 30, 30],   # the first object exactly: IoU 1
        [12, 10, 32, 30],   # IoU 18*20 / (2*400 - 360) = 0.818: the first object
        [40, 40, 60, 70],   # IoU 200/600 = 0.333 with the second: background
        [0, 0, 8, 8],       # IoU 0: below 0.1, left out
        [20, 10, 40, 30],   # IoU 200/600 = 0.333 with the first: background
    ], float)
    labels, deltas = rcnn_targets(proposals, gt, np.array([3, 7]))
    np.testing.assert_array_equal(labels, [3, 3, 0, IGNORE, 0])
    np.testing.assert_allclose(deltas[0], 0, atol=1e-12)
    np.testing.assert_allclose(decode(deltas[1:2], proposals[1:2], (0.1, 0.1, 0.2, 0.2)), gt[:1], atol=1e-9)


def test_rpn_targets_give_every_object_its_best_anchor():
    gt = np.array([[0, 0, 10, 10]], float)
    anchors = np.array([[0, 0, 16, 16], [50, 50, 60, 60], [0, 0, 12, 12]], float)  # IoU .39, 0, .69
    labels, _ = rpn_targets(anchors, gt)
    np.testing.assert_array_equal(labels, [IGNORE, 0, 1])  # below 0.7 but the object's best anchor


def test_class_box_loss_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    rows, classes = 7, 4
    scores, deltas = rng.standard_normal((rows, classes)), rng.standard_normal((rows, 4 * classes))
    labels = np.array([0, 2, IGNORE, 3, 1, 0, 2])
    goal = rng.standard_normal((rows, 4)) * 0.7
    loss = ClassBoxLoss(box_weight=2.0, beta=0.5)
    value, grads = loss({"cls_score": scores, "bbox_pred": deltas}, {"labels": labels, "deltas": goal})

    s = torch.tensor(scores, requires_grad=True)
    d = torch.tensor(deltas, requires_grad=True)
    y = torch.tensor(labels)
    fg = y > 0
    picked = d.view(rows, classes, 4)[torch.arange(rows)[fg], y[fg]]
    box = torch.nn.functional.smooth_l1_loss(picked, torch.tensor(goal)[fg], beta=0.5, reduction="sum") / (y != -1).sum()
    want = torch.nn.functional.cross_entropy(s, y, ignore_index=-1) + 2.0 * box
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grads["cls_score"], s.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["bbox_pred"], d.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert loss.last["box"] == pytest.approx(box.item())


@pytest.mark.parametrize("backbone, width", [("vgg16", 0.125), ("resnet18", 0.25)])
def test_fast_rcnn_exports_with_its_regions_and_onnxruntime_agrees(backbone, width, tmp_path):
    pytest.importorskip("onnxruntime")
    graph = models.build("fast_rcnn", backbone=backbone, width=width, input_size=64, num_classes=5)
    assert [str(graph.type_of(o)) for o in graph.outputs] == ["f32[R,5]", "f32[R,20]"]
    path = tmp_path / "fast_rcnn.onnx"
    export(graph, path)
    assert verify(graph, path).ok  # random regions inside the image, batches 1 and 3, both heads


def synthetic_scene(rng, batch=2, size=64):
    """Bright squares (class 1) and dark-edged crosses (class 2) on noise, with their boxes."""
    images = rng.normal(0, 0.1, (batch, 3, size, size)).astype(np.float32)
    scenes = []
    for b in range(batch):
        boxes, labels = [], []
        for label, (x, y) in zip((1, 2), rng.integers(4, size - 28, (2, 2))):
            w = int(rng.integers(14, 24))
            if label == 1:
                images[b, :, y:y + w, x:x + w] += 1.0
            else:
                images[b, 0, y:y + w, x + w // 2 - 2:x + w // 2 + 2] -= 1.0
                images[b, 0, y + w // 2 - 2:y + w // 2 + 2, x:x + w] -= 1.0
            boxes.append([x, y, x + w, y + w])
            labels.append(label)
        scenes.append((np.array(boxes, float), np.array(labels)))
    return images, scenes


def proposals_for(rng, scenes, per_image=24, size=64):
    """Jittered copies of the objects (foreground) and random boxes (mostly background)."""
    rows, labels, deltas = [], [], []
    for b, (gt, gt_labels) in enumerate(scenes):
        jitter = np.repeat(gt, per_image // 4, axis=0) + rng.normal(0, 2.0, (per_image // 4 * len(gt), 4))
        corner = rng.uniform(0, size - 16, (per_image // 2, 2))
        random_boxes = np.concatenate([corner, corner + rng.uniform(8, 24, (per_image // 2, 2))], axis=1)
        boxes = np.concatenate([jitter, random_boxes])
        lab, dl = rcnn_targets(boxes, gt, gt_labels)
        rows.append(np.concatenate([np.full((len(boxes), 1), b), boxes], axis=1))
        labels.append(lab)
        deltas.append(dl)
    return np.concatenate(rows).astype(np.float32), {"labels": np.concatenate(labels), "deltas": np.concatenate(deltas)}


def train(graph, feeds, targets, loss, lr: float, steps: int) -> list[dict]:
    """``steps`` training steps with Adam; each step's loss terms (``loss.last``)."""
    trainer, optimizer, history = cnngraph.compile(graph, train=True), Adam(lr=lr), []
    for _ in range(steps):
        trainer.train_step(feeds, targets, loss, optimizer)
        history.append(dict(loss.last))
    return history


def assert_every_term_falls(history: list[dict], factor: float) -> None:
    for term in history[0]:
        first, last = history[0][term], history[-1][term]
        assert last < factor * first, f"{term} loss went from {first:.4f} to {last:.4f}"


def test_a_few_training_steps_lower_both_fast_rcnn_losses():
    rng = np.random.default_rng(0)
    graph = models.build("fast_rcnn", width=0.125, input_size=64, num_classes=3, dropout=0.0, seed=1)
    images, scenes = synthetic_scene(rng)
    rois, targets = proposals_for(rng, scenes)
    assert (targets["labels"] > 0).sum() >= 8 and (targets["labels"] == 0).sum() >= 8
    history = train(graph, {"image": images, "rois": rois}, targets, ClassBoxLoss(), 1e-3, 12)
    assert set(history[0]) == {"classification", "box"}
    assert_every_term_falls(history, 0.8)


def test_rcnn_warps_regions_and_trains_with_the_same_loss():
    """R-CNN runs the whole network on each warped region: same inputs, outputs and loss as Fast R-CNN
    (a whole AlexNet per region is slow on a CPU: few regions, few steps)."""
    rng = np.random.default_rng(0)
    graph = models.build("rcnn", input_size=64, crop=67, num_classes=3, dropout=0.0, seed=1)
    assert str(graph.type_of("warp")) == "f32[R,3,67,67]"
    images, scenes = synthetic_scene(rng)
    rois, targets = proposals_for(rng, scenes, per_image=12)
    assert_every_term_falls(train(graph, {"image": images, "rois": rois}, targets, ClassBoxLoss(), 3e-4, 6), 0.9)
