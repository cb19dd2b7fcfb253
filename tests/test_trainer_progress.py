"""The Trainer shows its progress from Python as `cnngraph train` does, unless asked to be quiet."""

import numpy as np

from cnngraph.frontends import dsl
from cnngraph.train import TrainConfig, Trainer, load_dataset


def _trainer(tmp_path, **kwargs) -> Trainer:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 255, (20, 6, 6)).astype(np.uint8), y=np.arange(20) % 2)
    x = dsl.input("image", (1, 6, 6))
    graph = dsl.Model(x, dsl.linear(dsl.flatten(x), 2, name="fc"))
    splits = load_dataset(str(tmp_path / "d.npz"), (1, 6, 6))
    return Trainer(graph, splits, TrainConfig(epochs=2, batch=4, crop=0), tmp_path / "run", **kwargs)


def test_progress_shows_by_default(tmp_path, capsys):
    history = _trainer(tmp_path).fit()
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ")
    assert f"test loss {history[1]['test_loss']:.4f} acc {history[1]['test_acc']:.1%}" in lines[1]


def test_quiet_shows_nothing(tmp_path, capsys):
    assert len(_trainer(tmp_path, quiet=True).fit()) == 2
    assert capsys.readouterr().out == ""
