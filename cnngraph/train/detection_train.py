"""Training a one-stage detector (YOLO v1, SSD) on a detection set, scored in VOC mAP@0.5 after each epoch.

The model's outputs say which loss it trains with (``cnngraph.detection.predict.detector_kind``): YOLO's
``boxes``/``classes`` take ``YoloLoss``, SSD's ``loc``/``conf``/``anchors`` take ``MultiBoxLoss`` with the
default boxes the graph carries. Optimizer and schedule come from ``TrainConfig`` as for classifiers.
Images go in as they are (floats in [0, 1]); the small backbones normalise with BatchNorm. The run folder
gets ``metrics.csv`` (per epoch: loss, mAP@0.5, COCO mAP, seconds) and, at the end, ``model.cng``.
Unlike classification runs there is no checkpoint to resume from.
"""

from __future__ import annotations

import csv
import io as _io
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import cnngraph
from cnngraph import io
from cnngraph.detection.evaluate import MeanAP, coco_map, voc_map
from cnngraph.detection.predict import Postprocess, class_count, detect, detector_kind
from cnngraph.errors import TrainingError
from cnngraph.ir import Graph
from cnngraph.model_info import MAX_TEXT, ModelInfo, task_of
from cnngraph.train.config import TrainConfig
from cnngraph.train.data.detection import DetectionSet, DetectionSplits
from cnngraph.train.data.detection_augment import BoxAugment
from cnngraph.train.detection_losses import MultiBoxLoss, YoloLoss

FIELDS = ("epoch", "step", "lr", "train_loss", "test_map50", "test_coco_map", "seconds")
MODEL = "model.cng"


def detection_loss(graph: Graph):
    """The loss a detector trains with, from its outputs."""
    image_size = tuple(next(iter(graph.inputs.values())).shape[2:])
    if detector_kind(graph.outputs) == "yolo":
        return YoloLoss(image_size)
    return MultiBoxLoss(graph.params[graph.node("anchors").params["value"]], image_size)


def predict(model, graph: Graph, data: DetectionSet, batch: int = 32, post: Postprocess = Postprocess()) -> list:
    """Detections for every image of ``data`` with inference semantics."""
    image_size = tuple(data.images.shape[2:])
    found = []
    name = next(iter(graph.inputs))
    for start in range(0, len(data), batch):
        found += detect(model.run({name: data.images[start:start + batch]}, to_host=True), image_size, post)
    return found


def evaluate(model, graph: Graph, data: DetectionSet, batch: int = 32) -> tuple[MeanAP, MeanAP]:
    """(VOC mAP@0.5, COCO mAP@[.5:.95]) of the model on ``data``."""
    detections = predict(model, graph, data, batch)
    truths = [(b, y, data.ignored(i)) for i, (b, y) in enumerate(zip(data.boxes, data.labels))]
    return voc_map(detections, truths, len(data.classes)), coco_map(detections, truths, len(data.classes))


class DetectionTrainer:
    """One run: a compiled detector, its data, loss, optimizer and schedule, and a run folder."""

    def __init__(self, graph: Graph, splits: DetectionSplits, config: TrainConfig, rundir: str | Path | None = None,
                 augment: BoxAugment | None = None, report: Callable[[dict], None] | None = None):
        self.graph, self.splits, self.config = graph, splits, config
        if len(splits.train.classes) > class_count(graph):
            raise TrainingError(f"{graph.name} scores {class_count(graph)} classes, the data has "
                                f"{len(splits.train.classes)} ({splits.source}); build it with --num-classes "
                                f"{len(splits.train.classes)}")
        self.rundir = None if rundir is None else Path(rundir)
        self.loss = detection_loss(graph)
        self.model = cnngraph.compile(graph, backend=config.backend, dtype=config.dtype, train=True, seed=config.seed)
        self.optimizer = config.make_optimizer()
        self.base_lr = self.optimizer.lr
        self.steps_per_epoch = math.ceil(len(splits.train) / config.batch)
        self.schedule = config.make_schedule(self.steps_per_epoch)
        self.augment = augment or BoxAugment()
        self.rng = np.random.default_rng(config.seed)
        self.report = report or (lambda row: None)
        self.input_name = next(iter(graph.inputs))
        self.history: list[dict] = []
        self.step = 0
        self.started = time.perf_counter()

    def batches(self):
        """One epoch of (images, targets), shuffled and augmented from the run's generator."""
        data, b = self.splits.train, self.config.batch
        order = self.rng.permutation(len(data))
        for start in range(0, len(order), b):
            x, targets = [], []
            for i in order[start:start + b]:
                image, boxes, labels = self.augment(data.images[i], data.boxes[i], data.labels[i], self.rng)
                x.append(image)
                targets.append((boxes, labels))
            yield np.stack(x), targets

    def train_step(self, x: np.ndarray, targets) -> float:
        self.optimizer.lr = self.base_lr * self.schedule(self.step)
        value = self.model.train_step({self.input_name: x}, targets, self.loss, self.optimizer,
                                      max_grad_norm=self.config.clip_grad_norm)
        if not math.isfinite(value):
            raise TrainingError(f"{self.graph.name}: the loss became {value} at step {self.step}; lower --lr "
                                f"or set --clip-grad-norm")
        self.step += 1
        return value

    def fit(self, time_budget: float | None = None) -> list[dict]:
        """Train ``config.epochs`` epochs (or until ``time_budget`` seconds have passed, at an epoch's end)."""
        for epoch in range(1, self.config.epochs + 1):
            losses = [self.train_step(x, targets) for x, targets in self.batches()]
            voc, coco = evaluate(self.model, self.graph, self.splits.test, self.config.eval_batch or self.config.batch)
            row = {"epoch": epoch, "step": self.step, "lr": self.optimizer.lr, "train_loss": float(np.mean(losses)),
                   "test_map50": voc.mean, "test_coco_map": coco.mean, "seconds": time.perf_counter() - self.started,
                   "per_class": voc.per_class}
            self.history.append(row)
            self.report(row)
            self._write_metrics()
            if time_budget is not None and row["seconds"] >= time_budget:
                break
        if self.rundir is not None:
            io.save(self.trained_graph(), self.rundir / MODEL)
        return self.history

    def trained_graph(self) -> Graph:
        """The trained parameters, with the info `cnngraph run` and `eval` read: trained weights, the classes,
        and the input as training saw it (resized to the input, scaled to [0, 1], not normalised)."""
        graph = self.model.to_graph()
        channels, *size = next(iter(graph.inputs.values())).shape[1:]
        graph.info = ModelInfo(task=task_of(graph), classes=[c[:MAX_TEXT] for c in self.splits.train.classes],
                               channels=channels, size=size, resize="stretch", weights="trained",
                               source=str(self.config.data)[:MAX_TEXT])
        return graph

    def _write_metrics(self) -> None:
        if self.rundir is None:
            return
        from cnngraph.io import atomic_write_bytes

        self.rundir.mkdir(parents=True, exist_ok=True)
        buf = _io.StringIO()
        writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in FIELDS} for row in self.history)
        atomic_write_bytes(self.rundir / "metrics.csv", buf.getvalue().encode())
