"""What differs between detector families when training and scoring them, one small recipe per family.

A recipe says, for a detector graph: which inputs a training step feeds and which targets its loss
gets (``step``), the loss itself, which inputs an inference run feeds (``feeds``), and how the outputs
become detections ``(boxes (k, 4) pixels, scores (k,), labels (k,))`` per image (``decode``), the format
``cnngraph.detection.evaluate`` scores. ``recipe_for(graph)`` picks the recipe from the graph's outputs:
of those whose outputs the graph has, the one naming the most (Faster R-CNN's four before Fast
R-CNN's two), so a family that extends another (Mask R-CNN's ``mask_logits`` on Faster R-CNN's outputs)
is one more entry in ``RECIPES``, usually a subclass.

- ``OneStage``: YOLO v1 and SSD; the image is the only input, the targets are the boxes and labels.
- ``Regions``: R-CNN and Fast R-CNN (``cls_score``, ``bbox_pred``) on sliding-window proposals
  (``cnngraph.detection.regions``); training adds jittered truths and samples 32 regions per image, half
  foreground (``RegionSettings``), labelled by ``rcnn_targets`` (background below IoU 0.5).
- ``FasterRcnn``: the RPN's outputs too; each step runs the model once for proposals (``propose``), then
  trains on them plus the truths, all four losses in one backward (approximate joint training);
  the RPN's loss sees 256 sampled anchors per image, half objects at most.
- ``MaskRcnn``: Faster R-CNN's step plus each foreground region's mask target (``masks.mask_targets``: the
  object's instance mask resampled into the region), the fifth loss; at inference the mask branch runs
  once more on the kept detections and their class masks are pasted into the image (``refine``).

Labels: the data's classes are 0..K-1; the two-stage heads score background as class 0, so class k
is output k + 1 there, and detections are labelled back to 0..K-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.detection.boxes import decode
from cnngraph.detection.losses import ClassBoxLoss, FasterRcnnLoss, MaskRcnnLoss, RpnLoss
from cnngraph.detection.masks import mask_targets, paste_masks
from cnngraph.detection.predict import (SSD_OUTPUTS, YOLO_OUTPUTS, Postprocess, class_count, clip_to_image, detect,
                                        suppress)
from cnngraph.detection.proposals import propose
from cnngraph.detection.regions import jittered, sample, sampled_labels, sliding_windows
from cnngraph.detection.targets import RCNN_VARIANCES, rcnn_targets, rpn_targets
from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph
from cnngraph.train.detection_losses import MultiBoxLoss, YoloLoss



@dataclass
class RegionSettings:
    """How many regions the two-stage recipes use: the papers' recipe, scaled to small images and changed where
    measured on digit-detection (models/rcnn_small.py, tests/test_rcnn_small_anchors.py)."""

    # Fast R-CNN samples 128 per mini-batch of 2 images, a quarter objects; half objects, 32 per image, gave
    # faster_rcnn_small mAP@0.5 0.193 and 0.333 after 1 and 2 epochs of 1,000 canvases, against 0.154 and 0.251:
    # telling the digits apart is what it learns slowest, and that comes from the object regions.
    rois_per_image: int = 32
    foreground: float = 0.5
    # Sliding windows, as fractions of the image side: 2 sizes, 1.5 times as tall as wide (the digits' median),
    # every 4 pixels of a 64-pixel image, 512 in all: 99.1% of the digits have one at IoU >= 0.5 (85.8% with
    # the 256 squares of 20% to 65% every 8 pixels before).
    window_sizes: tuple[float, ...] = (0.22, 0.33)
    window_ratios: tuple[float, ...] = (1.5,)
    window_stride: float = 0.0625  # of the image side
    jitter_copies: int = 8
    jitter_spread: float = 0.1
    rpn_anchors_per_image: int = 256
    rpn_foreground: float = 0.5
    train_proposals: int = 300  # kept after the RPN's NMS while training ...
    test_proposals: int = 100  # ... and at test time
    pre_nms: int = 1000


class Recipe:
    """The per-family parts of a detection run; subclasses set ``outputs`` (the outputs that identify them)."""

    outputs: frozenset[str] = frozenset()
    name = "detector"
    background = False  # whether the class output scores the background too (as its class 0)
    uses_masks = False  # whether the truths a step gets carry instance masks: (boxes, labels, masks)

    def __init__(self, graph: Graph, settings: RegionSettings | None = None):
        self.graph, self.settings = graph, settings or RegionSettings()
        self.image_input = next(iter(graph.inputs))
        self.image_size = tuple(graph.inputs[self.image_input].shape[2:])

    @property
    def class_count(self) -> int:
        """Object classes scored (background not counted)."""
        raise NotImplementedError

    def step(self, model, images: np.ndarray, truths: list, rng: np.random.Generator) -> tuple[dict, object]:
        """(feeds, loss targets) of one training step on ``images`` with ``truths`` [(boxes, labels)]."""
        raise NotImplementedError

    def feeds(self, model, images: np.ndarray) -> dict:
        """The inputs of an inference run on ``images``."""
        return {self.image_input: images}

    def decode(self, outputs: dict, feeds: dict, post: Postprocess) -> list[tuple]:
        """Detections per image from one run's outputs (on the host) and the feeds it ran on."""
        raise NotImplementedError

    def refine(self, model, feeds: dict, found: list[tuple]) -> list[tuple]:
        """What a family adds to decoded detections with further runs (Mask R-CNN: the masks); none here."""
        return found

    def detect(self, model, images: np.ndarray, post: Postprocess = Postprocess()) -> list[tuple]:
        feeds = self.feeds(model, images)
        return self.refine(model, feeds, self.decode(model.run(feeds, to_host=True), feeds, post))


