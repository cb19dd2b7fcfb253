"""Training a detector on a detection set, scored in VOC mAP@0.5 after each epoch, with checkpoints and exact resume.

What differs per detector family (YOLO, SSD, R-CNN and Fast R-CNN, Faster R-CNN) is its recipe
(``detection_recipes.py``, chosen from the graph's outputs): the inputs and targets of a step, the loss,
and how outputs become detections. Optimizer and schedule come from ``TrainConfig`` as for classifiers.
Images go in as they are (floats in [0, 1]). The run folder gets ``metrics.csv`` (per epoch: loss and,
for losses with several terms, each term's mean, mAP@0.5, COCO mAP, seconds), ``checkpoint.safetensors``
after every epoch (``train/checkpoint.py``: parameters, optimizer state, the run's generator, the dropout
draws, the history) and, at the end, ``model.cng``. ``DetectionTrainer.resume`` continues a run from its
last epoch exactly as if it had not stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import cnngraph
from cnngraph import io
from cnngraph.detection.evaluate import MeanAP, coco_map, coco_mask_map, voc_map
from cnngraph.detection.predict import Postprocess
from cnngraph.errors import TrainingError
from cnngraph.ir import Graph
from cnngraph.model_info import MAX_TEXT, ModelInfo, task_of
from cnngraph.train import checkpoint, resume_state
from cnngraph.train.config import TrainConfig
from cnngraph.train.data.detection import DetectionSet, DetectionSplits, load_detection
from cnngraph.train.data.detection_augment import BoxAugment
from cnngraph.train.detection_defaults import default_augment
from cnngraph.train.detection_recipes import Recipe, RegionSettings, recipe_for
from cnngraph.train.loop import CHECKPOINT, saved_config

FIELDS = ("epoch", "step", "lr", "train_loss", "test_map50", "test_coco_map", "seconds")
MODEL = "model.cng"
KIND = "detection"  # the checkpoint state's "kind": a classifier's Trainer refuses it, and this one the others


def predict(model, recipe: Recipe, data: DetectionSet, batch: int = 32, post: Postprocess = Postprocess()) -> list:
    """Detections for every image of ``data`` with inference semantics."""
    found = []
    for start in range(0, len(data), batch):
        found += recipe.detect(model, data.images[start:start + batch], post)
    return found


def evaluate(model, recipe: Recipe, data: DetectionSet, batch: int = 32) -> tuple[MeanAP, ...]:
    """(VOC mAP@0.5, COCO mAP@[.5:.95]) of the model's boxes on ``data``, and COCO mask mAP where the
    recipe predicts instance masks."""
    detections = predict(model, recipe, data, batch)
    boxes = [d[:3] for d in detections]
    truths = [(b, y, data.ignored(i)) for i, (b, y) in enumerate(zip(data.boxes, data.labels))]
    found = (voc_map(boxes, truths, len(data.classes)), coco_map(boxes, truths, len(data.classes)))
    if not recipe.uses_masks:
        return found
    masks = [(d[3], d[1], d[2]) for d in detections]
    mask_truths = [(m, y, data.ignored(i)) for i, (m, y) in enumerate(zip(data.masks, data.labels))]
    return (*found, coco_mask_map(masks, mask_truths, len(data.classes)))


def is_detection_run(rundir: str | Path) -> bool:
    """Whether the run folder's checkpoint is a detection run's (read once more by ``resume``)."""
    return checkpoint.load(Path(rundir) / CHECKPOINT).state.get("kind") == KIND


class DetectionTrainer:
    """One run: a compiled detector, its recipe, data, optimizer and schedule, and a run folder (None: no files)."""

    def __init__(self, graph: Graph, splits: DetectionSplits, config: TrainConfig, rundir: str | Path | None = None,
                 augment: BoxAugment | None = None, report: Callable[[dict], None] | None = None,
                 settings: RegionSettings | None = None):
        self.graph, self.splits, self.config = graph, splits, config
        self.recipe = recipe_for(graph, settings)
        if self.recipe.uses_masks and splits.train.masks is None:
            raise TrainingError(f"{graph.name} trains on instance masks and {splits.source} has none; train it on "
                                f"digit-detection, or a box-only detector (faster_rcnn_small) on this data")
        if len(splits.train.classes) > self.recipe.class_count:
            raise TrainingError(f"{graph.name} scores {self.recipe.class_count} classes, the data has "
                                f"{len(splits.train.classes)} ({splits.source}); build it with --num-classes "
                                f"{len(splits.train.classes) + self.recipe.background}")
        self.rundir = None if rundir is None else Path(rundir)
        self.loss = self.recipe.loss
        self.model = cnngraph.compile(graph, backend=config.backend, dtype=config.dtype, train=True, seed=config.seed)
        self.optimizer = config.make_optimizer()
        self.base_lr = self.optimizer.lr
        self.steps_per_epoch = math.ceil(len(splits.train) / config.batch)
        self.schedule = config.make_schedule(self.steps_per_epoch)
        self.augment = augment or default_augment(graph.name, bool(config.flip))
        self.rng = np.random.default_rng(config.seed)
        self.report = report or (lambda row: None)
        self.input_name = self.recipe.image_input
        self.history: list[dict] = []
        self.epoch = 0  # completed epochs
        self.step = 0
        self.elapsed = 0.0  # seconds of earlier sessions of this run (resume)

    def batches(self):
        """One epoch of (images, targets), shuffled and augmented from the run's generator."""
        data, b = self.splits.train, self.config.batch
        order = self.rng.permutation(len(data))
        for start in range(0, len(order), b):
            x, targets = [], []
            for i in order[start:start + b]:
                masks = data.masks[i] if self.recipe.uses_masks else None
                image, *truth = self.augment(data.images[i], data.boxes[i], data.labels[i], self.rng, masks)
                x.append(image)
                targets.append(tuple(truth))
            yield np.stack(x), targets

    def train_step(self, x: np.ndarray, targets) -> float:
        """One update on images ``x`` with their (boxes, labels[, masks]); the recipe turns them into feeds and targets."""
        self.optimizer.lr = self.base_lr * self.schedule(self.step)
        feeds, goal = self.recipe.step(self.model, x, targets, self.rng)
        value = self.model.train_step(feeds, goal, self.loss, self.optimizer, max_grad_norm=self.config.clip_grad_norm)
        if not math.isfinite(value):
            raise TrainingError(f"{self.graph.name}: the loss became {value} at step {self.step}; lower --lr "
                                f"or set --clip-grad-norm")
        self.step += 1
        return value

    def fit(self, time_budget: float | None = None) -> list[dict]:
        """Train up to ``config.epochs`` (or until ``time_budget`` seconds have passed, at an epoch's end)."""
        started = time.perf_counter() - self.elapsed
        while self.epoch < self.config.epochs:
            losses, terms = [], []
            for x, targets in self.batches():
                losses.append(self.train_step(x, targets))
                terms.append(dict(getattr(self.loss, "last", {})))
            voc, coco, *mask = evaluate(self.model, self.recipe, self.splits.test,
                                        self.config.eval_batch or self.config.batch)
            self.epoch += 1
            row = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.lr,
                   "train_loss": float(np.mean(losses)),
                   **{k: float(np.mean([t[k] for t in terms])) for k in terms[0]},
                   **({"test_mask_map": mask[0].mean} if mask else {}),
                   "test_map50": voc.mean, "test_coco_map": coco.mean, "seconds": time.perf_counter() - started,
                   "per_class": [float(v) for v in voc.per_class]}
            self.history.append(row)
            self.report(row)
            self.elapsed = row["seconds"]
            self._write_metrics()
            self.save()
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

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> None:
        """The checkpoint after an epoch: everything ``resume`` needs to continue bit for bit."""
        if self.rundir is None:
            return
        state = {"kind": KIND, "recipe": self.recipe.name, "config": self.config.to_json(), "epoch": self.epoch,
                 "step": self.step, "history": self.history, "rng": self.rng.bit_generator.state,
                 "dropout": self.model.random.state(), "optimizer": self.optimizer.hyper(),
                 "augment": dataclasses.asdict(self.augment), "regions": dataclasses.asdict(self.recipe.settings)}
        if self.model.scaler is not None:
            state["scaler"] = self.model.scaler.state()
        params = {k: self.model.backend.to_host(self.model.params.get(k, v)) for k, v in self.graph.params.items()}
        checkpoint.save(self.rundir / CHECKPOINT, self.graph,
                        {"param": params, "optim": self.optimizer.state_dict(), "loader": {}}, state)

    @classmethod
    def resume(cls, rundir: str | Path, epochs: int | None = None, splits: DetectionSplits | None = None,
               report: Callable[[dict], None] | None = None, settings: RegionSettings | None = None,
               augment: BoxAugment | None = None) -> DetectionTrainer:
        """The run saved in ``rundir``, ready to ``fit``; ``epochs`` may extend it. The data is generated or read
        again from the saved settings, unless the run was given its ``splits`` in Python: then pass the same. The
        augmentation and region settings are the saved ones (a newer release's defaults may differ); ``augment``
        and ``settings`` replace them. Checkpoints written before they were saved resume with today's defaults."""
        path = Path(rundir) / CHECKPOINT
        ckpt = checkpoint.load(path)
        state = ckpt.state
        if state.get("kind") != KIND:
            raise TrainingError(f"{path}: not a detection run's checkpoint (a classifier's: resume it with "
                                f"cnngraph train --resume, which tells them apart)")
        config = saved_config(state, path)
        if epochs is not None:
            config.epochs = epochs
        if splits is None:
            shape = next(iter(ckpt.graph.inputs.values())).shape[1:]
            splits = load_detection(config.data, shape, seed=config.seed)
        top = resume_state.Fields(state, str(path))
        if augment is None and "augment" in state:
            augment = resume_state.settings(top.object("augment"), BoxAugment)
        if settings is None and "regions" in state:
            settings = resume_state.settings(top.object("regions"), RegionSettings)
        trainer = cls(ckpt.graph, splits, config, rundir, augment, report, settings)
        _check_state(state, str(path), trainer)
        trainable = {k: trainer.model.params[k] for k in trainer.model.trainable}
        resume_state.check_optimizer(ckpt.arrays["optim"], str(path), list(trainer.optimizer.state), trainable)
        trainer.optimizer.load_state_dict(ckpt.arrays["optim"], to_device=trainer.model.backend.copy)
        trainer.rng.bit_generator.state = state["rng"]
        trainer.model.random.load_state(state["dropout"])
        if trainer.model.scaler is not None:
            trainer.model.scaler.load_state(state["scaler"])
        trainer.epoch, trainer.step, trainer.history = state["epoch"], state["step"], state["history"]
        trainer.elapsed = trainer.history[-1]["seconds"] if trainer.history else 0.0
        return trainer

    def _write_metrics(self) -> None:
        if self.rundir is None:
            return
        from cnngraph.io import atomic_write_bytes

        self.rundir.mkdir(parents=True, exist_ok=True)
        buf = _io.StringIO()
        terms = [k for k in self.history[0] if k not in FIELDS and k != "per_class"]
        fields = [*FIELDS[:4], *terms, *FIELDS[4:]]
        writer = csv.DictWriter(buf, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in fields} for row in self.history)
        atomic_write_bytes(self.rundir / "metrics.csv", buf.getvalue().encode())


def _check_state(state: dict, where: str, trainer: DetectionTrainer) -> None:
    """The run state's fields, checked before any is used; the recipe must be the one the graph implies."""
    top = resume_state.Fields(state, where)
    if top.get("recipe") != trainer.recipe.name:
        raise top.fail("recipe", f"'{trainer.recipe.name}' (what the saved graph's outputs train with)",
                       state["recipe"])
    top.count("epoch", trainer.config.epochs)
    top.count("step")
    history = top.get("history")
    if not isinstance(history, list) or len(history) != state["epoch"] or \
            not all(isinstance(row, dict) and isinstance(row.get("seconds"), (int, float)) for row in history):
        raise top.fail("history", f"a list of {state['epoch']} per-epoch objects", history)
    resume_state.check_generator(top, "rng")
    resume_state.check_randomness(top, trainer.model.scaler is not None)
