"""A run's settings (``TrainConfig``) and the objects they stand for: optimizer, schedule, loss, augmentation.

The config is plain JSON-able data, saved in every checkpoint, so ``--resume`` rebuilds exactly
the same optimizer, schedule and data pipeline. ``None`` means "the optimizer's default". The
defaults are a standard small-image recipe (SGD with momentum, cosine schedule, weight decay 5e-4,
label smoothing 0.1, random crops padded by 4) and make ``cnngraph train lenet5 --data digits``
reach 97% (README, Training).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import numpy as np

from cnngraph.errors import TrainingError
from cnngraph.train.data import Dataset
from cnngraph.train.data.identity_batches import IdentityBatches, check_per_identity
from cnngraph.train.data.loader import Loader
from cnngraph.train.data.transforms import Augment, Normalize
from cnngraph.train.embedding_losses import ContrastiveLoss, TripletLoss
from cnngraph.train.losses import CrossEntropy, Loss
from cnngraph.train.optim import OPTIMIZERS, Optimizer
from cnngraph.train.schedules import Cosine, LinearWarmup, Schedule, StepDecay

SCHEDULES = ("constant", "step", "cosine")
# Task verify can train the L2-normalised embedding itself on identity-balanced batches.
EMBEDDING_LOSSES = {"triplet": TripletLoss, "contrastive": ContrastiveLoss}
LOSSES = ("cross-entropy", *EMBEDDING_LOSSES)
# SGD's rate is the one measured on LeNet-5 and the digits; the adaptive ones get Adam's usual 1e-3.
# Every other optimizer default is torch's.
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
DEFAULT_MOMENTUM = {"sgd": 0.9}


@dataclass
class TrainConfig:
    """A run's settings; each has a ``cnngraph train`` option of the same name (``--weight-decay``)."""

    model: str = ""
    data: str = "digits"
    epochs: int = 30
    batch: int = 32
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup: int = 0  # epochs of linear warm-up
    step_epochs: int = 10  # for schedule "step": decay every this many epochs ...
    gamma: float = 0.1  # ... by this factor
    label_smoothing: float = 0.1
    crop: int = 4  # random-crop padding in pixels (0: off)
    flip: bool = False
    seed: int = 0
    freeze_upto: str | None = None
    eval_batch: int | None = None  # None: the training batch size, which fits in memory already
    clip_grad_norm: float | None = None  # cap on the gradients' total 2-norm (None: no clipping)
    backend: str = "numpy"  # where the model computes: numpy, strict (tests), cupy
    dtype: str = "float32"  # float16: half-precision activations, float32 master weights, loss scaling
    prefetch: int = 1  # batches the loader thread prepares ahead (0: none, no thread)
    task: str = "classify"  # "verify": train on train_classes only, then verify pairs of the others
    train_classes: str | None = None  # e.g. "0-6" (task verify)
    embedding: str | None = None  # task verify: the layer whose output embeds (None: what the last Linear reads)
    loss: str = "cross-entropy"  # task verify: or an embedding loss, "triplet" or "contrastive"
    margin: float | None = None  # the embedding loss's margin (None: its default)
    per_identity: int = 4  # embedding losses: images of each identity in a batch (K; batch // K identities)
    sync_bn: bool = False  # data parallelism: BatchNorm statistics over every rank's shard (False: per rank, as DDP)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name, least in (("epochs", 1), ("batch", 1), ("eval_batch", 1), ("step_epochs", 1), ("warmup", 0),
                            ("crop", 0), ("prefetch", 0)):
            if getattr(self, name) is not None and getattr(self, name) < least:
                raise TrainingError(f"{name} must be >= {least}, got {getattr(self, name)}")
        if self.task not in ("classify", "verify"):
            raise TrainingError(f"task must be classify or verify, got {self.task!r}")
        if (self.task == "verify") != (self.train_classes is not None):
            raise TrainingError("task verify needs train_classes (the identities to train on, e.g. 0-6), and "
                                "train_classes needs task verify")
        if self.embedding is not None and self.task != "verify":
            raise TrainingError("embedding (the layer verification embeds with) needs task verify")
        if self.loss not in LOSSES:
            raise TrainingError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.embeds and self.task != "verify":
            raise TrainingError(f"loss {self.loss} trains an embedding: it needs task verify (and train_classes)")
        if self.embeds:
            check_per_identity(self.per_identity, pairs=self.pairs)
        if self.margin is not None and not self.embeds:
            raise TrainingError("margin is the triplet or contrastive loss's: it needs loss triplet or contrastive")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise TrainingError(f"clip_grad_norm must be > 0, got {self.clip_grad_norm}")

    @property
    def embeds(self) -> bool:
        """Whether the run trains an embedding (with an embedding loss) rather than a classifier."""
        return self.loss in EMBEDDING_LOSSES

    @property
    def pairs(self) -> bool:
        """Whether the embedding loss takes siamese pairs (contrastive) rather than P x K identity batches."""
        return self.loss == "contrastive"

    @classmethod
    def from_json(cls, doc: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(doc) - known
        if unknown:
            raise TrainingError(f"checkpoint settings {sorted(unknown)} are unknown to this cnngraph")
        return cls(**doc)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    # -- what the settings build ------------------------------------------------------------
    def make_optimizer(self) -> Optimizer:
        cls = OPTIMIZERS[self.optimizer]
        given = {"lr": self.lr if self.lr is not None else DEFAULT_LR[self.optimizer],
                 "momentum": self.momentum if self.momentum is not None else DEFAULT_MOMENTUM.get(self.optimizer),
                 "nesterov": self.nesterov or None, "weight_decay": self.weight_decay}
        accepted = inspect.signature(cls).parameters
        refused = [k for k, v in given.items() if v is not None and k not in accepted]
        if refused:
            raise TrainingError(f"optimizer {self.optimizer} takes no {', '.join(refused)}")
        return cls(**{k: v for k, v in given.items() if v is not None})

    def make_schedule(self, steps_per_epoch: int) -> Schedule:
        total = self.epochs * steps_per_epoch
        if self.schedule == "cosine":
            shape = Cosine(max(total, 1))
        elif self.schedule == "step":
            shape = StepDecay(self.step_epochs * steps_per_epoch, self.gamma)
        else:
            shape = Schedule()
        return LinearWarmup(self.warmup * steps_per_epoch) * shape if self.warmup else shape

    def make_loss(self) -> Loss:
        if self.embeds:
            return EMBEDDING_LOSSES[self.loss](self.margin)
        return CrossEntropy(label_smoothing=self.label_smoothing)

    def make_loader(self, data: Dataset, train: bool, normalize: Normalize, shard) -> Loader:
        """The training batches (shuffled and augmented) or the test ones: identity-balanced for an embedding loss."""
        rng = np.random.default_rng(self.seed) if train else None
        augment = self.make_augment() if train else None
        if self.embeds:
            return IdentityBatches.of_batch(data, self.batch, self.per_identity, rng=rng, shuffle=train,
                                            pairs=self.pairs, augment=augment, normalize=normalize,
                                            shard=shard, where=f"the {'training' if train else 'test'} split")
        return Loader(data, self.batch if train else self.eval_batch or self.batch, rng, shuffle=train,
                      augment=augment, normalize=normalize, shard=shard)

    def make_augment(self) -> Augment | None:
        return Augment(self.crop, self.flip) if self.crop or self.flip else None
