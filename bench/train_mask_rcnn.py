"""Mask R-CNN on digit-detection's instance masks, in a Python loop: box and mask mAP against wall time.

    python bench/train_mask_rcnn.py [--budget 300] [--train 400] [--test 50] [--batch 4] [--lr 0.001]
                                    [--boxes out.png] [--save model.cng]

The small C4 model (ResNet-18 at width 1/4, 64x64 canvases, anchors 16 and 32 pixels) trains all five
losses at once with Adam. Its regions are the objects jittered and random boxes (as tests/test_mask_rcnn.py),
so a step needs no extra forward run; the RPN learns from its own loss, and the evaluation after each epoch
runs the real inference (``detect_masks``: proposals, box head, mask branch) on the held-out canvases and
prints VOC box mAP@0.5 and COCO mask mAP@0.5 and @[.5:.95]. Training stops at the first epoch end past
``--budget`` seconds. ``--boxes`` draws the first held-out canvas's detections with their masks. A benchmark,
not a test: quote the load it prints. Until ``cnngraph train`` drives two-stage detectors this is the loop.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import cnngraph
from cnngraph import models
from cnngraph.detection.drawing import draw_boxes
from cnngraph.detection.evaluate import coco_mask_map, voc_map
from cnngraph.detection.losses import MaskRcnnLoss
from cnngraph.detection.masks import mask_targets
from cnngraph.detection.masks_predict import detect_masks
from cnngraph.detection.predict import Postprocess
from cnngraph.detection.targets import rcnn_targets, rpn_targets
from cnngraph.models.faster_rcnn import anchors
from cnngraph.train.data import detection_digits
from cnngraph.train.data.detection import with_channels
from cnngraph.train.optim import Adam

SIZES, RATIOS = (16, 32), (0.5, 1.0, 2.0)


def regions(rng, gt: np.ndarray, count: int, size: int) -> np.ndarray:
    """Half jittered copies of the objects (mostly foreground), half random boxes (mostly background)."""
    jitter = gt[rng.integers(0, len(gt), count // 2)] if len(gt) else np.zeros((0, 4))
    jitter = jitter + rng.normal(0, 0.1, jitter.shape) * np.tile(jitter[:, 2:] - jitter[:, :2], 2)
    corner = rng.uniform(0, size - 8, (count - len(jitter), 2))
    boxes = np.concatenate([jitter, np.concatenate([corner, corner + rng.uniform(8, 32, corner.shape)], axis=1)])
    return np.clip(boxes, 0, size)


def step_inputs(rng, data, index, grid, rois_per_image: int):
    """Feeds and the five losses' targets for the canvases ``index``."""
    size = data.images.shape[-1]
    rows, rpn, rcnn, mask = [], [], [], []
    for b, i in enumerate(index):
        gt, labels, masks = data.boxes[i], data.labels[i] + 1, data.masks[i]
        boxes = regions(rng, gt, rois_per_image, size)
        rows.append(np.concatenate([np.full((len(boxes), 1), b), boxes], axis=1))
        rpn.append(rpn_targets(grid, gt))
        rcnn.append(rcnn_targets(boxes, gt, labels))
        mask.append(mask_targets(boxes, gt, labels, masks))
    targets = {"rpn": {"labels": np.stack([r[0] for r in rpn]), "deltas": np.stack([r[1] for r in rpn])},
               "rcnn": {"labels": np.concatenate([r[0] for r in rcnn]), "deltas": np.concatenate([r[1] for r in rcnn])},
               "mask": {"masks": np.concatenate([m[0] for m in mask]), "classes": np.concatenate([m[1] for m in mask])}}
    return {"image": data.images[index], "rois": np.concatenate(rows).astype(np.float32)}, targets


def evaluate(graph, data, grid, batch: int):
    model, found = cnngraph.compile(graph), []
    for start in range(0, len(data), batch):
        found += detect_masks(model, data.images[start:start + batch], grid, Postprocess(score_threshold=0.05))
    truths = [(b, y, np.zeros(len(b), bool)) for b, y in zip(data.boxes, data.labels)]
    mask_truths = [(m, y, np.zeros(len(y), bool)) for m, y in zip(data.masks, data.labels)]
    classes = len(data.classes)
    return (found, voc_map([d[:3] for d in found], truths, classes).mean,
            coco_mask_map([(d[3], d[1], d[2]) for d in found], mask_truths, classes, thresholds=[0.5]).mean,
            coco_mask_map([(d[3], d[1], d[2]) for d in found], mask_truths, classes).mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds (default 300)")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rois", type=int, default=32, help="regions per canvas per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--boxes", metavar="PNG", help="draw the first held-out canvas's detections here")
    parser.add_argument("--save", metavar="CNG", help="write the trained model here")
    args = parser.parse_args()
    splits = detection_digits.load(n_train=args.train, n_test=args.test)
    train, test = (with_channels(s, 3, "digit-detection") for s in (splits.train, splits.test))
    graph = models.build("mask_rcnn", backbone="resnet18", width=0.25, input_size=64, num_classes=11,
                         anchor_sizes=SIZES, anchor_ratios=RATIOS, seed=0)
    grid, rng = anchors(graph, SIZES, RATIOS), np.random.default_rng(0)
    trainer, optimizer, loss = cnngraph.compile(graph, train=True), Adam(lr=args.lr), MaskRcnnLoss()
    print(f"load average {os.getloadavg()}; {len(train)} training canvases, {len(test)} held out")
    start, epoch = time.perf_counter(), 0
    while time.perf_counter() - start < args.budget:
        epoch += 1
        terms = []
        order = rng.permutation(len(train))
        for first in range(0, len(train) - args.batch + 1, args.batch):
            feeds, targets = step_inputs(rng, train, order[first:first + args.batch], grid, args.rois)
            trainer.train_step(feeds, targets, loss, optimizer)
            terms.append(loss.last)
        trained = trainer.to_graph()
        trained_s = time.perf_counter() - start
        found, box_map, mask_map50, mask_map = evaluate(trained, test, grid, args.batch)
        mean = {k: np.mean([t[k] for t in terms]) for k in terms[0]}
        print(f"epoch {epoch}: {trained_s:.0f} s trained; losses " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items())
              + f"; box mAP@0.5 {box_map:.3f}, mask mAP@0.5 {mask_map50:.3f}, mask mAP@[.5:.95] {mask_map:.3f}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    if args.boxes:
        kept = found[0][1] >= 0.5
        draw_boxes(test.images[0], tuple(part[kept] for part in found[0]), test.classes, scale=4).save(args.boxes)
        print(f"wrote {args.boxes}: {int(kept.sum())} detections scoring at least 0.5")
    if args.save:
        cnngraph.io.save(trained, args.save)


if __name__ == "__main__":
    main()
