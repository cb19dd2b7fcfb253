"""The training loop: epochs of ``train_step``, evaluation, records, checkpoints, exact resume.

A run lives in a folder: ``checkpoint.safetensors`` (rewritten atomically after every epoch and on
Ctrl-C), ``metrics.csv`` and ``curves.png`` (rewritten from the history each epoch) and, when the
run ends, ``model.cng`` with the trained parameters.

Exact resume: the checkpoint holds every array the model owns (BatchNorm running statistics
too), the optimizer state, the data generator's state with this epoch's order and position, the
dropout generator's state, the loss scaler's (float16) and the epoch's running sums, so
``Trainer.resume`` continues with the same batches, masks and updates as if never stopped, even
from the middle of an epoch.

Any backend: the model is compiled for ``config.backend`` and ``config.dtype``; batches reach the
device through ``Prefetch`` (a thread that stages the next batches while a step runs); the loss,
optimizer, clipping and accuracy compute on the device. What comes back to the host: each step's
loss value (with the loss's label check), the float16 overflow check, the clipped norm, the
epoch's count of correct predictions, and the arrays of a checkpoint.

Ctrl-C is deferred to the end of the current step (a step half-applied could not be resumed);
the loop then saves a checkpoint and re-raises KeyboardInterrupt. A second Ctrl-C stops at once,
without saving. A non-finite loss stops the run before that step's update, naming the step.

Data parallelism: given a ``communicator`` (``cnngraph.train.dist``), the run is one rank of
several, each training on its shard of every batch; ``self.parallel`` holds every place where
that differs from one process (``cnngraph.train.dist.parallel``), and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import cnngraph
from cnngraph import io
from cnngraph.errors import TrainingError
from cnngraph.ir import Graph
from cnngraph.model_info import MAX_TEXT, ModelInfo, task_of
from cnngraph.train import checkpoint, metrics, report, resume_state
from cnngraph.train.config import TrainConfig
from cnngraph.train.data import Splits, load_dataset
from cnngraph.train.data.loader import Loader
from cnngraph.train.data.prefetch import Prefetch
from cnngraph.train.data.transforms import Normalize
from cnngraph.train.dist.parallel import DataParallel, Single
from cnngraph.train.dist.sharding import check_batches
from cnngraph.train.transfer import freeze_upto

CHECKPOINT, METRICS, CURVES, MODEL = "checkpoint.safetensors", "metrics.csv", "curves.png", "model.cng"


class _NonFinite(Exception):
    def __init__(self, value: float):
        self.value = value


class _WatchedLoss:
    """The loss as ``train_step`` calls it: refuses a non-finite value (before backward and the
    update) and counts a classifier's correct predictions on the device, so training accuracy costs one
    argmax (``correct`` None: the outputs are embeddings, not class scores)."""

    def __init__(self, loss, correct: metrics.Count | None):
        self.loss, self.correct = loss, correct

    def __call__(self, outputs, targets):
        value, grad = self.loss(outputs, targets)
        if not math.isfinite(value):
            raise _NonFinite(value)
        if outputs.ndim == 2 and self.correct is not None:
            self.correct.add(metrics.correct(outputs, targets))
        return value, grad


def _fresh_sums() -> dict:
    return {"loss": 0.0, "correct": 0, "images": 0, "seconds": 0.0}


@contextlib.contextmanager
def _deferred_interrupt():
    """While active, the first Ctrl-C only sets ``hit``; the loop acts on it between steps."""
    flag = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["hit"]:
            raise KeyboardInterrupt
        flag["hit"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """One run: a compiled training model, its data, optimizer and schedule, and a run folder.

    Takes the graph to train (its parameters are the starting point; the graph itself is not changed),
    the ``Splits`` to train and evaluate on (``load_dataset``), the run's ``TrainConfig``, the run folder,
    optionally a loss (``config.make_loss()`` otherwise: cross-entropy) and a rich ``Console``. It shows a
    progress bar and one line per epoch, as ``cnngraph train`` does, on ``console`` or the terminal;
    ``quiet=True`` shows nothing. ``fit()`` trains and returns the history; ``model.to_graph()`` or the run
    folder's ``model.cng`` has the trained parameters.
    """

    def __init__(self, graph: Graph, splits: Splits, config: TrainConfig, rundir: str | Path, loss=None,
                 console: Console | None = None, quiet: bool = False, communicator=None):
        self.graph, self.splits, self.config = graph, splits, config
        self.parallel = Single() if communicator is None else DataParallel(communicator)
        self.rundir = Path(rundir)
        self.console = None if quiet else console or Console()
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise TrainingError(f"{graph.name}: training needs one input and one output, "
                                f"it has inputs {list(graph.inputs)} and outputs {graph.outputs}")
        self._check_classes()
        self.model = cnngraph.compile(graph, backend=config.backend, dtype=config.dtype, train=True, seed=config.seed)
        self.frozen = freeze_upto(self.model, graph, config.freeze_upto) if config.freeze_upto else []
        self.parallel.attach(self.model, config.sync_bn)
        self.optimizer = config.make_optimizer()
        self.base_lr = self.optimizer.lr
        self.loss = loss if loss is not None else config.make_loss()
        self.normalize = Normalize.of(splits.train.x)
        shard = self.parallel.shard()
        self.train_batches = config.make_loader(splits.train, True, self.normalize, shard)
        self.test_batches = config.make_loader(splits.test, False, self.normalize, shard)
        for name, loader in (("training set", self.train_batches), ("test set", self.test_batches)):
            check_batches(name, len(loader.data), loader.batch_size, self.parallel.size)
        self.schedule = config.make_schedule(len(self.train_batches))
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimizer steps
        self.sums = _fresh_sums()  # of the epoch in progress
        self._correct = metrics.Count()  # correct predictions counted on the device, not yet in sums
        self.history: list[dict] = []
        self.step_losses: list[float] = []  # this process's steps, for inspection and tests

    def _check_classes(self) -> None:
        if self.config.embeds:  # trains an embedding of any width, not a score per class
            return
        out = self.graph.type_of(self.graph.outputs[0])
        classes = max(int(self.splits.train.y.max()), int(self.splits.test.y.max())) + 1
        if out.rank != 2 or out.shape[1] < classes:
            raise TrainingError(f"{self.graph.name} outputs {out}, but {self.splits.source} has {classes} classes: "
                                f"pass --num-classes {classes}")

    @property
    def input_name(self) -> str:
        return next(iter(self.graph.inputs))

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Train up to ``config.epochs``; returns the history (one dict per epoch)."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        with _deferred_interrupt() as interrupt, self._progress() as progress:
            while self.epoch < self.config.epochs:
                self._train_epoch(interrupt, progress)
                self._end_epoch()
                if self.parallel.agree(interrupt["hit"]):
                    self._stop()
        if self.parallel.writes:
            io.save(self._trained_graph(), self.rundir / MODEL)
        return self.history

    def _progress(self) -> Progress:
        columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:,.0f} img/s"),
                   TimeElapsedColumn())
        return Progress(*columns, console=self.console, disable=self.console is None, transient=True)

    def _feed(self, loader: Loader) -> Prefetch:
        return Prefetch(loader, self.model.backend, self.model.dtype, self.config.prefetch)

    def _train_epoch(self, interrupt: dict, progress: Progress) -> None:
        task = progress.add_task("train", total=len(self.train_batches), completed=self.train_batches.position,
                                 epoch=f"{self.epoch + 1}/{self.config.epochs}", loss=math.nan, rate=0.0)
        watched = _WatchedLoss(self.parallel.loss(self.loss), None if self.config.embeds else self._correct)
        buffers = self._buffers()
        with self._feed(self.train_batches) as batches:
            for x, y in batches:
                self.optimizer.lr = self.base_lr * self.schedule(self.step)
                start = time.perf_counter()
                self.parallel.share_buffers(self.model.params, buffers)
                before = {k: self.model.params[k].copy() for k in buffers}  # the forward updates BN statistics
                try:
                    value = self.model.train_step(x, y, watched, self.optimizer, max_grad_norm=self.config.clip_grad_norm)
                except _NonFinite as e:
                    for k, v in before.items():
                        self.model.params[k][...] = v
                    raise self._diverged(e.value, batches.position) from None
                self.step += 1
                self.step_losses.append(value)
                s = self.sums
                s["seconds"] += time.perf_counter() - start
                images = self.parallel.images(len(y))
                s["loss"] += value * images
                s["images"] += images
                progress.update(task, advance=1, loss=s["loss"] / s["images"], rate=s["images"] / s["seconds"])
                if self.parallel.agree(interrupt["hit"]):
                    interrupt["hit"] = True
                    break
        progress.remove_task(task)
        if interrupt["hit"]:  # after the feed closed: the loader is back at the last batch trained on
            self._stop()

    def _diverged(self, value: float, position: int) -> TrainingError:
        checkpoint = self.rundir / CHECKPOINT
        last = f"the last checkpoint is {checkpoint}" if checkpoint.exists() else "no checkpoint was saved yet"
        return TrainingError(
            f"loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}, batch {position} "
            f"of {len(self.train_batches)}); stopped before updating the parameters or BatchNorm statistics. Try a "
            f"lower --lr; {last}")

    def _buffers(self) -> list[str]:
        """BatchNorm running statistics and frozen weights: what the model holds but the optimizer does not move."""
        trainable = set(self.model.trainable)
        return [k for k in self.model.params if k not in trainable]

    def _settled_sums(self) -> dict:
        """The epoch's sums, with the correct predictions counted on the device so far brought over (one wait),
        from every rank."""
        self.sums["correct"] += int(self.parallel.sum(self._correct.take())[0])
        return self.sums

    def _stop(self) -> NoReturn:
        """After a Ctrl-C: save where the run is, say how to continue, stop."""
        self.save()
        if self.console is not None:
            self.console.print(f"stopped after step {self.step}; checkpoint saved: continue with "
                               f"cnngraph train --resume {self.rundir}")
        raise KeyboardInterrupt

    def _end_epoch(self) -> None:
        test_loss, test_acc = self.evaluate()
        s = self._settled_sums()
        self.epoch += 1
        row = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.lr,
               "train_loss": s["loss"] / s["images"], "train_acc": self._accuracy(s["correct"], s["images"]),
               "test_loss": test_loss, "test_acc": test_acc,
               "images_per_s": s["images"] / s["seconds"], "seconds": s["seconds"]}
        self.history.append(row)
        self.sums = _fresh_sums()
        self.save()
        if not self.parallel.writes:
            return
        report.write_csv(self.rundir / METRICS, self.history)
        report.write_plot(self.rundir / CURVES, self.history, f"{self.graph.name} on {self.config.data}")
        if self.console is not None:
            self.console.print(  # within 80 columns
                f"epoch {self.epoch}/{self.config.epochs}  loss {row['train_loss']:.4f}{_shown(row['train_acc'])}  "
                f"test loss {test_loss:.4f}{_shown(test_acc)}  {row['images_per_s']:,.0f} img/s")

    def evaluate(self) -> tuple[float, float]:
        """Mean loss and accuracy on the held-out split, with inference semantics; the loss computes in
        float32 under float16, as in training."""
        total, correct = 0.0, metrics.Count()
        self.parallel.share_buffers(self.model.params, self._buffers())
        with self._feed(self.test_batches) as batches:
            for x, y in batches:
                out = self.model.precision.wide(self.model.run({self.input_name: x})[self.graph.outputs[0]])
                total += self.loss(out, y)[0] * len(y)
                if not self.config.embeds:
                    correct.add(metrics.correct(out, y))
        total, right = self.parallel.sum(total, correct.take())
        # identity-balanced test batches are all full, and may repeat or leave out images
        n = len(self.test_batches) * self.test_batches.batch_size if self.config.embeds else len(self.splits.test)
        return total / n, self._accuracy(right, n)

    def _accuracy(self, correct: int, images: int) -> float:
        """The share of correct predictions; NaN for an embedding, which predicts no class."""
        return math.nan if self.config.embeds else correct / images

    # -- checkpoints --------------------------------------------------------------------------
    def _params(self) -> dict[str, np.ndarray]:
        """The graph's parameters as trained now, on the host (a key the compiled model dropped keeps its value)."""
        return {k: self.model.backend.to_host(self.model.params.get(k, v)) for k, v in self.graph.params.items()}

    def _trained_graph(self) -> Graph:
        """The graph with the trained parameters and the info ``cnngraph run`` needs to use it: the class names,
        and how the training images were prepared (resized to the input, scaled to [0, 1], normalised)."""
        graph = self.graph.copy()
        graph.params = self._params()
        channels, *size = next(iter(graph.inputs.values())).shape[1:]
        graph.info = ModelInfo(task=task_of(graph), classes=self._class_names(graph),
                               channels=channels, size=size, mean=self.normalize.mean, std=self.normalize.std,
                               resize="stretch", grayscale=channels > 1 and _gray(self.splits.train.x),
                               weights="trained", source=str(self.config.data)[:MAX_TEXT])
        return graph

    def _class_names(self, graph: Graph) -> list[str] | None:
        """The dataset's class names, one per output of a classifier (outputs past the dataset's classes are
        named by their index)."""
        out = graph.type_of(graph.outputs[0])
        if out.rank != 2 or self.config.embeds:
            return None
        named = max(self.splits.train.classes, self.splits.test.classes, key=len)
        return [name[:MAX_TEXT] for name in named] + [str(k) for k in range(len(named), out.shape[1])]

    def save(self) -> None:
        """Write the checkpoint: everything ``resume`` needs to continue bit for bit."""
        loader_meta, loader_arrays = self.train_batches.state()
        state = {"config": self.config.to_json(), "epoch": self.epoch, "step": self.step, "sums": self._settled_sums(),
                 "history": self.history, "loader": loader_meta,
                 "dropout": self.model.random.state(), "optimizer": self.optimizer.hyper()}
        if self.model.scaler is not None:
            state["scaler"] = self.model.scaler.state()
        if not self.parallel.writes:
            return
        state["workers"] = self.parallel.size
        arrays = {"param": self._params(),
                  "optim": self.optimizer.state_dict(), "loader": loader_arrays}
        checkpoint.save(self.rundir / CHECKPOINT, self.graph, arrays, state)

    @classmethod
    def resume(cls, rundir: str | Path, epochs: int | None = None, splits: Splits | None = None, loss=None,
               console: Console | None = None, quiet: bool = False, communicator=None) -> Trainer:
        """The run saved in ``rundir``, ready to ``fit``; ``epochs`` may extend it; ``console``, ``quiet`` and
        ``communicator`` as for a new Trainer.

        The data is read again from ``config.data``, unless the run was given its ``splits`` in Python:
        then pass the same ones.
        """
        path = Path(rundir) / CHECKPOINT
        ckpt = checkpoint.load(path)
        state = ckpt.state
        if isinstance(state, dict) and state.get("kind") == "detection":
            raise TrainingError(f"{path}: a detection run's checkpoint; resume it with DetectionTrainer.resume "
                                f"(cnngraph train --resume tells them apart)")
        config = saved_config(state, path)
        if epochs is not None:
            config.epochs = epochs
        if splits is None and config.task == "verify":
            from cnngraph.verification.task import verification_splits  # verification builds on train

            splits = verification_splits(config.data, next(iter(ckpt.graph.inputs.values())).shape[1:],
                                         config.train_classes)[0]
        elif splits is None:
            splits = load_dataset(config.data, next(iter(ckpt.graph.inputs.values())).shape[1:])
        trainer = cls(ckpt.graph, splits, config, rundir, loss, console, quiet, communicator)
        resume_state.check_state(state, str(path), trainer.model.scaler is not None)
        if state.get("workers", 1) != trainer.parallel.size:
            raise TrainingError(f"{path}: the run was saved with {state.get('workers', 1)} workers and resumes with "
                                f"{trainer.parallel.size}; an exact resume needs the same number (--workers)")
        if state["loader"]["position"] > len(trainer.train_batches):
            raise TrainingError(f"{path}: loader position {state['loader']['position']} is past the "
                                f"{len(trainer.train_batches)} batches of an epoch")
        resume_state.check_order(ckpt.arrays["loader"], str(path), len(splits.train))
        trainable = {k: trainer.model.params[k] for k in trainer.model.trainable}
        resume_state.check_optimizer(ckpt.arrays["optim"], str(path), list(trainer.optimizer.state), trainable)
        trainer.optimizer.load_state_dict(ckpt.arrays["optim"], to_device=trainer.model.backend.copy)
        trainer.train_batches.load_state(state["loader"], ckpt.arrays["loader"])
        trainer.model.random.load_state(state["dropout"])
        if trainer.model.scaler is not None:
            trainer.model.scaler.load_state(state["scaler"])
        trainer.epoch, trainer.step = state["epoch"], state["step"]
        trainer.sums, trainer.history = state["sums"], state["history"]
        return trainer


def _shown(accuracy: float) -> str:
    """' acc 97.2%' for the epoch line; nothing for an embedding's (NaN) accuracy."""
    return "" if math.isnan(accuracy) else f" acc {accuracy:.1%}"


def _gray(x: np.ndarray) -> bool:
    """Whether every image has equal channels: a gray dataset repeated into a colour model's input."""
    return all(np.array_equal(x[:, 0], x[:, c]) for c in range(1, x.shape[1]))


def saved_config(state: dict, path: Path) -> TrainConfig:
    """The run's saved settings, or a TrainingError naming the checkpoint's config field."""
    doc = state.get("config") if isinstance(state, dict) else None
    if not isinstance(doc, dict):
        raise TrainingError(f"{path}: field 'config' must be an object of run settings, found {type(doc).__name__}")
    try:
        return TrainConfig.from_json(doc)
    except (TypeError, ValueError) as e:
        raise TrainingError(f"{path}: field 'config' holds settings this cnngraph cannot use ({e})") from None