class OneStage(Recipe):
    """YOLO v1 (``boxes``, ``classes``) and SSD (``loc``, ``conf``, ``anchors``): the loss reads the truths."""

    def __init__(self, graph: Graph, settings: RegionSettings | None = None):
        super().__init__(graph, settings)
        if YOLO_OUTPUTS <= set(graph.outputs):
            self.loss = YoloLoss(self.image_size)
        else:
            self.loss = MultiBoxLoss(graph.params[graph.node("anchors").params["value"]], self.image_size)

    @property
    def class_count(self) -> int:
        return class_count(self.graph)

    def step(self, model, images, truths, rng):
        return {self.image_input: images}, truths

    def decode(self, outputs, feeds, post):
        return detect(outputs, self.image_size, post)


class Yolo(OneStage):
    outputs, name = frozenset(YOLO_OUTPUTS), "yolo"


class Ssd(OneStage):
    outputs, name = frozenset(SSD_OUTPUTS), "ssd"


class Regions(Recipe):
    """R-CNN and Fast R-CNN: images and regions in, ``cls_score`` (R, C) and ``bbox_pred`` (R, 4 C) out."""

    outputs, name = frozenset({"cls_score", "bbox_pred"}), "fast_rcnn"
    background = True

    def __init__(self, graph: Graph, settings: RegionSettings | None = None):
        super().__init__(graph, settings)
        s, side = self.settings, min(self.image_size)
        self.windows = sliding_windows(self.image_size, [f * side for f in s.window_sizes],
                                       max(1, round(s.window_stride * side)), s.window_ratios)
        self.loss = ClassBoxLoss()

    @property
    def class_count(self) -> int:
        return int(self.graph.type_of("cls_score").shape[-1]) - 1

    def step(self, model, images, truths, rng):
        candidates = [self.windows] * len(images)
        return self._sampled(images, truths, candidates, rng)

    def _sampled(self, images, truths, candidates, rng) -> tuple[dict, dict]:
        """Per image: the candidates plus jittered truths and the truths themselves, labelled, then sampled."""
        s = self.settings
        rows, labels, deltas = [], [], []
        for b, ((boxes, classes), regions) in enumerate(zip(truths, candidates)):
            extra = jittered(boxes, s.jitter_copies, s.jitter_spread, self.image_size, rng)
            regions = np.concatenate([regions, extra, np.asarray(boxes, np.float64).reshape(-1, 4)])
            label, delta = rcnn_targets(regions, boxes, np.asarray(classes) + 1, bg_iou=(0.0, 0.5),
                                        variances=RCNN_VARIANCES)
            keep = sample(label, s.rois_per_image, s.foreground, rng)
            rows.append(_rows(b, regions[keep]))
            labels.append(label[keep])
            deltas.append(delta[keep])
        return ({self.image_input: images, "rois": np.concatenate(rows)},
                {"labels": np.concatenate(labels), "deltas": np.concatenate(deltas)})

    def feeds(self, model, images):
        return {self.image_input: images, "rois": np.concatenate([_rows(b, self.windows) for b in range(len(images))])}

    def decode(self, outputs, feeds, post):
        scores = to_numpy(outputs["cls_score"]).astype(np.float64)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        rois = to_numpy(feeds["rois"]).astype(np.float64)
        deltas = to_numpy(outputs["bbox_pred"]).astype(np.float64).reshape(len(rois), -1, 4)
        boxes = clip_to_image(decode(deltas, rois[:, None, 1:], RCNN_VARIANCES), self.image_size)
        images = len(feeds[self.image_input])
        return [suppress(boxes[mine, 1:], scores[mine, 1:], post) for b in range(images)
                for mine in [rois[:, 0] == b]]


