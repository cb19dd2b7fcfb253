"""One epoch of the training loop on the strict backend (NumPy behind arrays that refuse host mixing, as
CuPy's do) with each optimizer: the oracle is the NumPy run, which must come out the same step for step.
Any loss, optimizer, clipping, metric, prefetch or checkpoint code that mixes host and device arrays
raises there."""

import numpy as np
import pytest

from cnngraph.backends.strict import StrictArray
from cnngraph.frontends import dsl
from cnngraph.train import Splits, TrainConfig, Trainer, load_dataset


def two_conv():
    x = dsl.input("image", (1, 8, 8))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 6, 3, padding=1, bias=False, name="conv1"), name="bn1"))
    y = dsl.relu(dsl.conv2d(dsl.max_pool2d(y, 2), 8, 3, padding=1, name="conv2"))
    y = dsl.dropout(dsl.flatten(y), 0.2)
    return dsl.Model(x, dsl.linear(y, 10, name="fc"), name="two_conv", seed=0)


@pytest.fixture(scope="module")
def digits():
    """512 training and 128 test images of the shipped digits at 8x8: 16 steps of 32."""
    splits = load_dataset("digits", (1, 8, 8))
    return Splits(splits.train.take(np.arange(512)), splits.test.take(np.arange(128)), splits.source)


@pytest.mark.parametrize("optimizer,lr,clip", [("sgd", 0.1, 1.0), ("adam", 0.01, None), ("adamw", 0.01, None),
                                               ("rmsprop", 0.003, None)], ids=["sgd-clipped", "adam", "adamw", "rmsprop"])
def test_one_epoch_on_strict_equals_numpy(tmp_path, digits, optimizer, lr, clip):
    runs = {}
    for backend in ("numpy", "strict"):
        config = TrainConfig(model="two_conv", epochs=1, batch=32, optimizer=optimizer, lr=lr, crop=1,
                             label_smoothing=0.0, clip_grad_norm=clip, eval_batch=128, backend=backend)
        trainer = Trainer(two_conv(), digits, config, tmp_path / backend)
        runs[backend] = trainer, trainer.fit()
    (numpy, numpy_history), (strict, strict_history) = runs["numpy"], runs["strict"]
    assert all(isinstance(v, StrictArray) for v in strict.model.params.values())
    assert strict.step_losses == numpy.step_losses and len(strict.step_losses) == 16
    assert np.mean(strict.step_losses[-4:]) < 0.9 * strict.step_losses[0]  # it learned something
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert strict_history[0][key] == numpy_history[0][key], key
    for key, value in numpy.model.params.items():  # BatchNorm running statistics included
        np.testing.assert_array_equal(strict.model.backend.to_host(strict.model.params[key]), value, err_msg=key)
    for key, value in numpy.optimizer.state_dict().items():
        np.testing.assert_array_equal(strict.optimizer.state_dict()[key], value, err_msg=key)
