"""Training: losses, optimizers, schedules, transfer learning, data, and the loop behind ``cnngraph train``.

    from cnngraph.train import Trainer, TrainConfig, load_dataset
    splits = load_dataset("digits", (1, 32, 32))
    Trainer(models.build("lenet5"), splits, TrainConfig(epochs=30), "runs/lenet").fit()

The gradients come from the executor (``cnngraph.compile(graph, train=True)``); this package
supplies what ``train_step(x, y, loss, optimizer)`` is called with, and everything around it.
"""

from cnngraph.train.config import TrainConfig
from cnngraph.train.data import Dataset, Splits, load_dataset
from cnngraph.train.loop import Trainer
from cnngraph.train.losses import L1, BinaryCrossEntropy, CrossEntropy, MeanSquaredError, MultiMargin, PixelCrossEntropy
from cnngraph.train.optim import SGD, Adam, AdamW, RMSProp
from cnngraph.train.schedules import Cosine, LinearWarmup, Schedule, StepDecay
from cnngraph.train.transfer import freeze_upto, frozen_keys, replace_head

__all__ = [
                                   "L1",
                                   "SGD",
                                   "Adam",
                                   "AdamW",
                                   "BinaryCrossEntropy",
                                   "Cosine",
                                   "CrossEntropy",
                                   "Dataset",
                                   "LinearWarmup",
                                   "MeanSquaredError",
                                   "MultiMargin",
                                   "PixelCrossEntropy",
                                   "RMSProp",
                                   "Schedule",
                                   "Splits",
                                   "StepDecay",
                                   "TrainConfig",
                                   "Trainer",
                                   "freeze_upto",
                                   "frozen_keys",
                                   "load_dataset",
                                   "replace_head",
]
