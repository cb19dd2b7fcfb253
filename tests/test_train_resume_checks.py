"""A checkpoint handed back to ``Trainer.resume`` is checked field by field: each corruption below is a
TrainingError naming the file and the field, never an exception from inside the loop."""

import numpy as np
import pytest

from cnngraph.errors import TrainingError
from cnngraph.train import TrainConfig, Trainer, checkpoint
from cnngraph.train.loop import CHECKPOINT
from tests.test_train_loop import CONFIG, tiny_net, tiny_splits


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One finished epoch's checkpoint (SGD with momentum), loaded."""
    rundir = tmp_path_factory.mktemp("run")
    Trainer(tiny_net(), tiny_splits(), TrainConfig(**{**CONFIG, "epochs": 1}), rundir).fit()
    return checkpoint.load(rundir / CHECKPOINT)


def corrupted(tmp_path, saved, edit):
    """Write ``saved`` with ``edit(state, arrays)`` applied, and resume from it."""
    state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.state.items()}
    arrays = {group: dict(table) for group, table in saved.arrays.items()}
    edit(state, arrays)
    checkpoint.save(tmp_path / CHECKPOINT, saved.graph, arrays, state)
    return lambda: Trainer.resume(tmp_path, splits=tiny_splits())


def test_the_untouched_checkpoint_resumes(tmp_path, saved):
    trainer = corrupted(tmp_path, saved, lambda state, arrays: None)()
    assert trainer.epoch == 1 and trainer.step == 8


CASES = {
    "missing step": (lambda s, a: s.pop("step"), "field 'step' is missing"),
    "epoch as text": (lambda s, a: s.update(epoch="3"), "field 'epoch' must be an integer >= 0, found '3'"),
    "negative draws": (lambda s, a: s["dropout"].update(draws=-1), "field 'dropout.draws' must be an integer >= 0, found -1"),
    "not PCG64": (lambda s, a: s.update(loader={**s["loader"], "rng": {"bit_generator": "MT19937"}}),
                  "field 'loader.rng' must be a PCG64 generator state"),
    "position past the epoch": (lambda s, a: s.update(loader={**s["loader"], "position": 99}),
                                "loader position 99 is past the 8 batches"),
    "order not a permutation": (lambda s, a: a["loader"].update(order=np.zeros(60, np.int64)),
                                "loader/order must be a permutation of the 60 training samples"),
    "order of floats": (lambda s, a: a["loader"].update(order=np.arange(60.0)), "found a float64 array"),
    "momentum misshapen": (lambda s, a: a["optim"].update({"momentum/fc.weight": np.zeros((2, 2), np.float32)}),
                           "'optim/momentum/fc.weight' must be a float array of shape (3, 64)"),
    "unknown slot": (lambda s, a: a["optim"].update({"exp_avg/fc.weight": np.zeros((3, 64), np.float32)}),
                     "names no slot of"),
    "step count zero": (lambda s, a: a["optim"].update({"step/fc.weight": np.zeros(1, np.int64)}),
                        "must be one integer >= 1"),
    "sums not numbers": (lambda s, a: s.update(sums={**s["sums"], "loss": "nan?"}), "field 'sums.loss' must be a finite number, found 'nan?'"),
    "history not a list": (lambda s, a: s.update(history={"epoch": 1}), "field 'history' must be a list"),
    "config of wrong type": (lambda s, a: s.update(config={**s["config"], "epochs": "many"}), "field 'config'"),
    "config not an object": (lambda s, a: s.update(config=[1, 2]), "field 'config' must be an object"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_corrupted_field_is_named(tmp_path, saved, name):
    edit, message = CASES[name]
    with pytest.raises(TrainingError, match="checkpoint.safetensors: .*" + _escaped(message)):
        corrupted(tmp_path, saved, edit)()


def _escaped(text: str) -> str:
    import re

    return re.escape(text)
