"""Faster R-CNN: the RPN's published output-layer size, anchors in the order of the RPN's outputs, the RPN
loss against PyTorch's autograd, proposals, and approximate joint training in which all four losses fall."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.detection.losses import FasterRcnnLoss, RpnLoss
from cnngraph.detection.proposals import propose
from cnngraph.detection.targets import rpn_targets
from cnngraph.models.faster_rcnn import anchors
from tests.test_fast_rcnn import assert_every_term_falls, proposals_for, synthetic_scene, train


def test_rpn_output_layers_have_the_papers_28_thousand_weights(zero_params):
    graph = models.build("faster_rcnn")
    weights = sum(graph.params[f"rpn.{head}.weight"].size for head in ("cls_logits", "bbox_pred"))
    assert weights == 512 * (4 + 2) * 9 == 27_648


def test_anchors_line_up_with_the_rpn_outputs():
    graph = models.build("faster_rcnn", width=0.125, input_size=64, anchor_sizes=(16, 32), anchor_ratios=(1, 2))
    grid = anchors(graph, (16, 32), (1, 2))
    per_cell, (h, w) = 4, graph.type_of("rpn.conv").shape[2:]
    assert grid.shape == (graph.type_of("rpn_logits").shape[2], 4) == (per_cell * h * w, 4)
    for a, y, x in [(0, 0, 0), (3, 1, 2), (2, 3, 1)]:
        box = grid[a * h * w + y * w + x]
        np.testing.assert_allclose((box[:2] + box[2:]) / 2, [(x + 0.5) * 16, (y + 0.5) * 16])
        size, ratio = (16, 16, 32, 32)[a], (1, 2, 1, 2)[a]
        np.testing.assert_allclose((box[2:] - box[:2]).prod(), size * size)
        np.testing.assert_allclose((box[3] - box[1]) / (box[2] - box[0]), ratio)


def test_rpn_loss_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, deltas = rng.standard_normal((2, 2, 9)), rng.standard_normal((2, 9, 4))
    labels = rng.integers(-1, 2, (2, 9))
    goal = rng.standard_normal((2, 9, 4))
    loss = RpnLoss(beta=1 / 9)
    value, grads = loss({"rpn_logits": logits, "rpn_deltas": deltas}, {"labels": labels, "deltas": goal})
    lg, dl, y = torch.tensor(logits, requires_grad=True), torch.tensor(deltas, requires_grad=True), torch.tensor(labels)
    box = torch.nn.functional.smooth_l1_loss(dl[y > 0], torch.tensor(goal)[y > 0], beta=1 / 9, reduction="sum")
    want = torch.nn.functional.cross_entropy(lg, y, ignore_index=-1) + box / (y != -1).sum()
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grads["rpn_logits"], lg.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["rpn_deltas"], dl.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_proposals_are_clipped_suppressed_and_best_first():
    grid = np.array([[-10, -10, 20, 20], [0, 0, 30, 30], [1, 1, 31, 31], [40, 40, 60, 60]], float)
    logits = np.zeros((1, 2, 4))
    logits[0, 1] = [3.0, 2.0, 2.5, 1.0]  # object scores; the second and third overlap at IoU 0.88
    rows = propose(logits, np.zeros((1, 4, 4)), grid, (50, 50), post_nms=10)
    np.testing.assert_allclose(rows, [[0, 0, 0, 20, 20], [0, 1, 1, 31, 31], [0, 40, 40, 50, 50]])


def test_joint_training_lowers_all_four_losses():
    """One backward through both heads and the shared trunk per step. The regions are fixed (jittered objects
    and random boxes) so each loss is measured against the same targets at every step; proposals from the
    RPN (``propose``) would move them."""
    rng = np.random.default_rng(0)
    sizes = (16, 32)
    graph = models.build("faster_rcnn", width=0.125, input_size=64, num_classes=3, anchor_sizes=sizes,
                         dropout=0.0, seed=1)
    grid = anchors(graph, sizes)
    images, scenes = synthetic_scene(rng)
    rpn = [rpn_targets(grid, gt) for gt, _ in scenes]
    rpn_goal = {"labels": np.stack([r[0] for r in rpn]), "deltas": np.stack([r[1] for r in rpn])}
    assert (rpn_goal["labels"] == 1).sum() >= 4 and (rpn_goal["labels"] == 0).sum() >= 50
    rois, rcnn_goal = proposals_for(rng, scenes)
    feeds = {"image": images, "rois": rois}
    history = train(graph, feeds, {"rpn": rpn_goal, "rcnn": rcnn_goal}, FasterRcnnLoss(), 5e-4, 16)
    assert set(history[0]) == {"rpn_classification", "rpn_box", "classification", "box"}
    assert_every_term_falls(history, 0.8)
    out = cnngraph.compile(graph).run({"image": images, "rois": rois[:1]})
    proposals = propose(out["rpn_logits"], out["rpn_deltas"], grid, (64, 64), post_nms=16)
    assert set(proposals[:, 0]) == {0, 1} and len(proposals) <= 32
