"""What the training loop counts and reports, checked against the model itself: steps taken, the
training accuracy and the held-out loss of the history row, and the scaler's verdict on no gradients.
Mutation testing found each of these unchecked (docs/mutation.md)."""

import math

import numpy as np
import pytest

from cnngraph.errors import GraphError
from cnngraph.train import TrainConfig, Trainer
from cnngraph.train.scaler import LossScaler
from cnngraph.train.transfer import replace_head
from tests.test_train_loop import tiny_net, tiny_splits


@pytest.fixture(scope="module")
def still_trainer(tmp_path_factory):
    """One epoch at lr 0 without BN, dropout or augmentation: the training forward is the fixed model's
    inference, so the row's training accuracy can be recomputed exactly."""
    config = TrainConfig(model="tiny", epochs=1, batch=8, lr=0.0, weight_decay=0.0, crop=0, flip=False, prefetch=0)
    trainer = Trainer(tiny_net(dropout=0, bn=False), tiny_splits(), config, str(tmp_path_factory.mktemp("run")))
    return trainer, trainer.fit()[-1]


def outputs(trainer, split):
    """The model's logits for a whole split, normalised as the loop feeds it."""
    return trainer.model.run({trainer.input_name: trainer.normalize(split.x)})[trainer.graph.outputs[0]]


def test_steps_count_every_batch(still_trainer):
    trainer, row = still_trainer
    batches = math.ceil(len(trainer.splits.train) / 8)
    assert trainer.step == row["step"] == len(trainer.step_losses) == batches


def test_training_accuracy_counts_the_correct_predictions(still_trainer):
    trainer, row = still_trainer
    train = trainer.splits.train
    want = (outputs(trainer, train).argmax(axis=1) == train.y).mean()
    assert row["train_acc"] == pytest.approx(want, abs=1e-12)  # one image off is 1/60


def test_held_out_loss_is_the_loss_of_the_test_split(still_trainer):
    trainer, row = still_trainer
    test = trainer.splits.test
    # the mean over batches weighted by their sizes is the mean over the split (float32 model: 1e-6)
    assert row["test_loss"] == pytest.approx(trainer.loss(outputs(trainer, test), test.y)[0], rel=1e-6)


def test_loss_scaler_without_gradients_reports_finite():
    assert LossScaler().unscale({}) is True  # nothing overflowed: the step must not be skipped


def test_replace_head_names_a_bad_class_count():
    with pytest.raises(GraphError, match="num_classes must be >= 1, got 0"):
        replace_head(tiny_net(), 0)