class FasterRcnn(Regions):
    """Faster R-CNN: the RPN's ``rpn_logits`` (N, 2, K) and ``rpn_deltas`` (N, K, 4) propose the regions."""

    outputs, name = frozenset({"rpn_logits", "rpn_deltas", "cls_score", "bbox_pred"}), "faster_rcnn"

    def __init__(self, graph: Graph, settings: RegionSettings | None = None):
        super().__init__(graph, settings)
        self.anchors = rpn_anchor_boxes(graph)
        self.loss = FasterRcnnLoss(RpnLoss(beta=1 / 9))  # torchvision's RPN box term

    def proposals(self, model, images: np.ndarray, keep: int) -> list[np.ndarray]:
        """Per image, the RPN's best ``keep`` regions after NMS (one run; the region head sees one dummy box)."""
        dummy = np.array([[0, 0, 0, 1, 1]], np.float32)
        out = model.run({self.image_input: images, "rois": dummy}, to_host=True)
        rows = propose(out["rpn_logits"], out["rpn_deltas"], self.anchors, self.image_size,
                       pre_nms=self.settings.pre_nms, post_nms=keep)
        return [rows[rows[:, 0] == b, 1:] for b in range(len(images))]

    def step(self, model, images, truths, rng):
        s = self.settings
        feeds, rcnn = self._sampled(images, truths, self.proposals(model, images, s.train_proposals), rng)
        rpn = [rpn_targets(self.anchors, boxes) for boxes, _ in truths]
        labels = np.stack([sampled_labels(label, s.rpn_anchors_per_image, s.rpn_foreground, rng) for label, _ in rpn])
        return feeds, {"rpn": {"labels": labels, "deltas": np.stack([d for _, d in rpn])}, "rcnn": rcnn}

    def feeds(self, model, images):
        found = self.proposals(model, images, self.settings.test_proposals)
        return {self.image_input: images, "rois": np.concatenate([_rows(b, p) for b, p in enumerate(found)])}


class MaskRcnn(FasterRcnn):
    """Mask R-CNN: Faster R-CNN's outputs and ``mask_logits`` (R, C, M, M), trained with the mask loss too."""

    outputs, name = FasterRcnn.outputs | {"mask_logits"}, "mask_rcnn"
    uses_masks = True

    def __init__(self, graph: Graph, settings: RegionSettings | None = None):
        super().__init__(graph, settings)
        self.loss = MaskRcnnLoss(RpnLoss(beta=1 / 9))
        self.mask_size = int(graph.type_of("mask_logits").shape[-1])

    def step(self, model, images, truths, rng):
        feeds, targets = super().step(model, images, [(boxes, labels) for boxes, labels, _ in truths], rng)
        rois = feeds["rois"]
        found = [mask_targets(rois[rois[:, 0] == b, 1:].astype(np.float64), boxes, np.asarray(labels) + 1, masks,
                              self.mask_size) for b, (boxes, labels, masks) in enumerate(truths)]
        targets["mask"] = {"masks": np.concatenate([m for m, _ in found]), "classes": np.concatenate([c for _, c in found])}
        return feeds, targets

    def refine(self, model, feeds, found):
        """Each detection's class mask: one more run with the detections as the regions, pasted into the image."""
        images = feeds[self.image_input]
        rows = np.concatenate([_rows(b, boxes) for b, (boxes, _, _) in enumerate(found)])
        if not len(rows):
            return [(*d, np.zeros((0, *self.image_size), bool)) for d in found]
        logits = model.run({self.image_input: images, "rois": rows}, to_host=True)["mask_logits"]
        labels = np.concatenate([labels for _, _, labels in found])
        masks = paste_masks(logits, labels + 1, rows[:, 1:].astype(np.float64), self.image_size)
        return [(*d, m) for d, m in zip(found, np.split(masks, np.cumsum([len(d[0]) for d in found])[:-1]))]


RECIPES: list[type[Recipe]] = [Yolo, Ssd, Regions, FasterRcnn, MaskRcnn]


def find_recipe(graph: Graph, settings: RegionSettings | None = None) -> Recipe | None:
    """The recipe naming the most of the graph's outputs, or None for a graph that is no detector we train."""
    names = set(graph.outputs)
    fitting = [r for r in RECIPES if r.outputs <= names]
    return max(fitting, key=lambda r: len(r.outputs))(graph, settings) if fitting else None


def recipe_for(graph: Graph, settings: RegionSettings | None = None) -> Recipe:
    """``find_recipe``, or a CnnGraphError saying which outputs each detector family has."""
    recipe = find_recipe(graph, settings)
    if recipe is None:
        known = "; ".join(f"{r.name}: {', '.join(sorted(r.outputs))}" for r in RECIPES)
        raise CnnGraphError(f"not a detector: {graph.name} has outputs {sorted(graph.outputs)}; detectors have "
                            f"outputs {known} (cnngraph models lists them)")
    return recipe


def rpn_anchor_boxes(graph: Graph) -> np.ndarray:
    """The (K, 4) anchors in ``rpn_logits``' order: the graph's constant ``anchors`` output when it carries one
    (as the CPU-sized zoo entries do), else the Faster R-CNN builder's default sizes and ratios."""
    if "anchors" in graph.outputs:
        return to_numpy(graph.params[graph.node("anchors").params["value"]]).astype(np.float64)
    from cnngraph.models.faster_rcnn import anchors

    grid, scored = anchors(graph), graph.type_of("rpn_logits").shape[2]
    if len(grid) != scored:
        raise CnnGraphError(f"{graph.name}: its RPN scores {scored} anchors, the default 3 sizes x 3 ratios make "
                            f"{len(grid)}; a model built with other anchors must carry them as a constant "
                            f"'anchors' output (models/rcnn_small.py: with_anchors)")
    return grid


def _rows(image: int, boxes: np.ndarray) -> np.ndarray:
    """RoI rows (image index, x1, y1, x2, y2) as the models take them."""
    return np.concatenate([np.full((len(boxes), 1), image), boxes], axis=1).astype(np.float32)
